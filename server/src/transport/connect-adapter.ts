import { getEventListeners } from "node:events";
import {
  type DescField,
  type DescMessage,
  type DescMethod,
  type DescService,
  ScalarType,
} from "@bufbuild/protobuf";
import {
  Code,
  ConnectError,
  type ConnectRouter,
  type ConnectRouterOptions,
  type ContextValues,
  createConnectRouter,
  createContextValues,
} from "@connectrpc/connect";
import {
  createAsyncIterable,
  encodeEnvelope,
  readAllBytes,
  type UniversalHandler,
  type UniversalServerRequest,
  type UniversalServerResponse,
} from "@connectrpc/connect/protocol";
import {
  codeToHttpStatus,
  endStreamFlag,
  endStreamToJson,
  errorFromJsonBytes,
  errorToJsonBytes,
} from "@connectrpc/connect/protocol-connect";
import { findTrailerError, setTrailerStatus } from "@connectrpc/connect/protocol-grpc";
import { trailerFlag, trailerParse, trailerSerialize } from "@connectrpc/connect/protocol-grpc-web";
import {
  compressionBrotli,
  compressionGzip,
  universalRequestFromNodeRequest,
  universalResponseToNodeResponse,
} from "@connectrpc/connect-node";
import type { Logger } from "../logger.js";
import { DomainError, type FieldViolation } from "../shared/domain-error.js";
import { httpRequestKey } from "./context.js";
import {
  answerFor,
  type CallObserver,
  errorAnsweredKey,
  type FinishedCall,
  logCall,
  requestIdKey,
  toConnectError,
} from "./interceptors/error.interceptor.js";
import { type NodeRequest, type NodeResponse, requestBody } from "./rest/rest-io.js";

export { requestIdKey };

/** What {@link createConnectAdapter} needs besides the router options. */
export interface ConnectAdapterOptions extends ConnectRouterOptions {
  readonly routes: (router: ConnectRouter) => void;
  readonly fallback: (req: NodeRequest, res: NodeResponse) => void;
  readonly logger: Logger;
  /** Sees every call the adapter logs itself (the metrics); the interceptor sees the rest. */
  readonly observeCall?: CallObserver;
  /** The signals of unary HTTP/1.1 calls (see {@link QuietSignals}); the adapter's own by default. */
  readonly quietSignals?: QuietSignals;
}

/** Serves the Connect, gRPC and gRPC-Web calls of one request; the listener chose its id. */
export type ConnectAdapter = (req: NodeRequest, res: NodeResponse, requestId: string) => void;

/**
 * Connect's Node adapter (the same request and response plumbing as
 * `connectNodeAdapter`), with these differences:
 *
 * - Every error answer carries a Stagedoor ErrorInfo. The error interceptor
 *   gives it to every error raised inside a call; Connect raises some before
 *   the interceptors run (reading a unary call's body: protobuf or JSON that
 *   does not parse, a message over the size limit, an encoding it does not
 *   speak, compressed bytes that do not decompress). Connect still reads,
 *   decompresses and parses every body once, as it would anyway; only when a
 *   unary answer is an error the interceptor did not make is it rewritten,
 *   in the caller's protocol (the HTTP status and JSON body for Connect, the
 *   trailers for gRPC, the trailer frame for gRPC-Web), with the reason
 *   `answerFor` gives it, and logged like any call. Connect calls an
 *   unreadable protobuf body `internal`; it becomes `invalid_argument`.
 * - A POST in one of the protocols to a path no method is served at is
 *   answered `unimplemented` (METHOD_NOT_FOUND) in that protocol; anything
 *   else goes to `fallback`.
 * - JSON request bodies must be UTF-8, and int64 fields of request messages
 *   take only canonical decimal integers (see {@link jsonTextDecoder}).
 * - Connect reads request bodies through {@link requestBody}, which leaves
 *   the request usable when Connect stops early (a message over the size
 *   limit), so that the rest can be drained or the stream reset once the
 *   refusal is written.
 * - `shutdownSignal` reaches only streaming methods: they are the long calls
 *   a shutdown must end. Linking every unary call to one shared signal would
 *   cost an add and a remove on its listener list per call, and that list is
 *   as long as the number of open streams (Node's EventTarget walks it).
 */
