import http from "node:http";
import http2 from "node:http2";
import type net from "node:net";
import { createServer } from "node:net";
import { performance } from "node:perf_hooks";
import type { Logger } from "../logger.js";
import type { NodeRequest, NodeResponse } from "./rest/rest-io.js";

/** A request listener that serves both HTTP/1.1 and HTTP/2 requests. */
export type RequestListener = (req: NodeRequest, res: NodeResponse) => void;

/** The HTTP/2 client preface every h2c connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** How long an idle HTTP/2 session closed with GOAWAY may take to go before it is destroyed. */
const GOAWAY_GRACE_MS = 1_000;

/**
 * What a connection may cost before the server closes it or refuses a stream,
 * in milliseconds. Every abusive client ends at one of these: a socket that
 * sends nothing (sniff), headers sent a byte at a time (headers), a body
 * trickled in (request), a client that stops reading (send), an HTTP/2
 * connection kept open with nothing on it (idle) or too many streams at once.
 */
export interface HttpLimits {
  /** A new connection must send enough bytes to tell HTTP/1.1 from HTTP/2 within this. */
  readonly sniffTimeoutMs: number;
  /** An HTTP/1.1 request's headers must arrive within this (answered 408, then closed). */
  readonly headersTimeoutMs: number;
  /**
   * A whole request must arrive within this: on HTTP/1.1 answered 408 and
   * closed, on HTTP/2 the stream is reset. A streaming call's request is
   * complete once sent, so the response stream is never cut by it.
   */
  readonly requestTimeoutMs: number;
  /** An HTTP/1.1 connection idle between requests is closed after this. */
  readonly keepAliveTimeoutMs: number;
  /**
   * Requests an HTTP/1.1 connection may pipeline (send before the answers to
   * earlier ones) at once; past this the connection is closed.
   */
  readonly http1MaxPipelinedRequests: number;
  /**
   * A response that has bytes waiting to be sent, none of which could be sent
   * for this long (the client stopped reading), is cut: the HTTP/1.1
   * connection is closed, the HTTP/2 stream reset. A silent response (a watch
   * stream between two messages, a call waiting on the database) is not.
   */
  readonly sendTimeoutMs: number;
  /** Streams one HTTP/2 connection may have open at once; more are refused (REFUSED_STREAM). */
  readonly http2MaxConcurrentStreams: number;
  /** An HTTP/2 connection with no open stream for this long is closed with GOAWAY. */
  readonly http2IdleTimeoutMs: number;
}

/** A listening server and how to stop it. */
export interface HttpServer {
  /** The bound port (useful when listening on port 0). */
  readonly port: number;
  /**
   * Stops accepting connections, lets in-flight requests finish (up to
   * `timeoutMs`), sends GOAWAY to HTTP/2 sessions, and closes connections
   * with no request in flight (idle, still sniffing, or still sending their
   * headers); forces the rest closed after the timeout.
   */
  close(timeoutMs: number): Promise<void>;
}

/** What the HTTP/2 sweep knows of one open stream. */
interface StreamWatch {
  /** When the stream opened (performance.now()). */
  readonly openedAt: number;
  /** Whether the client has sent all of its request (END_STREAM). */
  requestDone: boolean;
  /** Bytes waiting to be sent at the last sweep. */
  pending: number;
  /** Since when bytes have waited without any being sent, if they have. */
  stalledSince: number | undefined;
}

/** A socket the HTTP/1.1 server serves: its response in progress, if any (Node's own field). */
type Http1Socket = net.Socket & { _httpMessage?: http.ServerResponse | null };

/**
 * Serves one port for every protocol: HTTP/2 without TLS (h2c, what gRPC and
 * Node Connect clients speak) and HTTP/1.1 (browsers, curl, gRPC-Web and the
 * REST routes). Node 20 cannot serve both from one plaintext server, so a raw
 * TCP server reads the first bytes of each connection and hands the socket to
 * the HTTP/2 or the HTTP/1.1 server. It waits for enough bytes to compare with
 * the whole 24-byte preface rather than trusting the first chunk, but no
 * longer than `limits.sniffTimeoutMs`.
 */
