import net from "node:net";

/** One HTTP/1.1 response: the status and the body as text. */
export interface HttpReply {
  readonly status: number;
  readonly text: string;
}

/** How long a request may wait for its whole response before the connection is cut. */
const REQUEST_TIMEOUT_MS = 60_000;
/**
 * A connection idle this long is replaced before its next request: Node
 * servers close idle keep-alive connections after 5 s, and a request written
 * just as the server closes would fail for no fault of the server.
 */
const MAX_IDLE_MS = 4_000;

const HEAD_END = Buffer.from("\r\n\r\n");
const CRLF = Buffer.from("\r\n");

/**
 * Where requests go, and how their bytes are built. A request is one string
 * (request line, headers and body), written with a single `socket.write`, so
 * the load generator spends next to nothing per call.
 */
export class HttpTarget {
  private readonly hostHeader: string;

  constructor(
    readonly host: string,
    readonly port: number,
  ) {
    this.hostHeader = `host: ${host}:${port}\r\n`;
  }

  /** A POST with a JSON body and, when given, `Authorization: Bearer <token>`. */
  post(path: string, body: unknown, bearer?: string): string {
    const payload = JSON.stringify(body);
    const auth = bearer ? `authorization: Bearer ${bearer}\r\n` : "";
    return (
      `POST ${path} HTTP/1.1\r\n${this.hostHeader}content-type: application/json\r\n${auth}` +
      `content-length: ${Buffer.byteLength(payload)}\r\n\r\n${payload}`
    );
  }

  /** A GET without a body. */
  get(path: string): string {
    return `GET ${path} HTTP/1.1\r\n${this.hostHeader}\r\n`;
  }
}

/** What the head of a response says about its body. */
interface ResponseHead {
  readonly status: number;
  /** Where the body starts in the receive buffer. */
  readonly bodyStart: number;
  /** The body's length, or -1 for chunked, or -2 for "until the connection closes". */
  readonly length: number;
  readonly close: boolean;
}

/**
 * One keep-alive HTTP/1.1 connection over a raw `net` socket, one request at
 * a time (no pipelining): write the request, parse the status line, the
 * headers and a `content-length` or chunked body. It connects on first use
 * and again after the server closes it (Node servers drop idle keep-alive
 * connections after 5 s). A transport failure rejects the pending request.
 */
export class HttpConnection {
  private socket: net.Socket | undefined;
  private pending: { resolve: (reply: HttpReply) => void; reject: (error: Error) => void } | null =
    null;
  private chunks: Buffer[] = [];
  private received = 0;
  private head: ResponseHead | null = null;
  private lastUsed = 0;

  constructor(private readonly target: HttpTarget) {}

  /** Sends one request built by the target and resolves with its response. */
  request(bytes: string): Promise<HttpReply> {
    if (this.pending) return Promise.reject(new Error("a request is already in flight"));
    const now = performance.now();
    if (this.socket && now - this.lastUsed > MAX_IDLE_MS) this.close();
    this.lastUsed = now;
    const socket = this.socket ?? this.connect();
    return new Promise<HttpReply>((resolve, reject) => {
      this.pending = { resolve, reject };
      socket.write(bytes);
    });
  }

  /** Closes the connection; a pending request fails. */
  close(): void {
    if (this.socket) this.fail(this.socket, new Error("the client closed the connection"));
  }

  private connect(): net.Socket {
    const socket = net.connect(this.target.port, this.target.host);
    socket.setNoDelay(true);
    socket.setTimeout(REQUEST_TIMEOUT_MS);
    socket.on("data", (chunk: Buffer) => this.onData(chunk));
    socket.on("timeout", () => socket.destroy(new Error("no response within 60 s")));
    socket.on("error", (error) => this.fail(socket, error));
    socket.on("end", () => this.onEnd(socket));
    socket.on("close", () => this.fail(socket, new Error("the server closed the connection")));
    this.socket = socket;
    this.reset();
    return socket;
  }

  private reset(): void {
    this.chunks = [];
    this.received = 0;
    this.head = null;
  }

