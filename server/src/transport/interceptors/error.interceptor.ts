import type { DescMethod, DescService } from "@bufbuild/protobuf";
import { create } from "@bufbuild/protobuf";
import { durationFromMs } from "@bufbuild/protobuf/wkt";
import { Code, ConnectError, type ContextValues, type Interceptor } from "@connectrpc/connect";
import { codeToString } from "@connectrpc/connect/protocol-connect";
import {
  BadRequest_FieldViolationSchema,
  BadRequestSchema,
  ERROR_DOMAIN,
  ErrorInfoSchema,
  RetryInfoSchema,
} from "@stagedoor/sdk";
import type { Logger } from "../../logger.js";
import { DomainError, type ErrorKind } from "../../shared/domain-error.js";
import { transientDomainError } from "../../shared/transient-errors.js";
import { malformedRequestError, requestIdKey } from "../connect-adapter.js";

const CODES: Record<ErrorKind, Code> = {
  invalid_argument: Code.InvalidArgument,
  not_found: Code.NotFound,
  already_exists: Code.AlreadyExists,
  failed_precondition: Code.FailedPrecondition,
  aborted: Code.Aborted,
  unauthenticated: Code.Unauthenticated,
  permission_denied: Code.PermissionDenied,
  resource_exhausted: Code.ResourceExhausted,
  unavailable: Code.Unavailable,
};

/**
 * Turns a domain error into a ConnectError carrying a `google.rpc.ErrorInfo`
 * (stable reason + safe metadata), a `BadRequest` for invalid fields and a
 * `RetryInfo` when retrying helps.
 */
export function toConnectError(error: DomainError): ConnectError {
  const details: ConstructorParameters<typeof ConnectError>[3] = [
    {
      desc: ErrorInfoSchema,
      value: { reason: error.reason, domain: ERROR_DOMAIN, metadata: { ...error.metadata } },
    },
  ];
  if (error.violations.length > 0) {
    details.push({
      desc: BadRequestSchema,
      value: {
        fieldViolations: error.violations.map((v) =>
          create(BadRequest_FieldViolationSchema, { field: v.field, description: v.description }),
        ),
      },
    });
  }
  if (error.retryAfterMs !== undefined) {
    details.push({
      desc: RetryInfoSchema,
      value: { retryDelay: durationFromMs(error.retryAfterMs) },
    });
  }
  // Like the domain error, the answer to an expected refusal needs no stack trace.
  const limit = Error.stackTraceLimit;
  Error.stackTraceLimit = 0;
  try {
    return new ConnectError(error.message, CODES[error.kind], undefined, details);
  } finally {
    Error.stackTraceLimit = limit;
  }
}

/** How loudly a failed call is logged, by its final code: faults loud, refusals at debug. */
const FAULT_LEVELS: Partial<Record<Code, "error" | "warn">> = {
  [Code.Internal]: "error",
  [Code.Unknown]: "error",
  [Code.DataLoss]: "error",
  [Code.Unavailable]: "warn",
  [Code.DeadlineExceeded]: "warn",
  // Only recognised database contention (a deadlock, a serialization failure)
  // becomes `aborted`: worth an operator's eye, like being unavailable.
  [Code.Aborted]: "warn",
};

/**
 * The one place errors leave the server, and the one place calls are logged.
 * Domain errors and recognised transient database errors become typed Connect
 * errors; Connect's own errors pass through (a request body Connect could not
 * read as a message becomes `invalid_argument`, see `malformedRequestError`);
 * anything else is a bug: the caller gets a bare `internal`, never the
 * message.
 *
 * Every failure is logged once, under the call's request id: server faults
 * (internal, unknown, data loss) at error with their cause, transient ones
 * (unavailable, deadline exceeded, aborted) at warn. Expected refusals (a
 * taken seat, a bad argument, a missing token) are what a rush is made of, so
 * they are logged only at debug, as are successes. Bodies and headers are
 * never logged, so tokens never reach the logs.
 */
export function createErrorInterceptor(logger: Logger): Interceptor {
  const fail = (error: unknown, req: CallInfo, started: number): ConnectError => {
    const { converted, cause, reason } = convert(error, req.method);
    const level = FAULT_LEVELS[converted.code] ?? "debug";
    if (logger.isLevelEnabled(level)) {
      logger[level](
        {
          ...(level === "debug" ? {} : { err: cause }),
          requestId: req.contextValues.get(requestIdKey),
          procedure: procedureOf(req),
          ms: elapsedMs(started),
          code: codeToString(converted.code),
          ...(reason === undefined ? {} : { reason }),
        },
        level === "error"
          ? "unexpected error"
          : level === "warn"
            ? "transient failure"
            : "call failed",
      );
    }
    return converted;
  };
  const succeeded = (req: CallInfo, started: number) => {
    if (logger.isLevelEnabled("debug")) {
      logger.debug(
        {
          requestId: req.contextValues.get(requestIdKey),
          procedure: procedureOf(req),
          ms: elapsedMs(started),
        },
        "call ok",
      );
    }
  };

  // `then` rather than an async function: one promise less per call.
  return (next) => (req) => {
    const started = performance.now();
    let pending: ReturnType<typeof next>;
    try {
      pending = next(req);
    } catch (error) {
      return Promise.reject(fail(error, req, started));
    }
    return pending.then(
      (res) => {
        if (!res.stream) {
          succeeded(req, started);
          return res;
        }
        return { ...res, message: observeStream(res.message, req, started, succeeded, fail) };
      },
      (error: unknown) => {
        throw fail(error, req, started);
      },
    );
  };
}

/** What the interceptor reads of a call to convert and log its outcome. */
interface CallInfo {
  readonly service: DescService;
  readonly method: DescMethod;
  readonly contextValues: ContextValues;
}

/** An error as the caller will see it, what caused it, and its domain reason if any. */
function convert(
  error: unknown,
  method: DescMethod,
): { converted: ConnectError; cause: unknown; reason: string | undefined } {
  if (error instanceof ConnectError) {
    const malformed = malformedRequestError(error, method);
    return { converted: malformed ?? error, cause: error, reason: undefined };
  }
  if (error instanceof DomainError) {
    return { converted: toConnectError(error), cause: error.cause ?? error, reason: error.reason };
  }
  const transient = transientDomainError(error);
  if (transient) {
    return { converted: toConnectError(transient), cause: error, reason: transient.reason };
  }
  return {
    converted: new ConnectError("internal error", Code.Internal),
    cause: error,
    reason: undefined,
  };
}

function procedureOf(req: CallInfo): string {
  return `${req.service.typeName}/${req.method.name}`;
}

function elapsedMs(started: number): number {
  return Math.round((performance.now() - started) * 10) / 10;
}

async function* observeStream<O>(
  messages: AsyncIterable<O>,
  req: CallInfo,
  started: number,
  succeeded: (req: CallInfo, started: number) => void,
  fail: (error: unknown, req: CallInfo, started: number) => ConnectError,
): AsyncIterable<O> {
  try {
    yield* messages;
  } catch (error) {
    throw fail(error, req, started);
  }
  succeeded(req, started);
}
