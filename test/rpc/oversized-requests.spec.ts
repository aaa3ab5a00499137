import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, rm } from "node:fs/promises";
import http from "node:http";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { Code, ConnectError } from "@connectrpc/connect";
import { errorFromJsonBytes } from "@connectrpc/connect/protocol-connect";
import { findTrailerError } from "@connectrpc/connect/protocol-grpc";
import { expect } from "chai";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import type { TestServer } from "../support/test-server.js";
import { frame } from "./raw-calls.js";
import { expectRpcError, must, startRpcServer, withDeadline } from "./rpc-kit.js";

const LIST_DATES = "/stagedoor.catalog.v1.CatalogService/ListConcertDates";
const MIB = 1024 * 1024;
const tooLarge = { code: Code.ResourceExhausted, reason: "REQUEST_TOO_LARGE" };

/** What an HTTP/2 request got back, and how its stream ended. */
interface H2Outcome {
  readonly status: number;
  readonly headers: Headers;
  readonly body: Buffer;
  /** Set when the stream closed; it can only be the server that closed it. */
  readonly rstCode: number | undefined;
}

/**
 * Sends an HTTP/2 request with a body of `bodyBytes` that the client never
 * ends (as a client still uploading would), and waits until the stream is
 * closed: by the server, since the client never ends it.
 */
function h2Oversized(
  baseUrl: string,
  headers: http2.OutgoingHttpHeaders,
  body: Uint8Array,
): Promise<H2Outcome> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(baseUrl);
    session.on("error", reject);
    const stream = session.request({ ":method": "POST", ...headers });
    const seen = new Headers();
    let status = 0;
    const chunks: Buffer[] = [];
    const read = (received: http2.IncomingHttpHeaders) => {
      for (const [key, value] of Object.entries(received)) {
        if (key === ":status") status = Number(value);
        else if (!key.startsWith(":") && typeof value === "string") seen.set(key, value);
      }
    };
    stream.on("response", read);
    stream.on("trailers", read);
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {});
    stream.on("close", () => {
      const outcome = {
        status,
        headers: seen,
        body: Buffer.concat(chunks),
        rstCode: stream.rstCode,
      };
      session.close();
      resolve(outcome);
    });
    stream.write(body);
  });
}

/** The answer should close the stream within this; without the fix it stays open for good. */
const CLOSE_MS = 10_000;