  private onData(chunk: Buffer): void {
    this.chunks.push(chunk);
    this.received += chunk.length;
    if (this.head === null) {
      const buffer = this.joined();
      const end = buffer.indexOf(HEAD_END);
      if (end === -1) return;
      this.head = parseHead(buffer, end);
    }
    const head = this.head;
    if (head.length >= 0) {
      if (this.received >= head.bodyStart + head.length) {
        const buffer = this.joined();
        this.complete(head, buffer.toString("utf8", head.bodyStart, head.bodyStart + head.length));
      }
    } else if (head.length === -1) {
      const body = decodeChunked(this.joined(), head.bodyStart);
      if (body !== null) this.complete(head, body);
    }
    // length -2: the body ends when the server closes the connection (onEnd).
  }

  private onEnd(socket: net.Socket): void {
    const head = this.head;
    if (socket === this.socket && head !== null && head.length === -2) {
      this.complete(head, this.joined().toString("utf8", head.bodyStart));
    }
  }

  /** The bytes received so far for the current response, as one buffer. */
  private joined(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks, this.received)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  private complete(head: ResponseHead, text: string): void {
    const pending = this.pending;
    this.pending = null;
    this.lastUsed = performance.now();
    this.reset();
    if (head.close || head.length === -2) this.close();
    pending?.resolve({ status: head.status, text });
  }

  private fail(socket: net.Socket, error: Error): void {
    if (socket !== this.socket) return;
    this.socket = undefined;
    socket.destroy();
    this.reset();
    const pending = this.pending;
    this.pending = null;
    pending?.reject(error);
  }
}

/** Reads the status line and the headers that frame the body (`end` is the blank line). */
function parseHead(buffer: Buffer, end: number): ResponseHead {
  // "HTTP/1.1 200 OK": the status is always bytes 9 to 11.
  const status = (buffer[9] ?? 0) * 100 + (buffer[10] ?? 0) * 10 + (buffer[11] ?? 0) - 5328;
  const headers = buffer.toString("latin1", 0, end).toLowerCase();
  const bodyStart = end + HEAD_END.length;
  const close = /\r\nconnection:[ \t]*close/.test(headers);
  if (/\r\ntransfer-encoding:[^\r]*chunked/.test(headers)) {
    return { status, bodyStart, length: -1, close };
  }
  const declared = /\r\ncontent-length:[ \t]*(\d+)/.exec(headers);
  if (declared?.[1] !== undefined) {
    return { status, bodyStart, length: Number(declared[1]), close };
  }
  // No framing: 1xx, 204 and 304 have no body; anything else runs until close.
  const bodiless = status < 200 || status === 204 || status === 304;
  return { status, bodyStart, length: bodiless ? 0 : -2, close };
}

/** Decodes a chunked body starting at `start`, or returns null while it is incomplete. */
function decodeChunked(buffer: Buffer, start: number): string | null {
  const parts: Buffer[] = [];
  let at = start;
  for (;;) {
    const lineEnd = buffer.indexOf(CRLF, at);
    if (lineEnd === -1) return null;
    // The size is hex, optionally followed by ";extensions".
    const size = Number.parseInt(buffer.toString("latin1", at, lineEnd).split(";", 1)[0] ?? "", 16);
    if (!Number.isFinite(size)) throw new Error("malformed chunked body");
    const dataStart = lineEnd + CRLF.length;
    if (size === 0) {
      // The last chunk; trailers, if any, end with a blank line.
      if (buffer.length < dataStart + CRLF.length) return null;
      const noTrailers = buffer[dataStart] === 13 && buffer[dataStart + 1] === 10;
      if (!noTrailers && buffer.indexOf(HEAD_END, dataStart) === -1) return null;
      return Buffer.concat(parts).toString("utf8");
    }
    if (buffer.length < dataStart + size + CRLF.length) return null;
    parts.push(buffer.subarray(dataStart, dataStart + size));
    at = dataStart + size + CRLF.length;
  }
}
