import type { DescMethod } from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  createConnectRouter,
  createContextKey,
  createContextValues,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  encodeEnvelope,
  readAllBytes,
  type UniversalHandler,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../logger.js";
import type { NodeRequest, NodeResponse } from "./rest/rest-io.js";

/** The request id the app's listener chose (and echoed) for a call, for log lines. */
export const requestIdKey = createContextKey<string>("", {
  description: "the call's request id, as echoed in x-request-id",
});

/** What {@link createConnectAdapter} needs besides the router options. */
export interface ConnectAdapterOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly fallback: (req: NodeRequest, res: NodeResponse) => void;
  readonly logger: Logger;
}

/** Serves the Connect, gRPC and gRPC-Web calls of one request; the listener chose its id. */
export type ConnectAdapter = (req: NodeRequest, res: NodeResponse, requestId: string) => void;

/**
 * Connect's Node adapter (the same request and response plumbing as
 * `connectNodeAdapter`), with two differences:
 *
 * - A request body Connect cannot read as a message is the caller's mistake,
 *   but Connect answers it `internal` (HTTP 500, gRPC status 13): protobuf
 *   that does not parse, compressed bytes that do not decompress, a
 *   compressed frame without an encoding. Connect still reads, decompresses
 *   and parses every body once, as it would anyway; only when that failed is
 *   the answer rewritten to `invalid_argument`, in the caller's protocol (see
 *   {@link malformedRequestError}). The success path pays for one status or
 *   trailer check, and for gRPC-Web a look at the first frame's flag byte.
 * - `shutdownSignal` reaches only streaming methods: they are the long calls
 *   a shutdown must end. Linking every unary call to one shared signal would
 *   cost an add and a remove on its listener list per call, and that list is
 *   as long as the number of open streams (Node's EventTarget walks it).
 */
export function createConnectAdapter(options: ConnectAdapterOptions): ConnectAdapter {
  const { routes, fallback, logger, shutdownSignal, ...routerOptions } = options;
  const common = { acceptCompression: [compressionGzip, compressionBrotli], ...routerOptions };
  const forUnary = createConnectRouter(common);
  const forStreams = createConnectRouter({ ...common, shutdownSignal });
  routes(bothRouters(forUnary, forStreams));
  const paths = new Map<string, UniversalHandler>();
  for (const handler of forUnary.handlers) {
    if (handler.method.methodKind === "unary") paths.set(handler.requestPath, handler);
  }
  for (const handler of forStreams.handlers) {
    if (handler.method.methodKind !== "unary") paths.set(handler.requestPath, handler);
  }

  return function handle(req, res, requestId) {
    const url = req.url ?? "";
    const query = url.indexOf("?");
    const handler = paths.get(query < 0 ? url : url.slice(0, query));
    if (!handler) {
      fallback(req, res);
      return;
    }
    const contextValues = createContextValues().set(requestIdKey, requestId);
    const uReq = universalRequestFromNodeRequest(req, res, undefined, contextValues);
    handler(uReq)
      .then((uRes) => {
        // A streaming method reads its request inside the interceptors, where
        // the error interceptor rewrites a malformed one.
        const answer =
          handler.method.methodKind === "unary"
            ? answerMalformedAsInvalid(uRes, req.headers["content-type"], handler.method)
            : uRes;
        return answer instanceof Promise
          ? answer.then((fixed) => universalResponseToNodeResponse(fixed, res))
          : universalResponseToNodeResponse(answer, res);
      })
      .catch((reason: unknown) => {
        if (ConnectError.from(reason).code === Code.Aborted) return;
        logger.warn(
          { err: reason, requestId, procedure: handler.requestPath },
          "writing a response failed",
        );
      });
  };
}

/** Registers every service with both routers (one instance of each implementation). */
function bothRouters(a: ConnectRouter, b: ConnectRouter): ConnectRouter {
  const router: ConnectRouter = {
    handlers: [],
    service(service, implementation, options) {
      a.service(service, implementation, options);
      b.service(service, implementation, options);
      return router;
    },
    rpc(method, implementation, options) {
      a.rpc(method, implementation, options);
      b.rpc(method, implementation, options);
      return router;
    },
  };
  return router;
}

/**
 * What Connect (2.1) raises as `internal` while reading a request body, by
 * message: each means the body is not a readable message, which is the
 * caller's fault. A response that fails to serialize stays `internal`.
 */
const MALFORMED: readonly [test: (message: string) => boolean, what: string][] = [
  [(m) => m.startsWith("parse binary: "), "is not a valid"],
  [(m) => m === "decompression failed", "does not decompress to a"],
  [
    (m) => m === "received compressed envelope, but do not know how to decompress",
    "is compressed without a declared encoding, so it is not a",
  ],
];