describe("oversized requests are answered, and their bodies do not stay half-open", () => {
  let server: TestServer;

  before(async () => {
    server = await startRpcServer();
  });

  after(async () => {
    await server?.stop();
  });

  describe("over HTTP/2", () => {
    it("gRPC: a 1 MiB message the client is still sending gets RESOURCE_EXHAUSTED, then its stream is reset", async () => {
      const body = frame(0, new Uint8Array(MIB));
      const outcome = await withDeadline(
        h2Oversized(
          server.url,
          { ":path": LIST_DATES, "content-type": "application/grpc", te: "trailers" },
          body,
        ),
        CLOSE_MS,
        "the stream's close",
      );
      await expectRpcError(Promise.reject(findTrailerError(outcome.headers)), tooLarge);
      // RST_STREAM NO_ERROR after a complete answer: "stop sending" (RFC 9113 §8.1).
      expect(outcome.rstCode).to.equal(http2.constants.NGHTTP2_NO_ERROR);
    });

    for (const [what, headers] of [
      ["with a content-length over the limit", { "content-length": String(MIB) }],
      ["with no content-length", {}],
    ] as const) {
      it(`Connect: a 1 MiB body ${what} gets 429 resource_exhausted, then its stream is reset`, async () => {
        const outcome = await withDeadline(
          h2Oversized(
            server.url,
            { ":path": LIST_DATES, "content-type": "application/proto", ...headers },
            new Uint8Array(MIB),
          ),
          CLOSE_MS,
          "the stream's close",
        );
        expect(outcome.status).to.equal(429);
        const error = errorFromJsonBytes(
          outcome.body,
          undefined,
          new ConnectError("no error body", Code.Unknown),
        );
        await expectRpcError(Promise.reject(error), tooLarge);
        expect(outcome.rstCode).to.equal(http2.constants.NGHTTP2_NO_ERROR);
      });
    }

    it("REST: a 1 MiB body gets 413 with the seed's error body, then its stream is reset", async () => {
      const outcome = await withDeadline(
        h2Oversized(
          server.url,
          { ":path": "/api/token", "content-type": "application/json" },
          new Uint8Array(MIB).fill(0x20),
        ),
        CLOSE_MS,
        "the stream's close",
      );
      expect(outcome.status).to.equal(413);
      expect(Object.keys(JSON.parse(outcome.body.toString("utf8")))).to.deep.equal(["error"]);
      expect(outcome.headers.get("x-error-reason")).to.equal("REQUEST_TOO_LARGE");
      expect(outcome.rstCode).to.equal(http2.constants.NGHTTP2_NO_ERROR);
    });

    it("the connection keeps serving other calls afterwards", async () => {
      const session = http2.connect(server.url);
      try {
        const stream = session.request({
          ":method": "POST",
          ":path": LIST_DATES,
          "content-type": "application/grpc",
          te: "trailers",
        });
        stream.on("error", () => {});
        stream.resume();
        stream.write(frame(0, new Uint8Array(MIB)));
        await withDeadline(
          new Promise((resolve) => stream.on("close", resolve)),
          CLOSE_MS,
          "the stream's close",
        );
        const next = session.request({ ":method": "GET", ":path": "/api/concerts/dates" });
        next.end();
        const chunks: Buffer[] = [];
        next.on("data", (chunk: Buffer) => chunks.push(chunk));
        await new Promise((resolve) => next.on("end", resolve));
        expect(JSON.parse(Buffer.concat(chunks).toString("utf8"))).to.have.keys(["dates"]);
      } finally {
        session.close();
      }
    });
  });

  describe("over HTTP/1.1", () => {
    /** One request on `agent`; the status, body, and whether it reused a pooled connection. */
    function h1Request(
      agent: http.Agent,
      requestPath: string,
      headers: http.OutgoingHttpHeaders,
      body: Uint8Array | undefined,
    ): Promise<{ status: number; body: Buffer; reused: boolean; socketClosed: Promise<void> }> {
      return new Promise((resolve, reject) => {
        const req = http.request({
          host: "127.0.0.1",
          port: Number(new URL(server.url).port),
          method: body ? "POST" : "GET",
          path: requestPath,
          agent,
          headers,
        });
        req.on("error", () => {});
        req.on("socket", (socket) => socket.on("error", () => {}));
        req.on("response", (res) => {
          const chunks: Buffer[] = [];
          const socket = must(req.socket, "the request's socket");
          const socketClosed = new Promise<void>((done) => socket.once("close", () => done()));
          res.on("data", (chunk: Buffer) => chunks.push(chunk));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              body: Buffer.concat(chunks),
              reused: req.reusedSocket,
              socketClosed,
            }),
          );
          res.on("error", reject);
        });
        if (body) req.write(body);
        // A chunked body is left unfinished: the client is still uploading.
        if (headers["content-length"] !== undefined || !body) req.end();
      });
    }

    it("a body a little over the limit is drained, and the connection serves the next request", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const body = new Uint8Array(100 * 1024);
        const refused = await h1Request(
          agent,
          LIST_DATES,
          { "content-type": "application/proto", "content-length": String(body.length) },
          body,
        );
        expect(refused.status).to.equal(429);
        const next = await h1Request(agent, "/api/concerts/dates", {}, undefined);
        expect([next.status, next.reused]).to.deep.equal([200, true]);
      } finally {
        agent.destroy();
      }
    });

    it("a chunked body far over the limit is answered 429, then the connection is closed", async () => {
      const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
      try {
        const refused = await h1Request(
          agent,
          LIST_DATES,
          { "content-type": "application/proto" },
          new Uint8Array(4 * MIB),
        );
        expect(refused.status).to.equal(429);
        const error = errorFromJsonBytes(
          refused.body,
          undefined,
          new ConnectError("no error body", Code.Unknown),
        );
        await expectRpcError(Promise.reject(error), tooLarge);
        await withDeadline(refused.socketClosed, CLOSE_MS, "the connection's close");
      } finally {
        agent.destroy();
      }
    });

    it("REST: a 1 MiB body is answered 413 (not a reset connection)", async () => {
      const res = await fetch(`${server.url}/api/token`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ userId: "u", padding: "x".repeat(MIB) }),
      });
      expect(res.status).to.equal(413);
      expect(await res.json()).to.have.keys(["error"]);
    });
  });
});

