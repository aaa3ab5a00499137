import http2 from "node:http2";
import net from "node:net";
import { expect } from "chai";
import { createLogger } from "../../../server/src/logger.js";
import {
  type HttpLimits,
  type HttpServer,
  startHttpServer,
} from "../../../server/src/transport/http-server.js";
import type { NodeRequest, NodeResponse } from "../../../server/src/transport/rest/rest-io.js";

/** Limits that never get in a test's way; each suite shortens the ones it tests. */
const RELAXED: HttpLimits = {
  sniffTimeoutMs: 60_000,
  headersTimeoutMs: 60_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 60_000,
  http1MaxPipelinedRequests: 1_000,
  sendTimeoutMs: 60_000,
  http2MaxConcurrentStreams: 100,
  http2IdleTimeoutMs: 60_000,
};

/**
 * The generous bound on every wait for the server to act: the limits under
 * test are a few hundred milliseconds, so only a missing limit runs into it.
 */
const DEADLINE_MS = 5_000;

const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/** `promise`, or a failure naming `what` when it takes longer than `ms`. */
function within<T>(promise: Promise<T>, what: string, ms = DEADLINE_MS): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** A raw TCP client that records what it receives and when the server closed it. */
class RawClient {
  readonly socket: net.Socket;
  received = "";
  error: Error | undefined;
  readonly closed: Promise<void>;
  readonly connected: Promise<void>;

  constructor(port: number, options: { read?: boolean } = {}) {
    this.socket = net.connect(port, "127.0.0.1");
    this.connected = new Promise((resolve) => this.socket.once("connect", () => resolve()));
    this.closed = new Promise((resolve) => this.socket.once("close", () => resolve()));
    this.socket.on("error", (error) => {
      this.error = error;
    });
    if (options.read === false) {
      this.socket.pause();
    } else {
      this.socket.setEncoding("latin1");
      this.socket.on("data", (chunk: string) => {
        this.received += chunk;
      });
    }
  }

  get isClosed(): boolean {
    return this.socket.destroyed;
  }

  write(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  destroy(): void {
    this.socket.destroy();
  }
}

/** What the server saw of each response: its path and whether it was sent whole. */
interface Closed {
  readonly path: string;
  /** Whether the listener ended the response. */
  readonly ended: boolean;
  /** Whether all of it was handed on (Node's writableFinished). */
  readonly finished: boolean;
}

/** An HTTP/1.1 connection the server closed, by the path of its last request. */
interface SocketClosed {
  readonly path: string;
}

/**
 * Starts a server whose listener plays every kind of call the limits must
 * tell apart: a quick answer, a body read to the end, a streaming response, a
 * silent one, a large one, and one held open until the test lets go.
 */
async function startServer(limits: Partial<HttpLimits>) {
  const closes: Closed[] = [];
  const socketCloses: SocketClosed[] = [];
  /** Requests the listener was given, by path. */
  const seen = new Map<string, number>();
  const held = new Set<NodeResponse>();
  let heldPeak = 0;
  const server = await startHttpServer({
    host: "127.0.0.1",
    port: 0,
    logger: createLogger("silent"),
    limits: { ...RELAXED, ...limits },
    listener: (req: NodeRequest, res: NodeResponse) => {
      const url = new URL(req.url ?? "/", "http://x");
      seen.set(url.pathname, (seen.get(url.pathname) ?? 0) + 1);
      res.once("close", () => {
        closes.push({
          path: url.pathname,
          ended: res.writableEnded,
          finished: res.writableFinished,
        });
      });
      if (req.httpVersion === "1.1") {
        req.socket.once("close", () => {
          socketCloses.push({ path: url.pathname });
        });
      }
      const n = (name: string, fallback: number) => Number(url.searchParams.get(name) ?? fallback);
      switch (url.pathname) {
        case "/echo": {
          let length = 0;
          req.on("data", (chunk: Buffer) => {
            length += chunk.length;
          });
          req.on("end", () => res.end(`read ${length}`));
          req.on("error", () => undefined);
          return;
        }
        case "/stream": {
          let sent = 0;
          const timer = setInterval(
            () => {
              sent += 1;
              res.write(`chunk ${sent}\n`);
              if (sent === n("n", 10)) {
                clearInterval(timer);
                res.end();
              }
            },
            n("every", 100),
          );
          res.once("close", () => clearInterval(timer));
          return;
        }
        case "/silent": {
          const timer = setTimeout(() => res.end("done"), n("ms", 1000));
          res.once("close", () => clearTimeout(timer));
          return;
        }
        case "/big":
          res.end(Buffer.alloc(n("kb", 1024) * 1024, 0x61));
          return;
        case "/trailers":
          // What a gRPC error looks like: headers, no message, a status in trailers.
          res.writeHead(200, { "content-type": "application/grpc" });
          res.addTrailers({ "grpc-status": "8" });
          res.end();
          return;
        case "/hold":
          held.add(res);
          heldPeak = Math.max(heldPeak, held.size);
          res.once("close", () => held.delete(res));
          return;
        default:
          res.setHeader("x-remote-port", String(req.socket.remotePort));
          res.end(req.httpVersion);
      }
    },
  });
  return {
    server,
    closes,
    socketCloses,
    seen,
    held,
    get heldPeak() {
      return heldPeak;
    },
    /** Waits until the server has seen the response of `path` close. */
    async closeOf(path: string): Promise<Closed> {
      for (;;) {
        const found = closes.find((c) => c.path === path);
        if (found) return found;
        await sleep(20);
      }
    },
  };
}

/** One HTTP/2 request's outcome. */
interface H2Result {
  readonly status: number | undefined;
  readonly body: string;
  readonly rstCode: number | undefined;
}

function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  options: { end?: boolean } = {},
): { stream: http2.ClientHttp2Stream; done: Promise<H2Result> } {
  const stream = session.request(headers, { endStream: options.end ?? true });
  const done = new Promise<H2Result>((resolve) => {
    let status: number | undefined;
    let body = "";
    stream.on("response", (h) => {
      status = Number(h[":status"]);
    });
    stream.setEncoding("utf8");
    stream.on("data", (chunk: string) => {
      body += chunk;
    });
    stream.on("error", () => undefined);
    stream.on("close", () => resolve({ status, body, rstCode: stream.rstCode }));
  });
  return { stream, done };
}

