import http2 from "node:http2";
import type { Socket } from "node:net";
import { Code, ConnectError } from "@connectrpc/connect";
import type { connectNodeAdapter } from "@connectrpc/connect-node";
import { DomainError, type ErrorKind } from "../../shared/domain-error.js";
import type { ErrorReason } from "../../shared/error-reasons.js";

type NodeHandler = ReturnType<typeof connectNodeAdapter>;
/** A request as both the HTTP/1.1 and the HTTP/2 compatibility servers hand it over. */
export type NodeRequest = Parameters<NodeHandler>[0];
/** A response of either server, typed as Connect's Node adapter takes it. */
export type NodeResponse = Parameters<NodeHandler>[1];

/**
 * A refusal of the HTTP layer (no such route, a wrong method, a body that is
 * not JSON or too large) whose HTTP status is fixed, answered like every
 * failure with the seed's `{"error": "..."}` body.
 */
export class HttpError extends DomainError {
  constructor(
    readonly status: number,
    kind: ErrorKind,
    reason: ErrorReason,
    message: string,
    readonly headers: Readonly<Record<string, string>> = {},
  ) {
    super(kind, reason, message);
  }
}

/** The largest JSON body the REST routes accept. */
const MAX_BODY_BYTES = 16 * 1024;

const UTF8 = new TextDecoder("utf-8", { fatal: true });

function malformed(status: number, message: string): HttpError {
  return new HttpError(status, "invalid_argument", "MALFORMED_REQUEST", message);
}

function tooLarge(): HttpError {
  return new HttpError(
    413,
    "resource_exhausted",
    "REQUEST_TOO_LARGE",
    `the body is larger than ${MAX_BODY_BYTES} bytes`,
  );
}

/**
 * A request's body as chunks, for Connect to read. Unlike the stream's own
 * async iterator (which Connect's Node adapter uses), leaving it early (a
 * message over the size limit) does not destroy the request, and with an
 * HTTP/1.1 request its socket's link to it: the rest can then be drained and
 * the connection kept (see {@link settleBodyAfterAnswer}).
 */
export function requestBody(req: NodeRequest): AsyncIterable<Uint8Array> {
  return new RequestBody(req);
}

/** {@link requestBody}'s iterable, a class so that no named closure is made per request (see {@link ChunkWait}). */
class RequestBody implements AsyncIterable<Uint8Array>, AsyncIterator<Uint8Array, undefined> {
  constructor(private readonly req: NodeRequest) {}

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array, undefined> {
    return this;
  }

  next(): Promise<IteratorResult<Uint8Array, undefined>> {
    return nextChunk(this.req).then((chunk) =>
      chunk === undefined
        ? { done: true as const, value: undefined }
        : { done: false as const, value: chunk },
    );
  }

  return(): Promise<IteratorResult<Uint8Array, undefined>> {
    return Promise.resolve({ done: true as const, value: undefined });
  }
}

/**
 * The next chunk of a request body, or undefined at its end. A request the
 * client abandoned before its end is an error (`canceled`), never a shorter
 * body.
 */
function nextChunk(req: NodeRequest): Promise<Buffer | undefined> {
  const chunk = req.read() as Buffer | null;
  if (chunk !== null) return Promise.resolve(chunk);
  // An HTTP/1.1 request whose whole message has arrived and been read has
  // ended, though its 'end' event is still a tick away: the usual case of a
  // small body, answered without waiting for the event.
  if (req.readableEnded || (!("stream" in req) && req.complete && req.readableLength === 0)) {
    return ended(req);
  }
  if (req.destroyed) return Promise.reject(abandoned());
  return new Promise((resolve, reject) => new ChunkWait(req, resolve, reject));
}

/**
 * One wait for the next chunk of a request body: listens for the first of
 * `readable` (a chunk), `end`, `error` and `close`, settles, and stops
 * listening. A class, with its listeners made once per wait as unnamed
 * functions: the server runs under tsx, which keeps function names, so every
 * named closure made per request costs a `defineProperty` call (measured at
 * 6% of a token request's CPU when these were four named closures).
 */
class ChunkWait {
  private readonly listeners: readonly [string, (error?: unknown) => void][];

  constructor(
    private readonly req: NodeRequest,
    private readonly resolve: (chunk: Buffer | undefined | Promise<undefined>) => void,
    private readonly reject: (error: unknown) => void,
  ) {
    this.listeners = [
      ["readable", () => this.onReadable()],
      ["end", () => this.settle(() => this.resolve(ended(this.req)))],
      ["error", (error) => this.settle(() => this.reject(abandoned(error)))],
      ["close", () => this.settle(() => this.onClose())],
    ];
    for (const [event, listener] of this.listeners) req.on(event, listener);
  }

  private onReadable(): void {
    const next = this.req.read() as Buffer | null;
    if (next === null) return;
    this.settle(() => this.resolve(next));
  }

  private onClose(): void {
    if (this.req.readableEnded) this.resolve(ended(this.req));
    else this.reject(abandoned());
  }

  /** Stops listening, then settles the wait with `outcome`. */
  private settle(outcome: () => void): void {
    for (const [event, listener] of this.listeners) this.req.off(event, listener);
    outcome();
  }
}

/** The end of a body: an HTTP/2 stream the client reset also ends its request's body. */
function ended(req: NodeRequest): Promise<undefined> {
  return req.aborted ? Promise.reject(abandoned()) : Promise.resolve(undefined);
}

/**
 * A request body that failed to arrive: its client went away (reading a
 * request can fail no other way), so it is `canceled`, not a server fault,
 * and never mistaken for the database's connection errors (ECONNRESET).
 */
