import { randomUUID } from "node:crypto";
import { ConnectError, type Interceptor } from "@connectrpc/connect";
import type { Logger } from "../../logger.js";

/**
 * Logs the outcome of every call under its request id (which the app's
 * listener has chosen and echoed already): a debug line for successes, an
 * info line with the code for failures. Bodies and headers are never logged,
 * so tokens never reach the logs.
 */
export function createLoggingInterceptor(logger: Logger): Interceptor {
  return (next) => async (req) => {
    const requestId = req.header.get("x-request-id") ?? randomUUID();
    const procedure = `${req.service.typeName}/${req.method.name}`;
    const started = performance.now();
    const done = (error?: unknown) => {
      const ms = Math.round((performance.now() - started) * 10) / 10;
      if (error === undefined) {
        logger.debug({ requestId, procedure, ms }, "call ok");
      } else {
        const code = ConnectError.from(error).code;
        logger.info({ requestId, procedure, ms, code }, "call failed");
      }
    };
    try {
      const res = await next(req);
      if (!res.stream) {
        done();
        return res;
      }
      return { ...res, message: observeStream(res.message, done) };
    } catch (error) {
      done(error);
      throw error;
    }
  };
}

async function* observeStream<O>(
  messages: AsyncIterable<O>,
  done: (error?: unknown) => void,
): AsyncIterable<O> {
  try {
    yield* messages;
    done();
  } catch (error) {
    done(error);
    throw error;
  }
}