export async function startHttpServer(options: {
  host: string;
  port: number;
  listener: RequestListener;
  logger: Logger;
  limits: HttpLimits;
}): Promise<HttpServer> {
  const { listener, logger, limits } = options;
  const h1 = http.createServer(
    {
      headersTimeout: limits.headersTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      keepAliveTimeout: limits.keepAliveTimeoutMs,
      // How often Node looks for requests past the two timeouts above (30 s
      // by default, which would let a slowloris client stay that much longer).
      connectionsCheckingInterval: sweepInterval(limits.headersTimeoutMs, limits.requestTimeoutMs),
    },
    (req, res) => {
      // A pipelined request (sent before the answer to the previous one) has
      // no socket until the answers ahead of it are sent. Node parses and
      // dispatches every request of a chunk it reads, so a client that
      // pipelines and never reads would have the server build hundreds of
      // answers per connection; past the limit its connection is closed.
      if (res.socket === null && !admitPipelined(req.socket as net.Socket, res)) return;
      listener(req, res);
    },
  );
  /** Requests of each HTTP/1.1 connection waiting behind the one being answered. */
  const pipelined = new WeakMap<net.Socket, number>();
  const admitPipelined = (socket: net.Socket, res: http.ServerResponse): boolean => {
    if (socket.destroyed) return false;
    const waiting = (pipelined.get(socket) ?? 0) + 1;
    if (waiting > limits.http1MaxPipelinedRequests) {
      logger.debug("closing an HTTP/1.1 connection that pipelined too many requests");
      socket.resetAndDestroy();
      return false;
    }
    pipelined.set(socket, waiting);
    res.once("socket", () => pipelined.set(socket, (pipelined.get(socket) ?? 1) - 1));
    return true;
  };
  // A socket with no byte moving either way for this long is handed to the
  // 'timeout' listener below (Node refreshes the timer on every read and
  // every completed write).
  h1.timeout = limits.sendTimeoutMs;
  /** What the kernel had taken from a socket with bytes waiting, at the last look. */
  const sentAtLastLook = new WeakMap<net.Socket, number>();
  h1.on("timeout", (socket: Http1Socket) => {
    if (socket.writableLength === 0) {
      sentAtLastLook.delete(socket);
      // Silence while a request is being served is fine (a watch stream
      // between two messages, a call waiting on the database). Outside a
      // request (before one, or past the keep-alive timeout after one) the
      // connection goes, as Node would do without this listener.
      if (socket._httpMessage == null) socket.destroy();
      return;
    }
    // Bytes wait to be sent. A response is one large write, and Node only
    // refreshes the timer when a whole write completes, so look at what the
    // kernel took since the last look: any progress earns another period.
    const sent = bytesSent(socket);
    const before = sentAtLastLook.get(socket);
    if (before === undefined || sent > before) {
      sentAtLastLook.set(socket, sent);
      socket.setTimeout(limits.sendTimeoutMs);
      return;
    }
    logger.debug("closing an HTTP/1.1 connection whose client stopped reading");
    // A reset, not a FIN: the kernel drops the bytes it could not send
    // instead of holding them for a client that does not read.
    socket.resetAndDestroy();
  });
  // Node tracks connections (what closeIdleConnections and the two timeouts
  // need) from the 'listening' event on; this server never listens itself, it
  // is handed sockets by the sniffer below.
  h1.emit("listening");

  const h2 = http2.createServer(
    { settings: { maxConcurrentStreams: limits.http2MaxConcurrentStreams } },
    listener as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  const streams = new Map<http2.ServerHttp2Stream, StreamWatch>();
  h2.on("session", (session) => {
    sessions.add(session);
    let open = 0;
    let goaway: NodeJS.Timeout | undefined;
    // One timer per session, re-armed (refresh) whenever its last stream
    // closes; when it fires with streams open it does nothing.
    const idle = setTimeout(() => {
      if (open > 0 || session.closed || session.destroyed) return;
      logger.debug("closing an idle HTTP/2 session");
      session.close();
      // A client that does not read may never take the GOAWAY.
      goaway = setTimeout(() => session.destroy(), GOAWAY_GRACE_MS);
      goaway.unref();
    }, limits.http2IdleTimeoutMs);
    idle.unref();
    session.on("stream", (stream) => {
      open += 1;
      streams.set(stream, {
        openedAt: performance.now(),
        requestDone: stream.endAfterHeaders,
        pending: 0,
        stalledSince: undefined,
      });
      stream.once("close", () => {
        streams.delete(stream);
        open -= 1;
        if (open === 0) idle.refresh();
      });
    });
    session.once("close", () => {
      clearTimeout(idle);
      clearTimeout(goaway);
      sessions.delete(session);
    });
  });

  /**
   * Resets HTTP/2 streams whose request did not arrive within the request
   * timeout, or whose response could not be sent for the send timeout.
   * One pass over the open streams, a few times per timeout.
   */
  const sweepStreams = () => {
    const now = performance.now();
    for (const [stream, watch] of streams) {
      if (!watch.requestDone && now - watch.openedAt >= limits.requestTimeoutMs) {
        if (stream.state.remoteClose) {
          watch.requestDone = true;
        } else {
          logger.debug("resetting an HTTP/2 stream whose request did not arrive in time");
          stream.close(http2.constants.NGHTTP2_CANCEL);
          continue;
        }
      }
      // Bytes waiting to be sent, or an ended response the client does not
      // let finish: a flow-control window of 0 holds back even the empty
      // DATA frame that goes before trailers (a gRPC error's status).
      const pending = stream.bufferSize + (stream.writableEnded ? 1 : 0);
      if (pending > 0 && pending >= watch.pending) {
        watch.stalledSince ??= now;
        if (now - watch.stalledSince >= limits.sendTimeoutMs) {
          logger.debug("resetting an HTTP/2 stream whose client stopped reading");
          stream.close(http2.constants.NGHTTP2_CANCEL);
          continue;
        }
      } else {
        watch.stalledSince = undefined;
      }
      watch.pending = pending;
    }
  };
  const sweeper = setInterval(
    sweepStreams,
    sweepInterval(limits.requestTimeoutMs, limits.sendTimeoutMs),
  );
  sweeper.unref();

  const sockets = new Set<net.Socket>();
  /** Sockets whose first bytes have not told their protocol yet. */
  const sniffing = new Set<net.Socket>();
  /** Sockets handed to the HTTP/1.1 server. */
  const http1Sockets = new Set<Http1Socket>();
  const tcp = createServer((socket) => {
    // What a node:http server does for the sockets it accepts itself, and
    // not for sockets handed to it (an HTTP/2 session does it on its own):
    // without it Nagle's algorithm holds back a small write (a stream's next
    // message) while an earlier one is not yet acknowledged.
    socket.setNoDelay(true);
    sockets.add(socket);
    sniffing.add(socket);
    const sniffTimer = setTimeout(() => {
      logger.debug("closing a connection that did not say its protocol in time");
      socket.destroy();
    }, limits.sniffTimeoutMs);
    sniffTimer.unref();
    socket.once("close", () => {
      clearTimeout(sniffTimer);
      sockets.delete(socket);
      sniffing.delete(socket);
      http1Sockets.delete(socket);
    });
    socket.on("error", (error) => logger.debug({ err: error }, "client socket error"));
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const compared = Math.min(buffered.length, H2_PREFACE.length);
      const prefix = buffered.subarray(0, compared);
      const looksH2 = prefix.equals(H2_PREFACE.subarray(0, compared));
      if (looksH2 && buffered.length < H2_PREFACE.length) return; // need more bytes to be sure
      clearTimeout(sniffTimer);
      sniffing.delete(socket);
      socket.off("data", onData);
      socket.pause();
      socket.unshift(buffered);
      if (looksH2) {
        // The HTTP/2 session reads the unshifted bytes itself on the next
        // tick; resuming here would spill them as 'data' events nobody hears.
        h2.emit("connection", socket);
      } else {
        http1Sockets.add(socket);
        h1.emit("connection", socket);
        socket.resume();
      }
    };
    socket.on("data", onData);
  });
  tcp.on("error", (error) => logger.error({ err: error }, "listener error"));

  await new Promise<void>((resolve, reject) => {
    tcp.once("error", reject);
    tcp.listen(options.port, options.host, () => {
      tcp.off("error", reject);
      resolve();
    });
  });
  const address = tcp.address();
  const port = typeof address === "object" && address ? address.port : options.port;

  /**
   * Closes what has no request in flight: sockets still sniffing, and
   * HTTP/1.1 connections between requests or still sending a request's
   * headers (nothing of it has run yet, so the client may safely retry).
   */
  const closeUnbusy = () => {
    for (const socket of sniffing) socket.destroy();
    for (const socket of http1Sockets) {
      if (socket._httpMessage == null) socket.destroy();
    }
  };

  let closing: Promise<void> | undefined;
  return {
    port,
    close(timeoutMs) {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
        for (const session of sessions) session.close();
        closeUnbusy();
        const idle = setInterval(closeUnbusy, 100);
        let forcedTimer: NodeJS.Timeout | undefined;
        const forced = new Promise<void>((resolve) => {
          forcedTimer = setTimeout(() => {
            for (const socket of sockets) socket.destroy();
            for (const session of sessions) session.destroy();
            resolve();
          }, timeoutMs);
          forcedTimer.unref();
        });
        await Promise.race([stopped, forced]);
        clearTimeout(forcedTimer);
        clearInterval(idle);
        clearInterval(sweeper);
      })();
      return closing;
    },
  };
}

/**
 * The bytes the kernel has taken from a socket so far: what Node dispatched to
 * libuv minus what libuv still queues (Node's own counters, which its
 * `bytesWritten` is built on).
 */
function bytesSent(socket: net.Socket): number {
  const internals = socket as net.Socket & {
    _bytesDispatched?: number;
    _handle?: { writeQueueSize?: number } | null;
  };
  return (internals._bytesDispatched ?? 0) - (internals._handle?.writeQueueSize ?? 0);
}

/** How often to look for requests past a timeout: a few times per the shorter one, at most once a second. */
function sweepInterval(aMs: number, bMs: number): number {
  return Math.max(50, Math.min(1_000, Math.floor(Math.min(aMs, bMs) / 4)));
}