export function createConnectAdapter(options: ConnectAdapterOptions): ConnectAdapter {
  const {
    routes,
    fallback,
    logger,
    observeCall,
    shutdownSignal,
    quietSignals = new QuietSignals(),
    ...routerOptions
  } = options;
  const jsonOptions = withTextDecoder(routerOptions.jsonOptions, jsonTextDecoder(undefined));
  const common = {
    acceptCompression: [compressionGzip, compressionBrotli],
    ...routerOptions,
    jsonOptions,
  };
  const forUnary = createConnectRouter(common);
  const forStreams = createConnectRouter({ ...common, shutdownSignal });
  routes(routerByKind(forUnary, forStreams, routerOptions.jsonOptions));
  const paths = new Map<string, UniversalHandler>();
  for (const handler of [...forUnary.handlers, ...forStreams.handlers]) {
    paths.set(handler.requestPath, handler);
  }

  return function handle(req, res, requestId) {
    const url = req.url ?? "";
    const query = url.indexOf("?");
    const path = query < 0 ? url : url.slice(0, query);
    const handler = paths.get(path);
    if (!handler) {
      if (!answerUnknownMethod(req, res, path, requestId, logger, observeCall)) {
        fallback(req, res);
      }
      return;
    }
    const started = performance.now();
    const contextValues = createContextValues()
      .set(requestIdKey, requestId)
      .set(httpRequestKey, req);
    const unary = handler.method.methodKind === "unary";
    const quiet = unary && !("stream" in req) ? quietSignals.take() : undefined;
    const uReq = universalRequestOf(req, res, contextValues, quiet);
    handler(uReq)
      .then((uRes) => {
        // A Connect unary call has ended (Connect unlinked its signal before
        // answering); one whose answer is still to be made (gRPC-Web's is
        // made as it is written) is still linked, and its signal is dropped.
        if (quiet !== undefined) quietSignals.giveBack(quiet);
        // A streaming method reads its request inside the interceptors, where
        // the error interceptor answers (and logs) a failure.
        let answer: UniversalServerResponse | Promise<UniversalServerResponse> = uRes;
        if (unary && !contextValues.get(errorAnsweredKey)) {
          const call = { requestId, procedure: procedureOf(handler.method), started };
          answer = answerUnaryErrors(uRes, req.headers["content-type"], handler.method, (a) =>
            logCall(
              logger,
              call,
              { code: a.error.code, reason: a.reason, cause: a.cause },
              observeCall,
            ),
          );
        }
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

/**
 * The request as Connect's handlers take it. An HTTP/2 request is made by
 * connect-node's `universalRequestFromNodeRequest`; an HTTP/1.1 one the same
 * way at less cost per call, which Connect JSON over HTTP/1.1 (the SDK's web
 * and Node transports) pays on every call:
 * - a streaming call's signal is aborted only when the call is cut short (the
 *   request fails, or the response closes before it was sent whole), with a
 *   reason made then; connect-node aborts it at every response's end with no
 *   reason, which makes a DOMException with its stack trace per call;
 * - a unary call's signal never aborts, and is one of a pool (see
 *   {@link QuietSignals}): nothing of a unary call reads it (a hold, a
 *   recharge or a payment runs to its commit or rollback whether or not its
 *   caller is still there, and group commit never abandons a write), so
 *   making one per call, with its two listeners, was only cost;
 * - its URL is joined, not parsed (the path already matched a method exactly);
 * - its body is {@link requestBody} (connect-node would make an async
 *   generator over the request, unused).
 */
function universalRequestOf(
  req: NodeRequest,
  res: NodeResponse,
  contextValues: ContextValues,
  quiet: AbortSignal | undefined,
): UniversalServerRequest {
  if ("stream" in req) {
    return {
      ...universalRequestFromNodeRequest(req, res, undefined, contextValues),
      body: requestBody(req),
    };
  }
  const authority = req.headers.host;
  if (authority === undefined) {
    throw new ConnectError("the request has no Host header", Code.InvalidArgument);
  }
  const scheme = "encrypted" in req.socket && req.socket.encrypted ? "https" : "http";
  return {
    httpVersion: req.httpVersion,
    method: req.method ?? "",
    url: `${scheme}://${authority}${req.url ?? ""}`,
    header: webHeaders(req.headers),
    body: requestBody(req),
    signal: quiet ?? new CallCutShort(req, res).signal,
    contextValues,
  };
}

/** How many idle signals a {@link QuietSignals} keeps at most. */
export const QUIET_SIGNALS_KEPT = 1024;

/**
 * Signals that never abort, for unary calls over HTTP/1.1, reused: Connect
 * links a call's context to its request's signal with one listener, which it
 * removes when the call ends (for the Connect protocol, before its handler
 * returns the answer), so the signal can then serve the next call. Only a
 * signal with no listener left is taken back (any other is dropped), so
 * every call's signal starts with no listener and none ever has a list to
 * walk as long as the calls in flight (as one shared signal would). At most
 * {@link QUIET_SIGNALS_KEPT} wait to be taken; past a spike, the rest go.
 */
export class QuietSignals {
  private readonly free: AbortSignal[] = [];

  /** A signal that never aborts and has no listener. */
  take(): AbortSignal {
    return this.free.pop() ?? new AbortController().signal;
  }

  /** Takes back a signal from {@link take} once its call is over, if nothing listens to it. */
  giveBack(signal: AbortSignal): void {
    if (this.free.length < QUIET_SIGNALS_KEPT && getEventListeners(signal, "abort").length === 0) {
      this.free.push(signal);
    }
  }

  /** How many signals wait to be taken (for tests). */
  get size(): number {
    return this.free.length;
  }
}

/**
 * The signal of an HTTP/1.1 call: aborted if its request fails or its
 * response closes before it was sent whole (the client went away), and then
 * with a ConnectError saying so. Listens until the response closes. A class,
 * so no named closure is made per call (see rest-io's `ChunkWait`).
 */
class CallCutShort {
  private readonly controller = new AbortController();
  private readonly onError: (error: unknown) => void;
  private readonly onClose: () => void;

  constructor(
    private readonly req: NodeRequest,
    private readonly res: NodeResponse,
  ) {
    this.onError = this.cut.bind(this);
    this.onClose = this.closed.bind(this);
    req.once("error", this.onError);
    res.once("close", this.onClose);
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  private closed(): void {
    this.req.off("error", this.onError);
    if (this.res.writableFinished) return;
    this.controller.abort(
      this.req.errored
        ? ConnectError.from(this.req.errored, Code.Aborted)
        : new ConnectError("the client closed the connection before the answer", Code.Canceled),
    );
  }

  private cut(error: unknown): void {
    this.res.off("close", this.onClose);
    this.controller.abort(ConnectError.from(error, Code.Aborted));
  }
}

/** A request's headers as fetch `Headers`, without HTTP/2 pseudo-headers (as connect-node converts them). */
function webHeaders(headers: NodeRequest["headers"]): Headers {
  const header = new Headers();
  for (const name in headers) {
    if (name.startsWith(":")) continue;
    const value = headers[name];
    if (value === undefined) continue;
    if (typeof value === "string") header.append(name, value);
    else for (const item of value) header.append(name, item);
  }
  return header;
}

function procedureOf(method: DescMethod): string {
  return `${method.parent.typeName}/${method.name}`;
}

/**
 * The router the routes register with: unary methods go to `unary` and
 * streaming ones to `streams`, one method at a time, so that a method whose
 * request has int64 fields gets its own JSON decoder (see
 * {@link jsonTextDecoder}). One instance of each implementation serves both.
 */
function routerByKind(
  unary: ConnectRouter,
  streams: ConnectRouter,
  baseJsonOptions: ConnectRouterOptions["jsonOptions"],
): ConnectRouter {
  const routerFor = (method: DescMethod) => (method.methodKind === "unary" ? unary : streams);
  const optionsFor = (method: DescMethod, options: Parameters<ConnectRouter["rpc"]>[2]) => {
    const plan = int64Plan(method.input);
    if (plan === undefined) return options;
    return {
      ...options,
      jsonOptions: withTextDecoder(baseJsonOptions, jsonTextDecoder(plan)),
    };
  };
  const router: ConnectRouter = {
    handlers: [],
    service(service, implementation, options) {
      for (const method of service.methods) {
        routerFor(method).rpc(
          method,
          methodImplementation(service, implementation, method) as never,
          optionsFor(method, options),
        );
      }
      return router;
    },
    rpc(method, implementation, options) {
      routerFor(method).rpc(method, implementation, optionsFor(method, options));
      return router;
    },
  };
  return router;
}

/**
 * One method of a service implementation, bound to it, as Connect's
 * `router.service` takes it. Every method of a service we serve must be
 * implemented: a missing one fails the server's start (Connect alone would
 * answer its calls `unimplemented` at run time).
 */
function methodImplementation(
  service: DescService,
  implementation: object,
  method: DescMethod,
): (...args: never[]) => unknown {
  const fn = (implementation as Record<string, unknown>)[method.localName];
  if (typeof fn !== "function") {
    throw new Error(`${service.typeName}.${method.name} has no implementation`);
  }
  return fn.bind(implementation);
}

// ---------------------------------------------------------------------------
// Errors raised before the interceptors

/**
 * Rewrites the response of a unary call that failed before the interceptors
 * ran (so its error has no ErrorInfo yet); `answered` logs it. Where the
 * status lives depends on the protocol: the HTTP status and a JSON body
 * (Connect), the trailers (gRPC), or the last frame of the body (gRPC-Web).
 * A unary call reads its request before it answers, so by now the status is
 * known, except that gRPC-Web's frame is only looked at when the adapter
 * writes it. A success costs one status or trailer check, and for gRPC-Web a
 * look at the first frame's flag byte.
 */
function answerUnaryErrors(
  uRes: UniversalServerResponse,
  contentType: string | undefined,
  method: DescMethod,
  answered: (answer: ReturnType<typeof answerFor>) => void,
): UniversalServerResponse | Promise<UniversalServerResponse> {
  if (contentType?.startsWith("application/grpc")) {
    if (contentType.startsWith("application/grpc-web")) {
      return uRes.body
        ? { ...uRes, body: mapFirstChunk(uRes.body, (c) => fixTrailerFrame(c, method, answered)) }
        : uRes;
    }
    const trailer = uRes.trailer;
    const status = trailer?.get("grpc-status");
    if (trailer && status !== null && status !== undefined && status !== "0") {
      fixTrailer(trailer, method, answered);
    }
    return uRes;
  }
  // Connect answers every error with a non-200 status and a JSON body (a 415
  // or 405 for a request in no protocol has no body, and stays as it is).
  if (uRes.status === 200 || !uRes.body || uRes.header?.has("content-encoding")) return uRes;
  return rewriteConnectError(uRes, uRes.body, method, answered);
}

/** Gives the error in gRPC trailers its ErrorInfo, in place, unless it has one. */
function fixTrailer(
  trailer: Headers,
  method: DescMethod,
  answered: (answer: ReturnType<typeof answerFor>) => void,
): void {
  const error = findTrailerError(trailer);
  if (!error) return;
  const answer = answerFor(error, method);
  answered(answer);
  if (answer.error !== error) {
    trailer.delete("grpc-status-details-bin");
    setTrailerStatus(trailer, answer.error);
  }
}

async function rewriteConnectError(
  uRes: UniversalServerResponse,
  body: AsyncIterable<Uint8Array>,
  method: DescMethod,
  answered: (answer: ReturnType<typeof answerFor>) => void,
): Promise<UniversalServerResponse> {
  const bytes = await readAllBytes(body, 0xffffffff);
  const error = errorFromJsonBytes(
    bytes,
    undefined,
    new ConnectError("unreadable error body", Code.Internal),
  );
  const answer = answerFor(error, method);
  answered(answer);
  if (answer.error === error) return { ...uRes, body: createAsyncIterable([bytes]) };
  const rewritten = errorToJsonBytes(answer.error, {});
  const header = new Headers(uRes.header);
  header.set("content-length", String(rewritten.byteLength));
  return {
    ...uRes,
    header,
    status: codeToHttpStatus(answer.error.code),
    body: createAsyncIterable([rewritten]),
  };
}

/** A gRPC-Web trailer frame with an error status, given its ErrorInfo; any other chunk as is. */
function fixTrailerFrame(
  chunk: Uint8Array,
  method: DescMethod,
  answered: (answer: ReturnType<typeof answerFor>) => void,
): Uint8Array {
  // An uncompressed trailer frame only: a message frame (0) is a success, and
  // Connect compresses no frame as small as these errors' trailers.
  if (chunk[0] !== trailerFlag || chunk.byteLength < 5) return chunk;
  const trailer = trailerParse(chunk.subarray(5));
  const status = trailer.get("grpc-status");
  if (status === null || status === "0") return chunk;
  const before = trailer.get("grpc-status-details-bin");
  fixTrailer(trailer, method, answered);
  if (trailer.get("grpc-status-details-bin") === before) return chunk;
  return encodeEnvelope(trailerFlag, trailerSerialize(trailer));
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

// ---------------------------------------------------------------------------
// Unknown methods

/**
 * Answers a POST in one of the protocols (by its content type) to a path no
 * method is served at: `unimplemented` with ErrorInfo METHOD_NOT_FOUND, where
 * the protocol puts an error. Returns false for anything else (a browser's
 * GET of a web file, a plain POST), which the fallback answers.
 */
function answerUnknownMethod(
  req: NodeRequest,
  res: NodeResponse,
  path: string,
  requestId: string,
  logger: Logger,
  observe: CallObserver | undefined,
): boolean {
  const type = req.headers["content-type"] ?? "";
  const protocol = req.method === "POST" ? protocolOf(type) : undefined;
  if (protocol === undefined) return false;
  const started = performance.now();
  const error = toConnectError(
    new DomainError("unimplemented", "METHOD_NOT_FOUND", `no method is served at ${path}`),
  );
  const call: FinishedCall = { requestId, procedure: path.slice(1), started, unrouted: true };
  logCall(logger, call, { code: error.code, reason: "METHOD_NOT_FOUND", cause: error }, observe);
  const headers: Record<string, string> = {};
  let status = 200;
  let body: Uint8Array;
  switch (protocol) {
    case "grpc": {
      const trailers: Record<string, string> = {};
      for (const [key, value] of setTrailerStatus(new Headers(), error)) trailers[key] = value;
      res.addTrailers(trailers);
      headers["content-type"] = type;
      body = new Uint8Array(0);
      break;
    }
    case "grpc-web":
      headers["content-type"] = type;
      body = encodeEnvelope(trailerFlag, trailerSerialize(setTrailerStatus(new Headers(), error)));
      break;
    case "connect-stream":
      headers["content-type"] = type;
      body = encodeEnvelope(
        endStreamFlag,
        new TextEncoder().encode(JSON.stringify(endStreamToJson(new Headers(), error, {}))),
      );
      break;
    case "connect":
      // Connect clients read the code from the body; the status is what any
      // HTTP client expects of a path nothing is served at (and what
      // Connect's own adapter answers).
      status = 404;
      headers["content-type"] = "application/json";
      body = errorToJsonBytes(error, {});
      break;
  }
  if (protocol !== "grpc") headers["content-length"] = String(body.byteLength);
  res.writeHead(status, headers);
  res.end(body);
  return true;
}

/** The protocol a request's content type names, if it names one. */
function protocolOf(
  contentType: string,
): "grpc" | "grpc-web" | "connect-stream" | "connect" | undefined {
  if (/^application\/grpc-web(-text)?([+;]|$)/i.test(contentType)) return "grpc-web";
  if (/^application\/grpc([+;]|$)/i.test(contentType)) return "grpc";
  if (/^application\/connect\+/i.test(contentType)) return "connect-stream";
  if (/^application\/(proto|json)(;|$)/i.test(contentType)) return "connect";
  return undefined;
}

// ---------------------------------------------------------------------------
// JSON bodies: UTF-8, and int64 fields as canonical decimal integers

/**
 * Router JSON options with Connect's `textDecoder` (which its JSON
 * serialization reads bytes with, before protobuf-es parses the text)
 * replaced. The router options' type does not list it; Connect passes them on
 * to its serialization as they are.
 */
function withTextDecoder(
  jsonOptions: ConnectRouterOptions["jsonOptions"],
  textDecoder: { decode(input?: Uint8Array): string },
): ConnectRouterOptions["jsonOptions"] {
  const options: ConnectRouterOptions["jsonOptions"] & { textDecoder: typeof textDecoder } = {
    ...jsonOptions,
    textDecoder,
  };
  return options;
}

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/**
 * The decoder Connect reads every JSON request message with (Connect unary
 * and GET, Connect streaming, gRPC-Web and gRPC with JSON): it refuses bytes
 * that are not UTF-8 (Connect's own decoder would replace them), and, for a
 * method whose request has int64 fields (`plan`), checks those fields before
 * protobuf-es reads them. protobuf-es reads an int64 JSON string with
 * `BigInt()`, which takes `"0x10"`, `"0b10000"`, `"0o20"`, `" 16"`, `"016"`
 * or `""` as numbers; ProtoJSON allows only decimal. So an int64 field must
 * be a JSON string of decimal digits with an optional minus sign and no
 * leading zero, or a JSON number that is an exact integer no larger than
 * 2^53 in magnitude (a larger number has already been rounded by the time it
 * is read: write it as a string), in range. Anything else is refused
 * `invalid_argument` with a BadRequest naming the field. Only the methods
 * with int64 fields parse their JSON twice (once here); protobuf-es reports
 * anything else wrong with the body.
 */
function jsonTextDecoder(plan: MessagePlan | undefined): { decode(input?: Uint8Array): string } {
  return {
    decode(input) {
      let text: string;
      try {
        text = UTF8.decode(input);
      } catch {
        throw toConnectError(
          new DomainError("invalid_argument", "MALFORMED_REQUEST", "the request body is not UTF-8"),
        );
      }
      if (plan === undefined) return text;
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        return text;
      }
      const violations: FieldViolation[] = [];
      checkMessage(plan, json, "", violations);
      if (violations.length > 0) {
        const first = violations[0] as FieldViolation;
        throw toConnectError(
          new DomainError(
            "invalid_argument",
            "INVALID_ARGUMENT",
            violations.map((v) => `${v.field}: ${v.description}`).join("; "),
            { violations, metadata: { field: first.field } },
          ),
        );
      }
      return text;
    },
  };
}

/** Which int64 values a field holds, and where, in a request message's JSON. */
interface FieldPlan {
  /** The JSON keys protobuf-es reads the field from: its JSON name and its proto name. */
  readonly keys: readonly string[];
  /** The proto name, for the BadRequest field path. */
  readonly name: string;
  readonly shape: "singular" | "list" | "map";
  /** Set when the values (or a map's values) are int64, or an Int64Value/UInt64Value. */
  readonly int64?: "signed" | "unsigned";
  /** Set when a map's keys are int64. */
  readonly int64Key?: "signed" | "unsigned";
  /** Set when the values are messages that hold int64 fields somewhere. */
  readonly message?: MessagePlan;
}

/** The fields of a message that hold int64 values, directly or in nested messages. */
interface MessagePlan {
  fields: FieldPlan[];
}

const SIGNED_64 = new Set([ScalarType.INT64, ScalarType.SINT64, ScalarType.SFIXED64]);
const UNSIGNED_64 = new Set([ScalarType.UINT64, ScalarType.FIXED64]);
const WRAPPERS_64: Record<string, "signed" | "unsigned"> = {
  "google.protobuf.Int64Value": "signed",
  "google.protobuf.UInt64Value": "unsigned",
};

function int64Kind(scalar: ScalarType | undefined): "signed" | "unsigned" | undefined {
  if (scalar === undefined) return undefined;
  if (SIGNED_64.has(scalar)) return "signed";
  return UNSIGNED_64.has(scalar) ? "unsigned" : undefined;
}

/** The message type of a field's values (singular, list or map), if they are messages. */
function messageOf(field: DescField): DescMessage | undefined {
  switch (field.fieldKind) {
    case "message":
      return field.message;
    case "list":
      return field.listKind === "message" ? field.message : undefined;
    case "map":
      return field.mapKind === "message" ? field.message : undefined;
    default:
      return undefined;
  }
}

/** Whether a message type's JSON is an object of its fields (well-known types have their own forms). */
function plainJson(message: DescMessage): boolean {
  return !message.typeName.startsWith("google.protobuf.");
}

/** The int64 values a field holds itself: its scalars, its map keys, or an int64 wrapper. */
function ownInt64(field: DescField): Pick<FieldPlan, "int64" | "int64Key"> {
  const wrapped = messageOf(field);
  const int64 =
    wrapped !== undefined
      ? WRAPPERS_64[wrapped.typeName]
      : int64Kind(
          field.fieldKind === "scalar" ||
            (field.fieldKind === "list" && field.listKind === "scalar") ||
            (field.fieldKind === "map" && field.mapKind === "scalar")
            ? field.scalar
            : undefined,
        );
  const int64Key = field.fieldKind === "map" ? int64Kind(field.mapKey) : undefined;
  return {
    ...(int64 === undefined ? {} : { int64 }),
    ...(int64Key === undefined ? {} : { int64Key }),
  };
}

/**
 * Where a request message's JSON holds int64 values, worked out once per
 * method at start-up; undefined when it holds none. Nested messages are
 * followed (recursive types included); well-known types other than the int64
 * wrappers are not, since their JSON is not an object of their fields.
 */
export function int64Plan(root: DescMessage): MessagePlan | undefined {
  // Every message type reachable from the root through plain JSON objects.
  const reachable = new Set<DescMessage>();
  const visit = (message: DescMessage) => {
    if (reachable.has(message) || !plainJson(message)) return;
    reachable.add(message);
    for (const field of message.fields) {
      const nested = messageOf(field);
      if (nested) visit(nested);
    }
  };
  visit(root);
  // Those that hold int64 values, directly or through others (to a fixpoint,
  // so recursive types are decided right).
  const holding = new Set<DescMessage>();
  for (let changed = true; changed; ) {
    changed = false;
    for (const message of reachable) {
      if (holding.has(message)) continue;
      const holds = message.fields.some((field) => {
        const own = ownInt64(field);
        const nested = messageOf(field);
        return (
          own.int64 !== undefined ||
          own.int64Key !== undefined ||
          (nested !== undefined && holding.has(nested))
        );
      });
      if (holds) {
        holding.add(message);
        changed = true;
      }
    }
  }
  if (!holding.has(root)) return undefined;
  const plans = new Map<DescMessage, MessagePlan>();
  for (const message of holding) plans.set(message, { fields: [] });
  for (const [message, plan] of plans) {
    for (const field of message.fields) {
      const own = ownInt64(field);
      const nested = messageOf(field);
      const nestedPlan =
        nested !== undefined && own.int64 === undefined ? plans.get(nested) : undefined;
      if (own.int64 === undefined && own.int64Key === undefined && nestedPlan === undefined) {
        continue;
      }
      plan.fields.push({
        keys: field.jsonName === field.name ? [field.name] : [field.jsonName, field.name],
        name: field.name,
        shape: field.fieldKind === "list" ? "list" : field.fieldKind === "map" ? "map" : "singular",
        ...own,
        ...(nestedPlan === undefined ? {} : { message: nestedPlan }),
      });
    }
  }
  return plans.get(root);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** Checks the int64 values of one message's JSON; anything not shaped as expected is left to protobuf-es. */
function checkMessage(
  plan: MessagePlan,
  json: unknown,
  prefix: string,
  out: FieldViolation[],
): void {
  if (!isObject(json)) return;
  for (const field of plan.fields) {
    for (const key of field.keys) {
      if (!Object.hasOwn(json, key)) continue;
      const value = json[key];
      const path = prefix + field.name;
      if (value === null) continue;
      if (field.shape === "list") {
        if (Array.isArray(value)) {
          for (const [i, item] of value.entries()) checkValue(field, item, `${path}[${i}]`, out);
        }
      } else if (field.shape === "map") {
        if (isObject(value)) {
          for (const [mapKey, item] of Object.entries(value)) {
            const itemPath = `${path}[${JSON.stringify(mapKey)}]`;
            if (field.int64Key !== undefined) checkInt64(mapKey, field.int64Key, itemPath, out);
            checkValue(field, item, itemPath, out);
          }
        }
      } else {
        checkValue(field, value, path, out);
      }
    }
  }
}

function checkValue(field: FieldPlan, value: unknown, path: string, out: FieldViolation[]): void {
  if (field.int64 !== undefined) {
    if (value !== null) checkInt64(value, field.int64, path, out);
  } else if (field.message !== undefined) {
    checkMessage(field.message, value, `${path}.`, out);
  }
}

const DECIMAL = /^(?:0|-?[1-9][0-9]{0,19})$/;
const LIMITS = {
  signed: [-(2n ** 63n), 2n ** 63n - 1n],
  unsigned: [0n, 2n ** 64n - 1n],
} as const;

function checkInt64(
  value: unknown,
  kind: "signed" | "unsigned",
  path: string,
  out: FieldViolation[],
): void {
  const [min, max] = LIMITS[kind];
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) {
      out.push({
        field: path,
        description: Number.isInteger(value)
          ? "must be written as a string of digits when it is larger than 2^53 in magnitude"
          : "must be a whole number",
      });
    } else if (BigInt(value) < min) {
      out.push({ field: path, description: `must not be below ${min}` });
    }
    return;
  }
  if (typeof value !== "string" || !DECIMAL.test(value)) {
    out.push({
      field: path,
      description: 'must be a decimal integer: a JSON number, or a string of digits like "16"',
    });
    return;
  }
  const parsed = BigInt(value);
  if (parsed < min || parsed > max) {
    out.push({ field: path, description: `must be between ${min} and ${max}` });
  }
}