function abandoned(cause?: unknown): ConnectError {
  return new ConnectError(
    "the client abandoned the request before its end",
    Code.Canceled,
    undefined,
    undefined,
    cause,
  );
}

/** Reads a JSON object body, refusing anything too large, malformed or not an object. */
export async function readJsonObject(req: NodeRequest): Promise<Record<string, unknown>> {
  const type = String(req.headers["content-type"] ?? "");
  if (!/^application\/json\b/i.test(type)) {
    throw malformed(415, "the body must be JSON (Content-Type: application/json)");
  }
  const declared = Number(req.headers["content-length"]);
  if (declared > MAX_BODY_BYTES) throw tooLarge();
  const chunks: Buffer[] = [];
  let size = 0;
  // Not `for await`: leaving it early would destroy the request, and with an
  // HTTP/1.1 request its socket, before the refusal is written.
  for (let chunk = await nextChunk(req); chunk !== undefined; chunk = await nextChunk(req)) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw tooLarge();
    chunks.push(chunk);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(UTF8.decode(Buffer.concat(chunks)));
  } catch {
    throw malformed(400, "the body is not valid JSON");
  }
  if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
    throw malformed(400, "the body must be a JSON object");
  }
  return parsed as Record<string, unknown>;
}

/** A JSON body already serialised and encoded (for bodies that are rendered once and reused). */
export class JsonBytes {
  constructor(readonly bytes: Buffer) {}
}

/** Writes a JSON response that no cache keeps. */
export function sendJson(
  res: NodeResponse,
  status: number,
  body: unknown,
  headers: Readonly<Record<string, string>> = {},
): void {
  const payload = body instanceof JsonBytes ? body.bytes : JSON.stringify(body);
  res.writeHead(status, {
    "content-type": "application/json; charset=utf-8",
    "content-length": String(
      typeof payload === "string" ? Buffer.byteLength(payload) : payload.length,
    ),
    "cache-control": "no-store",
    ...headers,
  });
  res.end(payload);
}

/**
 * How much of a request body the server reads and discards after it has
 * answered without reading it all (a refused or oversized request), so that
 * an HTTP/1.1 connection can carry the next request; the same bound as Go's
 * `net/http`. A longer body, or one that does not end within
 * {@link DRAIN_MS}, closes the connection instead.
 */
const DRAIN_MAX_BYTES = 256 * 1024;
const DRAIN_MS = 2_000;

/** How long to wait, at most, for an HTTP/2 answer to go out before resetting its stream anyway. */
const RESET_WAIT_MS = 2_000;

/**
 * Makes sure a request whose body was not read to its end does not stay open
 * after its answer (an oversized or refused request, a route that reads no
 * body). Call once per request, before answering; it acts when the answer has
 * been written:
 *
 * - HTTP/2: once the answer's last frame is out, the stream is reset with
 *   NO_ERROR, which asks the client to stop sending (RFC 9113 §8.1). Node
 *   keeps such a stream half-open otherwise, with the unread bytes in it, and
 *   a graceful shutdown waits for it until its timeout.
 * - HTTP/1.1: the rest of the body is read and discarded, up to
 *   {@link DRAIN_MAX_BYTES} and {@link DRAIN_MS}, so the connection stays
 *   usable; past either bound the connection is closed.
 */
export function settleBodyAfterAnswer(req: NodeRequest, res: NodeResponse): void {
  if ("stream" in req) {
    const stream = req.stream;
    stream.once("finish", () => resetWhenAnswered(req, stream, performance.now(), 0));
  } else {
    // Node detaches the socket from the request and the response by the time
    // they are done.
    const socket = req.socket;
    res.once("finish", () => drainOrClose(req, socket));
  }
}

function resetWhenAnswered(
  req: http2.Http2ServerRequest,
  stream: http2.ServerHttp2Stream,
  since: number,
  tries: number,
): void {
  if (stream.destroyed || stream.closed) return;
  const { localClose, remoteClose } = stream.state;
  // The client sent its whole body: the stream ends with the answer.
  if (remoteClose) return;
  if (localClose) {
    stream.close(http2.constants.NGHTTP2_NO_ERROR);
    // Node keeps a stream reset with NO_ERROR until the data it received is
    // read (and its session with it, which a graceful shutdown waits for):
    // discard it.
    if (req.destroyed) stream.destroy();
    else req.resume();
  } else if (performance.now() - since > RESET_WAIT_MS) {
    // The client reads no more of its answer either.
    stream.close(http2.constants.NGHTTP2_CANCEL);
  } else {
    // 'finish' comes when the answer is handed to the session, before its
    // last frames (gRPC's trailers among them) are sent; a reset sent before
    // them would discard them. They go out within a few turns of the event
    // loop unless the client stops reading.
    if (tries < 8) setImmediate(resetWhenAnswered, req, stream, since, tries + 1);
    else setTimeout(resetWhenAnswered, 10, req, stream, since, tries + 1);
  }
}

function drainOrClose(req: Exclude<NodeRequest, { stream: unknown }>, socket: Socket): void {
  if (req.complete) return;
  if (req.destroyed) {
    // Nothing can read the rest any more.
    socket.destroy();
    return;
  }
  let drained = 0;
  const close = () => {
    clearTimeout(timer);
    socket.destroy();
  };
  const timer = setTimeout(close, DRAIN_MS);
  timer.unref();
  req.on("data", (chunk: Buffer) => {
    drained += chunk.length;
    if (drained > DRAIN_MAX_BYTES) close();
  });
  req.once("end", () => clearTimeout(timer));
  req.once("close", () => clearTimeout(timer));
  req.resume();
}