/** `npm start` runs from the repository; so does the server under test. */
const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** Large, so that a drain that waits for it is told apart from one that does not. */
const SHUTDOWN_TIMEOUT_MS = 30_000;

/** `server/src/main.ts` as a process of its own, as `npm start` runs it. */
class ChildServer {
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private output = "";
  readonly url: Promise<string>;

  constructor(env: Readonly<Record<string, string>>) {
    const base = Object.fromEntries(
      ["PATH", "HOME", "TMPDIR", "LANG"].flatMap((key) => {
        const value = process.env[key];
        return value === undefined ? [] : [[key, value]];
      }),
    );
    this.child = spawn(
      process.execPath,
      ["--conditions=stagedoor-source", "--import", "tsx", "server/src/main.ts"],
      { cwd: REPO_ROOT, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] },
    );
    this.url = new Promise((resolve, reject) => {
      this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
        this.output += chunk;
        const url = /"url":"(http:[^"]+)"/.exec(this.output)?.[1];
        if (url !== undefined && this.output.includes("Stagedoor is serving on")) resolve(url);
      });
      this.child.once("exit", () => reject(new Error(`the server exited\n${this.output}`)));
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.output += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.once("exit", (code, signal) => resolve({ code, signal }));
    });
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  transcript(): string {
    return this.output;
  }

  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

describe("shutdown after an oversized HTTP/2 request (a server process of its own)", () => {
  let database: TestDatabase;
  let dataDir: string;
  let server: ChildServer;

  before(async function () {
    this.timeout(90_000);
    database = await createTestDatabase();
    dataDir = await mkdtemp(path.join(os.tmpdir(), "stagedoor-oversized-"));
    server = new ChildServer({
      DATABASE_URL: database.url,
      AUTH_MODE: "trust",
      HOST: "127.0.0.1",
      PORT: "0",
      DATA_DIR: dataDir,
      SEED_DEMO: "true",
      SERVE_WEB: "false",
      TOKEN_SECRET: randomBytes(32).toString("hex"),
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
      LOG_LEVEL: "info",
    });
    await withDeadline(server.url, 75_000, "the server's start");
  });

  after(async () => {
    await server?.kill();
    await database?.drop();
    if (dataDir) await rm(dataDir, { recursive: true, force: true });
  });

  it(`exits on SIGTERM well within SHUTDOWN_TIMEOUT_MS (${SHUTDOWN_TIMEOUT_MS} ms)`, async function () {
    this.timeout(SHUTDOWN_TIMEOUT_MS + 30_000);
    const url = await server.url;
    // The client keeps its session and never finishes its upload.
    const session = http2.connect(url);
    session.on("error", () => {});
    const stream = session.request({
      ":method": "POST",
      ":path": LIST_DATES,
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    const answered = new Promise<string | undefined>((resolve) => {
      stream.on("trailers", (trailers) => resolve(String(trailers["grpc-status"])));
      stream.on("close", () => resolve(undefined));
    });
    stream.on("data", () => {});
    stream.write(frame(0, new Uint8Array(MIB)));
    expect(await withDeadline(answered, CLOSE_MS, "the answer")).to.equal(
      String(Code.ResourceExhausted),
    );

    const signalled = performance.now();
    server.signal("SIGTERM");
    const { code } = await server.exited;
    const tookMs = performance.now() - signalled;
    session.destroy();
    expect(code, server.transcript()).to.equal(0);
    // A drain that waits for the half-open stream takes the whole timeout.
    expect(tookMs, "ms from SIGTERM to exit").to.be.below(SHUTDOWN_TIMEOUT_MS / 2);
  });
});
