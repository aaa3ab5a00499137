import { fromBinary } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextKey,
  createContextValues,
} from "@connectrpc/connect";
import type { UniversalHandler, UniversalServerRequest } from "@connectrpc/connect/protocol";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../logger.js";
import type { NodeRequest, NodeResponse } from "./rest/rest-io.js";

/** Set on a call whose binary request body is not a valid message of its input type. */
export const malformedBodyKey = createContextKey<boolean>(false, {
  description: "the binary request body failed to parse",
});

/** What {@link createConnectAdapter} needs besides the router options. */
export interface ConnectAdapterOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly fallback: (req: NodeRequest, res: NodeResponse) => void;
  readonly logger: Logger;
}

const ENVELOPED = /^application\/(grpc|grpc-web|connect)(\+proto)?(;|$)/i;
const UNARY_BINARY = /^application\/proto(;|$)/i;
const COMPRESSED_FLAG = 0b0000_0001;

/**
 * Connect's Node adapter, plus one guard. Connect answers a binary request
 * body that does not parse with `internal` (HTTP 500, gRPC status 13) and
 * the parser's message; a bad input must never look like a server fault. So
 * binary bodies are checked first: one that does not parse is replaced with
 * an empty message and flagged, and an interceptor answers `invalid_argument`
 * in whatever protocol the caller speaks. Bodies stay bounded by
 * `readMaxBytes`, which Connect still enforces on what it reads.
 */
export function createConnectAdapter(options: ConnectAdapterOptions) {
  const router = createConnectRouter({
    acceptCompression: [compressionGzip, compressionBrotli],
    ...options,
  });
  options.routes(router);
  const limit = options.readMaxBytes ?? 0xffffffff;
  const paths = new Map<string, UniversalHandler>();
  for (const handler of router.handlers) paths.set(handler.requestPath, handler);

  return function handle(req: NodeRequest, res: NodeResponse): void {
    const handler = paths.get(req.url?.split("?", 2)[0] ?? "");
    if (!handler) {
      options.fallback(req, res);
      return;
    }
    const contextValues = createContextValues();
    const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues);
    const guarded = guardBinaryBody(uReq, handler, limit, () =>
      contextValues.set(malformedBodyKey, true),
    );
    handler(guarded)
      .then((uRes) => universalResponseToNodeResponse(uRes, res))
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        options.logger.warn(
          { err: reason, procedure: handler.requestPath },
          "writing a response failed",
        );
      });
  };
}

function guardBinaryBody(
  uReq: UniversalServerRequest,
  handler: UniversalHandler,
  limit: number,
  flag: () => void,
): UniversalServerRequest {
  const type = uReq.header.get("content-type") ?? "";
  const enveloped = ENVELOPED.test(type);
  if (!enveloped && !UNARY_BINARY.test(type)) return uReq;
  const body = uReq.body;
  if (!isAsyncIterable(body)) return uReq;
  const input = handler.method.input;
  return {
    ...uReq,
    body: (async function* () {
      const chunks: Uint8Array[] = [];
      let size = 0;
      for await (const chunk of body) {
        chunks.push(chunk);
        size += chunk.byteLength;
        // Too large to be ours to judge: let Connect refuse it.
        if (size > limit + 5) {
          yield* chunks;
          yield* body;
          return;
        }
      }
      const bytes = Buffer.concat(chunks);
      if (parses(bytes, enveloped, (payload) => fromBinary(input, payload))) {
        yield bytes;
        return;
      }
      flag();
      yield enveloped ? new Uint8Array(5) : new Uint8Array(0);
    })(),
  };
}

/** Whether every message in the body parses; compressed frames are left to Connect. */
function parses(
  bytes: Buffer,
  enveloped: boolean,
  parse: (payload: Uint8Array) => unknown,
): boolean {
  try {
    if (!enveloped) {
      parse(bytes);
      return true;
    }
    let offset = 0;
    while (offset + 5 <= bytes.length) {
      const flags = bytes[offset] ?? 0;
      const length = bytes.readUInt32BE(offset + 1);
      const end = offset + 5 + length;
      // A truncated frame is Connect's to report; an end-of-stream or
      // compressed frame is not a plain message.
      if (end > bytes.length) return true;
      if (flags === 0) parse(bytes.subarray(offset + 5, end));
      else if ((flags & COMPRESSED_FLAG) !== 0) return true;
      offset = end;
    }
    return true;
  } catch {
    return false;
  }
}

function isAsyncIterable(value: unknown): value is AsyncIterable<Uint8Array> {
  return typeof value === "object" && value !== null && Symbol.asyncIterator in value;
}