/**
 * The `invalid_argument` error to answer instead of `error`, when `error` is
 * Connect's report of a request body it could not read as `method`'s input;
 * otherwise undefined.
 */
export function malformedRequestError(
  error: { code: Code; rawMessage: string },
  method: DescMethod,
): ConnectError | undefined {
  if (error.code !== Code.Internal) return undefined;
  for (const [test, what] of MALFORMED) {
    if (test(error.rawMessage)) {
      return new ConnectError(
        `the request body ${what} ${method.input.typeName} message (${error.rawMessage})`,
        Code.InvalidArgument,
      );
    }
  }
  return undefined;
}

/**
 * Rewrites the response of a unary call whose request body Connect could not
 * read. Where the status lives depends on the protocol: the HTTP status and a
 * JSON body (Connect), the trailers (gRPC), or the last frame of the body
 * (gRPC-Web). A unary call reads its request before it answers, so by now
 * the status is known, except that gRPC-Web's frame is only looked at when
 * the adapter writes it.
 */
function answerMalformedAsInvalid(
  uRes: UniversalServerResponse,
  contentType: string | undefined,
  method: DescMethod,
): UniversalServerResponse | Promise<UniversalServerResponse> {
  if (contentType?.startsWith("application/grpc")) {
    if (contentType.startsWith("application/grpc-web")) {
      return uRes.body
        ? { ...uRes, body: mapFirstChunk(uRes.body, (c) => fixTrailerFrame(c, method)) }
        : uRes;
    }
    const trailer = uRes.trailer;
    if (trailer?.get("grpc-status") === "13") {
      const error = malformedRequestError(
        { code: Code.Internal, rawMessage: decodeURIComponent(trailer.get("grpc-message") ?? "") },
        method,
      );
      if (error) setTrailerStatus(trailer, error);
    }
    return uRes;
  }
  // Connect answers `internal` with HTTP 500 and nothing else does.
  if (uRes.status !== 500 || !uRes.body || uRes.header?.has("content-encoding")) return uRes;
  return rewriteConnectError(uRes, uRes.body, method);
}

async function rewriteConnectError(
  uRes: UniversalServerResponse,
  body: AsyncIterable<Uint8Array>,
  method: DescMethod,
): Promise<UniversalServerResponse> {
  const bytes = await readAllBytes(body, 0xffffffff);
  const fallback = new ConnectError("unreadable error body", Code.Internal);
  let error: ConnectError;
  try {
    error = errorFromJsonBytes(bytes, undefined, fallback);
  } catch {
    error = fallback;
  }
  const invalid = malformedRequestError(error, method);
  if (!invalid) return { ...uRes, body: createAsyncIterable([bytes]) };
  const rewritten = errorToJsonBytes(invalid, {});
  const header = new Headers(uRes.header);
  header.set("content-length", String(rewritten.byteLength));
  return {
    ...uRes,
    header,
    status: codeToHttpStatus(invalid.code),
    body: createAsyncIterable([rewritten]),
  };
}

/** A gRPC-Web trailer frame with a malformed-request status, rewritten; any other chunk as is. */
function fixTrailerFrame(chunk: Uint8Array, method: DescMethod): Uint8Array {
  // An uncompressed trailer frame only: a message frame (0) is a success, and
  // Connect compresses no frame as small as an error's trailers.
  if (chunk[0] !== trailerFlag || chunk.byteLength < 5) return chunk;
  const trailer = trailerParse(chunk.subarray(5));
  if (trailer.get("grpc-status") !== "13") return chunk;
  const error = malformedRequestError(
    { code: Code.Internal, rawMessage: decodeURIComponent(trailer.get("grpc-message") ?? "") },
    method,
  );
  if (!error) return chunk;
  return encodeEnvelope(trailerFlag, trailerSerialize(setTrailerStatus(trailer, error)));
}

/** `body` with `map` applied to its first chunk, without another async generator. */
function mapFirstChunk(
  body: AsyncIterable<Uint8Array>,
  map: (chunk: Uint8Array) => Uint8Array,
): AsyncIterable<Uint8Array> {
  return {
    [Symbol.asyncIterator]() {
      const it = body[Symbol.asyncIterator]();
      let first = true;
      return {
        next() {
          if (!first) return it.next();
          first = false;
          return it
            .next()
            .then((r) => (r.done === true ? r : { done: false, value: map(r.value) }));
        },
        return(value?: unknown) {
          return it.return ? it.return(value) : Promise.resolve({ done: true, value });
        },
        throw(error?: unknown) {
          return it.throw ? it.throw(error) : Promise.reject(error);
        },
      };
    },
  };
}