function h2Connect(port: number, options: http2.ClientSessionOptions = {}) {
  const session = http2.connect(`http://127.0.0.1:${port}`, options);
  session.on("error", () => undefined);
  const goaway = new Promise<void>((resolve) => session.once("goaway", () => resolve()));
  const closed = new Promise<void>((resolve) => session.once("close", () => resolve()));
  return { session, goaway, closed };
}

describe("startHttpServer", () => {
  describe("Nagle's algorithm", () => {
    let server: HttpServer;
    /** Server-side sockets (local port = the server's) that had Nagle switched off. */
    const noDelay = new Set<number>();
    const original = net.Socket.prototype.setNoDelay;

    before(async () => {
      server = (await startServer({})).server;
      net.Socket.prototype.setNoDelay = function (this: net.Socket, enable?: boolean) {
        if (enable !== false && this.localPort === server.port && this.remotePort !== undefined) {
          noDelay.add(this.remotePort);
        }
        return original.call(this, enable);
      };
    });

    after(async () => {
      net.Socket.prototype.setNoDelay = original;
      await server?.close(250);
    });

    it("switches Nagle's algorithm off on HTTP/1.1 connections, as node:http does", async () => {
      const res = await fetch(`http://127.0.0.1:${server.port}/`);
      expect(await res.text()).to.equal("1.1");
      const port = Number(res.headers.get("x-remote-port"));
      expect(noDelay.has(port), `socket from port ${port}`).to.equal(true);
    });

    it("leaves it off on HTTP/2 (h2c) connections too", async () => {
      const session = http2.connect(`http://127.0.0.1:${server.port}`);
      try {
        const { version, port } = await new Promise<{ version: string; port: number }>(
          (resolve, reject) => {
            const stream = session.request({ ":path": "/" });
            let body = "";
            let port = 0;
            stream.on("response", (headers) => {
              port = Number(headers["x-remote-port"]);
            });
            stream.setEncoding("utf8");
            stream.on("data", (chunk: string) => {
              body += chunk;
            });
            stream.on("end", () => resolve({ version: body, port }));
            stream.on("error", reject);
          },
        );
        expect(version).to.equal("2.0");
        expect(noDelay.has(port), `socket from port ${port}`).to.equal(true);
      } finally {
        session.close();
      }
    });
  });

  describe("the sniffer timeout", () => {
    let s: Awaited<ReturnType<typeof startServer>>;
    const clients: RawClient[] = [];

    before(async () => {
      s = await startServer({ sniffTimeoutMs: 200 });
    });

    after(async () => {
      for (const client of clients) client.destroy();
      await s?.server.close(250);
    });

    it("closes a connection that sends nothing", async () => {
      const client = new RawClient(s.server.port);
      clients.push(client);
      await within(client.closed, "the silent connection closed");
      expect(client.received).to.equal("");
    });

    it("closes a connection that sends part of the HTTP/2 preface and stalls", async () => {
      const client = new RawClient(s.server.port);
      clients.push(client);
      await client.connected;
      client.write("PRI * HTTP/2.0\r\n");
      await within(client.closed, "the stalled preface closed");
    });

    it("lets a connection that said its protocol in time live past it", async () => {
      const client = new RawClient(s.server.port);
      clients.push(client);
      await client.connected;
      client.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await within(
        (async () => {
          while (!client.received.endsWith("1.1")) await sleep(20);
        })(),
        "the answer",
      );
      await sleep(400);
      expect(client.isClosed).to.equal(false);
      client.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await within(
        (async () => {
          while (client.received.split("HTTP/1.1 200").length < 3) await sleep(20);
        })(),
        "the second answer on the same connection",
      );
    });
  });

  describe("HTTP/1.1 timeouts", () => {
    let s: Awaited<ReturnType<typeof startServer>>;
    const clients: RawClient[] = [];

    before(async () => {
      s = await startServer({
        headersTimeoutMs: 300,
        requestTimeoutMs: 600,
        keepAliveTimeoutMs: 300,
        sendTimeoutMs: 400,
      });
    });

    after(async () => {
      for (const client of clients) client.destroy();
      await s?.server.close(250);
    });

    function client(options: { read?: boolean } = {}): RawClient {
      const c = new RawClient(s.server.port, options);
      clients.push(c);
      return c;
    }

    /** Writes `chunks` one at a time, `everyMs` apart, until done or the socket closes. */
    async function drip(c: RawClient, chunks: string[], everyMs: number): Promise<void> {
      for (const chunk of chunks) {
        if (c.isClosed) return;
        c.write(chunk);
        await sleep(everyMs);
      }
    }

    it("answers 408 and closes a connection whose headers come a byte at a time (slowloris)", async () => {
      const c = client();
      await c.connected;
      const headers = `GET / HTTP/1.1\r\nHost: x\r\nX-Padding: ${"a".repeat(200)}\r\n\r\n`;
      const dripping = drip(c, [...headers], 30);
      await within(c.closed, "the slowloris connection closed");
      await dripping;
      expect(c.received).to.match(/^HTTP\/1\.1 408 /);
    });

    it("answers 408 and closes a request whose body trickles in past the request timeout", async () => {
      const c = client();
      await c.connected;
      c.write("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n");
      const dripping = drip(
        c,
        Array.from({ length: 100 }, () => "x".repeat(10)),
        50,
      );
      await within(c.closed, "the trickling request closed");
      await dripping;
      expect(c.received).to.match(/^HTTP\/1\.1 408 /);
      const echo = await within(s.closeOf("/echo"), "the server gave up the request");
      expect(echo.ended).to.equal(false);
    });

    it("serves a body that arrives in time", async () => {
      const res = await fetch(`http://127.0.0.1:${s.server.port}/echo`, {
        method: "POST",
        body: "y".repeat(5000),
      });
      expect(await res.text()).to.equal("read 5000");
    });

    it("never cuts a streaming response whose request was complete (a watch stream)", async () => {
      // 1.2 s of messages: twice the request timeout, three send timeouts.
      const res = await fetch(`http://127.0.0.1:${s.server.port}/stream?n=12&every=100`);
      const text = await res.text();
      expect(text.trim().split("\n")).to.have.length(12);
    });

    it("keeps a silent response open past the send timeout: nothing waits to be sent", async () => {
      const res = await fetch(`http://127.0.0.1:${s.server.port}/silent?ms=1000`);
      expect(await res.text()).to.equal("done");
    });

    it("closes a keep-alive connection idle past the keep-alive timeout", async () => {
      const c = client();
      await c.connected;
      c.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      await within(c.closed, "the idle keep-alive connection closed");
      expect(c.received).to.match(/^HTTP\/1\.1 200 /);
    });

    it("resets a connection whose client stops reading a large response", async () => {
      const c = client({ read: false });
      await c.connected;
      // More than the kernel's buffers on both ends take.
      c.write("GET /big?kb=32768 HTTP/1.1\r\nHost: x\r\n\r\n");
      const cut = await within(
        (async () => {
          for (;;) {
            const found = s.socketCloses.find((c) => c.path === "/big");
            if (found) return found;
            await sleep(20);
          }
        })(),
        "the server closed the connection of the unread response",
      );
      expect(cut.path).to.equal("/big");
      // The client gets what its kernel had taken, far short of the whole response.
      let received = 0;
      c.socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
      });
      c.socket.resume();
      await within(c.closed, "the client saw the end");
      expect(received).to.be.lessThan(32 * 1024 * 1024);
    });
  });

  describe("HTTP/1.1 pipelining", () => {
    let s: Awaited<ReturnType<typeof startServer>>;

    before(async () => {
      s = await startServer({ http1MaxPipelinedRequests: 4 });
    });

    after(async () => {
      await s?.server.close(250);
    });

    it("answers requests pipelined up to the limit, in order", async () => {
      const c = new RawClient(s.server.port);
      try {
        await c.connected;
        c.write("GET /silent?ms=200 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(5));
        await within(
          (async () => {
            while (c.received.split("done").length < 6) await sleep(20);
          })(),
          "five answers",
        );
        expect(c.isClosed).to.equal(false);
      } finally {
        c.destroy();
      }
    });

    it("closes a connection that pipelines more, without building their answers", async () => {
      const c = new RawClient(s.server.port);
      await c.connected;
      const before = s.seen.get("/big") ?? 0;
      c.write("GET /big?kb=64 HTTP/1.1\r\nHost: x\r\n\r\n".repeat(200));
      await within(c.closed, "the connection closed");
      // The one being answered and the four allowed behind it, of 200.
      expect((s.seen.get("/big") ?? 0) - before).to.equal(5);
    });
  });

  describe("HTTP/1.1 send timeout and a slow reader", () => {
    let s: Awaited<ReturnType<typeof startServer>>;

    before(async () => {
      s = await startServer({ sendTimeoutMs: 2_000 });
    });

    after(async () => {
      await s?.server.close(250);
    });

    it("lets a client that reads slowly but keeps reading get all of a large response", async () => {
      // One 8 MiB write: Node only refreshes the socket's timer when a whole
      // write completes, which takes several send timeouts at this pace.
      const c = new RawClient(s.server.port, { read: false });
      await c.connected;
      c.write("GET /big?kb=8192 HTTP/1.1\r\nHost: x\r\n\r\n");
      // About 1 MiB/s: a pause of 50 ms after each chunk it reads.
      c.socket.on("data", () => {
        c.socket.pause();
        setTimeout(() => c.socket.resume(), 50);
      });
      c.socket.resume();
      try {
        const big = await within(s.closeOf("/big"), "the large response ended", 30_000);
        expect(big.finished).to.equal(true);
      } finally {
        c.destroy();
      }
    });
  });

  describe("HTTP/2 limits", () => {
    let s: Awaited<ReturnType<typeof startServer>>;
    const sessions: http2.ClientHttp2Session[] = [];

    before(async () => {
      s = await startServer({
        http2MaxConcurrentStreams: 2,
        http2IdleTimeoutMs: 300,
        headersTimeoutMs: 300,
        requestTimeoutMs: 600,
        sendTimeoutMs: 400,
      });
    });

    after(async () => {
      for (const session of sessions) session.destroy();
      await s?.server.close(250);
    });

    function connect(options: http2.ClientSessionOptions = {}) {
      const c = h2Connect(s.server.port, options);
      sessions.push(c.session);
      return c;
    }

    it("advertises the stream limit and never serves more streams of a connection at once", async () => {
      const { session } = connect();
      const requests = Array.from({ length: 5 }, () => h2Request(session, { ":path": "/hold" }));
      await within(
        (async () => {
          while (s.held.size < 2) await sleep(20);
        })(),
        "two held streams",
      );
      expect(session.remoteSettings.maxConcurrentStreams).to.equal(2);
      await sleep(200);
      expect(s.heldPeak).to.equal(2);
      // Let every held stream go, until all five settled: streams past the
      // limit were refused (REFUSED_STREAM) or waited for a free slot.
      let settled = false;
      const all = Promise.all(requests.map((r) => r.done)).finally(() => {
        settled = true;
      });
      while (!settled) {
        for (const res of s.held) res.end("released");
        await sleep(20);
      }
      for (const result of await all) {
        if (result.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM) continue;
        expect(result.body).to.equal("released");
      }
      expect(s.heldPeak).to.equal(2);
    });

    it("closes a connection with no open stream after the idle timeout, with GOAWAY", async () => {
      const { session, goaway, closed } = connect();
      const result = await h2Request(session, { ":path": "/" }).done;
      expect(result.body).to.equal("2.0");
      await within(goaway, "GOAWAY");
      await within(closed, "the idle session closed");
    });

    it("keeps a connection open while a stream is open, however quiet", async () => {
      const { session, goaway } = connect();
      let goawayBeforeAnswer = false;
      void goaway.then(() => {
        goawayBeforeAnswer = true;
      });
      // Silent for more than three idle timeouts.
      const result = await within(
        h2Request(session, { ":path": "/silent?ms=1000" }).done,
        "the silent call",
      );
      expect(result.body).to.equal("done");
      expect(goawayBeforeAnswer).to.equal(false);
      await within(goaway, "GOAWAY once the stream closed");
    });

    it("closes a connection that sends the preface and nothing else", async () => {
      const c = new RawClient(s.server.port);
      await c.connected;
      c.write(H2_PREFACE);
      await within(c.closed, "the silent HTTP/2 connection closed");
    });

    it("resets a stream whose request body does not arrive within the request timeout", async () => {
      const { session } = connect();
      const { stream, done } = h2Request(
        session,
        { ":path": "/echo", ":method": "POST" },
        { end: false },
      );
      stream.write("only part of it");
      const result = await within(done, "the slow request reset");
      expect(result.rstCode).to.equal(http2.constants.NGHTTP2_CANCEL);
      const echo = await within(s.closeOf("/echo"), "the server gave up the request");
      expect(echo.ended).to.equal(false);
    });

    it("never resets a streaming response whose request was complete", async () => {
      const { session } = connect();
      const result = await within(
        h2Request(session, { ":path": "/stream?n=12&every=100" }).done,
        "the stream",
      );
      expect(result.body.trim().split("\n")).to.have.length(12);
      expect(result.rstCode).to.equal(http2.constants.NGHTTP2_NO_ERROR);
    });

    it("resets a stream whose client reads nothing, then closes the idle connection", async () => {
      // A flow-control window of 0: the server may not send a byte of DATA.
      const { session, closed } = connect({ settings: { initialWindowSize: 0 } });
      const { done } = h2Request(session, { ":path": "/big?kb=64" });
      const big = await within(s.closeOf("/big"), "the server reset the unread stream");
      expect(big.finished).to.equal(false);
      const result = await within(done, "the client saw the reset");
      expect(result.rstCode).to.equal(http2.constants.NGHTTP2_CANCEL);
      await within(closed, "the connection, idle now, closed");
    });
  });

  describe("HTTP/2 send timeout and answers without a body", () => {
    let s: Awaited<ReturnType<typeof startServer>>;

    before(async () => {
      s = await startServer({ http2IdleTimeoutMs: 300, sendTimeoutMs: 400 });
    });

    after(async () => {
      await s?.server.close(250);
    });

    it("resets a stream whose client does not let even its trailers through (window 0)", async () => {
      const { session, closed } = h2Connect(s.server.port, { settings: { initialWindowSize: 0 } });
      try {
        const result = await within(
          h2Request(session, { ":path": "/trailers" }).done,
          "the stuck answer reset",
        );
        expect(result.rstCode).to.equal(http2.constants.NGHTTP2_CANCEL);
        await within(closed, "the connection, idle now, closed");
      } finally {
        session.destroy();
      }
    });
  });

  describe("close()", () => {
    it("closes at once what has no request in flight, so a drain is not held up by it", async () => {
      const s = await startServer({});
      const silent = new RawClient(s.server.port);
      const preface = new RawClient(s.server.port);
      const slowHeaders = new RawClient(s.server.port);
      const keepAlive = new RawClient(s.server.port);
      await Promise.all([silent, preface, slowHeaders, keepAlive].map((c) => c.connected));
      preface.write("PRI * HTTP/2.0\r\n");
      slowHeaders.write("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
      keepAlive.write("GET / HTTP/1.1\r\nHost: x\r\n\r\n");
      const h2 = h2Connect(s.server.port);
      expect((await h2Request(h2.session, { ":path": "/" }).done).body).to.equal("2.0");
      while (!keepAlive.received.endsWith("1.1")) await sleep(20);

      // Every limit is a minute here: only closing them at once ends the drain in time.
      await within(s.server.close(60_000), "the drain");
      await within(
        Promise.all([
          silent.closed,
          preface.closed,
          slowHeaders.closed,
          keepAlive.closed,
          h2.closed,
        ]),
        "every connection closed",
      );
    });
  });
});
