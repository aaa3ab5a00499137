import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import type { Logger } from "../logger.js";
import type { NodeRequest, NodeResponse } from "./rest/rest-io.js";

/** A request listener that serves both HTTP/1.1 and HTTP/2 requests. */
export type RequestListener = (req: NodeRequest, res: NodeResponse) => void;

/** The HTTP/2 client preface every h2c connection starts with (RFC 9113 §3.4). */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");

/** A listening server and how to stop it. */
export interface HttpServer {
  /** The bound port (useful when listening on port 0). */
  readonly port: number;
  /**
   * Stops accepting connections, lets in-flight requests finish (up to
   * `timeoutMs`), sends GOAWAY to HTTP/2 sessions, and closes idle
   * connections; forces the rest closed after the timeout.
   */
  close(timeoutMs: number): Promise<void>;
}

/**
 * Serves one port for every protocol: HTTP/2 without TLS (h2c, what gRPC and
 * Node Connect clients speak) and HTTP/1.1 (browsers, curl, gRPC-Web and the
 * REST routes). Node 20 cannot serve both from one plaintext server, so a raw
 * TCP server reads the first bytes of each connection and hands the socket to
 * the HTTP/2 or the HTTP/1.1 server. It waits for enough bytes to compare with
 * the whole 24-byte preface rather than trusting the first chunk.
 */
export async function startHttpServer(options: {
  host: string;
  port: number;
  listener: RequestListener;
  logger: Logger;
}): Promise<HttpServer> {
  const { listener, logger } = options;
  const h1 = http.createServer(listener as http.RequestListener);
  // Streams of the waiting room can stay open for a long time.
  h1.requestTimeout = 0;
  h1.keepAliveTimeout = 5_000;
  // Node tracks connections (what closeIdleConnections needs) from the
  // 'listening' event on; this server never listens itself, it is handed
  // sockets by the sniffer below.
  h1.emit("listening");
  const h2 = http2.createServer(
    {},
    listener as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
  );
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
  });
  const sockets = new Set<net.Socket>();

  const tcp = net.createServer((socket) => {
    // What a node:http server does for the sockets it accepts itself, and
    // not for sockets handed to it (an HTTP/2 session does it on its own):
    // without it Nagle's algorithm holds back a small write (a stream's next
    // message) while an earlier one is not yet acknowledged.
    socket.setNoDelay(true);
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", (error) => logger.debug({ err: error }, "client socket error"));
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      const compared = Math.min(buffered.length, H2_PREFACE.length);
      const prefix = buffered.subarray(0, compared);
      const looksH2 = prefix.equals(H2_PREFACE.subarray(0, compared));
      if (looksH2 && buffered.length < H2_PREFACE.length) return; // need more bytes to be sure
      socket.off("data", onData);
      socket.pause();
      socket.unshift(buffered);
      if (looksH2) {
        // The HTTP/2 session reads the unshifted bytes itself on the next
        // tick; resuming here would spill them as 'data' events nobody hears.
        h2.emit("connection", socket);
      } else {
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

  let closing: Promise<void> | undefined;
  return {
    port,
    close(timeoutMs) {
      closing ??= (async () => {
        const stopped = new Promise<void>((resolve) => tcp.close(() => resolve()));
        for (const session of sessions) session.close();
        h1.closeIdleConnections();
        const idle = setInterval(() => h1.closeIdleConnections(), 100);
        const forced = new Promise<void>((resolve) => {
          setTimeout(() => {
            for (const socket of sockets) socket.destroy();
            for (const session of sessions) session.destroy();
            resolve();
          }, timeoutMs).unref();
        });
        await Promise.race([stopped, forced]);
        clearInterval(idle);
      })();
      return closing;
    },
  };
}
