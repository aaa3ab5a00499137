import http2 from "node:http2";
import { Code, ConnectError } from "@connectrpc/connect";
import {
  ERROR_DOMAIN,
  ErrorInfoSchema,
  QueueTokenState,
  RetryInfoSchema,
  type StagedoorClient,
} from "@stagedoor/sdk";
import { expect } from "chai";
import { clientFor, PROTOCOLS, type Protocol } from "../support/clients.js";
import { createTestDatabase, type TestDatabase } from "../support/postgres.js";
import {
  type Conn,
  fileLimits,
  freshGet,
  openFiles,
  openMany,
  residentMiB,
  ServerChild,
  serverEnv,
  sleep,
  spread,
  until,
  within,
} from "./abuse-kit.js";

/**
 * Abusive clients against a real server process (`server/src/main.ts`):
 * thousands of idle connections, slowloris headers and bodies, and clients
 * that open streams and never read, over HTTP/1.1 and HTTP/2. While each
 * runs, ordinary clients on every protocol keep getting correct answers
 * (each call with a 5 s deadline); the abusive connections are closed by the
 * server's limits; the server's open files and memory come back down; and a
 * SIGTERM in the middle of the abuse drains well before SHUTDOWN_TIMEOUT_MS.
 *
 * The limits are set short here (seconds) so the suite stays fast; their
 * defaults are in SECURITY.md. What each test saw is printed as `[abuse]`
 * lines.
 */

const LIMITS = {
  HTTP_SNIFF_TIMEOUT_SECONDS: "5",
  HTTP_HEADERS_TIMEOUT_SECONDS: "2",
  HTTP_REQUEST_TIMEOUT_SECONDS: "3",
  HTTP_KEEPALIVE_TIMEOUT_SECONDS: "2",
  HTTP_SEND_TIMEOUT_SECONDS: "2",
  HTTP1_MAX_PIPELINED_REQUESTS: "16",
  HTTP2_IDLE_TIMEOUT_SECONDS: "2",
  HTTP2_MAX_CONCURRENT_STREAMS: "100",
  WATCH_STREAMS_PER_TOKEN: "3",
  WATCH_STREAMS_MAX: "150",
} as const;
const SHUTDOWN_TIMEOUT_MS = 30_000;
/** Every ordinary call's deadline: generous, and only there to bound a hang. */
const CALL_DEADLINE_MS = 5_000;
/** How long the server may take to close an abusive connection, past its limit. */
const CLOSE_SLACK_MS = 20_000;
const IDLE_CONNECTIONS = 10_000;
/** How much the server's resident memory may grow over the whole suite. */
const MEMORY_GROWTH_BOUND_MIB = 256;

const WATCH_PATH = "/stagedoor.queue.v1.QueueService/WatchQueueStatus";
const LIST_SEATS_PATH = "/stagedoor.catalog.v1.CatalogService/ListSeats";
const H2_PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

function report(line: string): void {
  console.log(`      [abuse] ${line}`);
}

/** An ordinary call's outcome. */
interface Probe {
  readonly what: string;
  readonly ms: number;
  readonly error?: string;
}

/**
 * Ordinary clients, calling all the time on every protocol: Connect and
 * gRPC-Web over pooled HTTP/1.1, gRPC over a pooled HTTP/2 session, REST
 * over a connection of its own each time, and a new watch stream. Each call
 * has a 5 s deadline and its answer is checked.
 */
class OrdinaryClients {
  private readonly results: Probe[] = [];
  private running = false;
  private loop: Promise<void> | undefined;
  private readonly clients: Record<Protocol, StagedoorClient>;
  private readonly waiter: StagedoorClient;

  constructor(
    private readonly url: string,
    private readonly concertId: string,
    waitingToken: string,
  ) {
    this.clients = {
      connect: clientFor("connect", url),
      grpc: clientFor("grpc", url),
      "grpc-web": clientFor("grpc-web", url),
    };
    this.waiter = clientFor("grpc", url, waitingToken);
  }

  start(): void {
    this.running = true;
    this.loop = (async () => {
      while (this.running) {
        await Promise.all([
          this.call("connect ListConcerts", async () => {
            const { concerts } = await this.clients.connect.catalog.listConcerts(
              {},
              { timeoutMs: CALL_DEADLINE_MS },
            );
            expect(concerts.map((c) => c.id)).to.deep.equal([this.concertId]);
          }),
          this.call("grpc GetQueueStatus", async () => {
            const { status } = await this.waiter.queue.getQueueStatus(
              {},
              { timeoutMs: CALL_DEADLINE_MS },
            );
            expect(status?.state).to.equal(QueueTokenState.WAITING);
          }),
          this.call("grpc-web ListConcertDates", async () => {
            const { dates } = await this.clients["grpc-web"].catalog.listConcertDates(
              { concertId: this.concertId },
              { timeoutMs: CALL_DEADLINE_MS },
            );
            expect(dates).to.have.length(3);
          }),
          this.call("REST dates, new connection", async () => {
            const res = await freshGet(`${this.url}/api/concerts/dates`, CALL_DEADLINE_MS);
            expect(res.status).to.equal(200);
            expect((JSON.parse(res.body) as { dates: string[] }).dates).to.have.length(3);
          }),
          this.call("grpc WatchQueueStatus, first status", async () => {
            const { token } = await this.clients.connect.queue.issueQueueToken(
              { concertId: this.concertId, userId: `probe-${Math.random()}` },
              { timeoutMs: CALL_DEADLINE_MS },
            );
            const controller = new AbortController();
            const timer = setTimeout(() => controller.abort(), CALL_DEADLINE_MS);
            try {
              const stream = clientFor("grpc", this.url, token).queue.watchQueueStatus(
                {},
                { signal: controller.signal },
              );
              for await (const message of stream) {
                expect(message.event.case).to.equal("status");
                break;
              }
            } finally {
              clearTimeout(timer);
              controller.abort();
            }
            await this.clients.connect.queue
              .leaveQueue({}, { headers: { authorization: `Bearer ${token}` } })
              .catch(() => undefined);
          }),
        ]);
        await sleep(200);
      }
    })();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
  }

  /** Takes the results since the last take. */
  take(): Probe[] {
    return this.results.splice(0);
  }

  /** Asserts every call since the last check was answered correctly, and reports them. */
  check(phase: string): void {
    const results = this.take();
    const failed = results.filter((r) => r.error !== undefined);
    const ms = spread(results.map((r) => r.ms));
    const slowest = results.reduce<Probe | undefined>(
      (a, b) => (a && a.ms >= b.ms ? a : b),
      undefined,
    );
    report(
      `${phase}: ordinary clients made ${results.length} calls, ${failed.length} failed; ` +
        `ms min/median/max ${ms.min}/${ms.median}/${ms.max} (slowest: ${slowest?.what})`,
    );
    expect(
      failed.map((f) => `${f.what}: ${f.error}`),
      "ordinary calls that failed",
    ).to.deep.equal([]);
    expect(results.length, "ordinary calls answered during the phase").to.be.greaterThan(4);
  }

  private async call(what: string, run: () => Promise<void>): Promise<void> {
    const started = performance.now();
    try {
      await within(run(), CALL_DEADLINE_MS + 1_000, what);
      this.results.push({ what, ms: performance.now() - started });
    } catch (error) {
      this.results.push({ what, ms: performance.now() - started, error: String(error) });
    }
  }
}

/** The server's open files and memory, for the report. */
async function footprint(server: ServerChild): Promise<{ files: number; rssMiB: number }> {
  return { files: await openFiles(server.pid), rssMiB: await residentMiB(server.pid) };
}

/** Waits until every connection is closed (failing after `ms`), and reports how long they lived. */
async function allClosed(conns: readonly Conn[], ms: number, what: string): Promise<void> {
  await until(() => conns.every((c) => c.isClosed), ms, `${what}: all closed by the server`, 100);
}

function lifetimes(conns: readonly Conn[]): string {
  const s = spread(conns.map((c) => c.lifetime));
  return `${s.min}/${s.median}/${s.max} ms`;
}

/** One HTTP/2 request's outcome. */
interface H2Outcome {
  readonly headers: http2.IncomingHttpHeaders | undefined;
  readonly rstCode: number | undefined;
}

function h2Request(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: Buffer,
  end = true,
): { stream: http2.ClientHttp2Stream; done: Promise<H2Outcome> } {
  const stream = session.request(headers, { endStream: body === undefined && end });
  if (body !== undefined) {
    if (end) stream.end(body);
    else stream.write(body);
  }
  const done = new Promise<H2Outcome>((resolve) => {
    let got: http2.IncomingHttpHeaders | undefined;
    stream.on("response", (h) => {
      got = h;
    });
    stream.on("error", () => undefined);
    stream.on("close", () => resolve({ headers: got, rstCode: stream.rstCode }));
  });
  return { stream, done };
}

function h2Session(port: number, options: http2.ClientSessionOptions = {}) {
  const session = http2.connect(`http://127.0.0.1:${port}`, options);
  session.on("error", () => undefined);
  let closedAt: number | undefined;
  const closed = new Promise<void>((resolve) =>
    session.once("close", () => {
      closedAt = Date.now();
      resolve();
    }),
  );
  return {
    session,
    closed,
    get isClosed() {
      return closedAt !== undefined;
    },
  };
}

/** A gRPC request envelope holding an empty message. */
const EMPTY_GRPC_MESSAGE = Buffer.from([0, 0, 0, 0, 0]);

/** Asserts a watch was refused the way the API promises: RESOURCE_EXHAUSTED, ErrorInfo, RetryInfo. */
function expectRefusedWatch(error: unknown, reason: string): void {
  expect(error, String(error)).to.be.instanceOf(ConnectError);
  const connectError = error as ConnectError;
  expect(connectError.code, connectError.message).to.equal(Code.ResourceExhausted);
  const [info] = connectError.findDetails(ErrorInfoSchema);
  expect(info?.domain).to.equal(ERROR_DOMAIN);
  expect(info?.reason).to.equal(reason);
  const [retry] = connectError.findDetails(RetryInfoSchema);
  expect(Number(retry?.retryDelay?.seconds ?? 0)).to.be.greaterThan(0);
}

describe("fault: abusive clients", function () {
  this.timeout(180_000);
  let database: TestDatabase;
  let server: ServerChild;
  let cleanupEnv: (() => Promise<void>) | undefined;
  let ordinary: OrdinaryClients;
  let concertId = "";
  let client: StagedoorClient;
  let dateId = "";
  let fdBaseline = 0;
  let rssBaseline = 0;
  let issued = 0;

  /** A queue token that waits in line (the one admission is taken at start). */
  async function waitingToken(label: string): Promise<string> {
    issued += 1;
    const { token, status } = await client.queue.issueQueueToken({
      concertId,
      userId: `${label}-${issued}`,
    });
    expect(status?.state).to.equal(QueueTokenState.WAITING);
    return token;
  }

  before(async () => {
    database = await createTestDatabase();
    const { env, cleanup } = await serverEnv(database.url, {
      ...LIMITS,
      QUEUE_MAX_ACTIVE: "1",
      // Debug logs say which limit closed what; the report counts them.
      LOG_LEVEL: "debug",
      SHUTDOWN_TIMEOUT_MS: String(SHUTDOWN_TIMEOUT_MS),
    });
    cleanupEnv = cleanup;
    // Node raises its own soft limit on open files to the hard limit when it
    // starts, so the server (and this process) may open as many as that allows.
    server = await ServerChild.start(env);
    client = clientFor("connect", server.url);
    const { concerts } = await client.catalog.listConcerts({});
    concertId = concerts[0]?.id ?? "";
    const { dates } = await client.catalog.listConcertDates({ concertId });
    dateId = dates[0]?.id ?? "";
    // The one admission goes to someone who keeps it: everyone else waits.
    const { status } = await client.queue.issueQueueToken({ concertId, userId: "holder" });
    expect(status?.state).to.equal(QueueTokenState.ADMITTED);
    ordinary = new OrdinaryClients(server.url, concertId, await waitingToken("ordinary"));
    ordinary.start();
    await sleep(1_000);
    ordinary.take();
    ({ files: fdBaseline, rssMiB: rssBaseline } = await footprint(server));
    report(`server pid ${server.pid}: ${fdBaseline} open files, ${rssBaseline} MiB resident`);
  });

  after(async () => {
    await ordinary?.stop();
    await server?.kill();
    await cleanupEnv?.();
    await database?.drop();
  });

  afterEach(function () {
    if (this.currentTest?.state === "failed" && server) console.log(server.transcript());
  });

  /** The server's open files are back near where they started. */
  async function expectFilesBackDown(phase: string): Promise<void> {
    await until(
      async () => (await openFiles(server.pid)) <= fdBaseline + 50,
      CLOSE_SLACK_MS,
      `${phase}: the server's open files back down`,
      200,
    );
    const now = await footprint(server);
    report(`${phase}: afterwards the server has ${now.files} open files, ${now.rssMiB} MiB`);
    // A loose bound: resident memory never shrinks much once grown, so this
    // only catches gross growth; the bounds that matter are asserted above.
    expect(now.rssMiB - rssBaseline, "resident memory grown since start, MiB").to.be.lessThan(
      MEMORY_GROWTH_BOUND_MIB,
    );
  }

  it(`${IDLE_CONNECTIONS.toLocaleString("en")} idle connections: held, closed by the sniffer timeout, others answered`, async () => {
    const mine = await fileLimits();
    const theirs = await fileLimits(server.pid);
    // Leave a margin of files to both processes (a quarter of a low limit).
    const margin = (soft: number) => Math.min(1_024, Math.floor(soft / 4));
    const room = Math.min(
      mine.soft - (await openFiles()) - margin(mine.soft),
      theirs.soft - (await openFiles(server.pid)) - margin(theirs.soft),
    );
    const n = Math.min(IDLE_CONNECTIONS, room);
    report(
      `open files: test process soft limit ${mine.soft}, server ${theirs.soft} ` +
        `(hard ${theirs.hard}); opening ${n} idle connections` +
        (n < IDLE_CONNECTIONS ? ` (all the limits allow, not ${IDLE_CONNECTIONS})` : ""),
    );
    expect(n, "room for a meaningful number of connections").to.be.greaterThan(100);

    const started = Date.now();
    const { conns, failures } = await openMany(server.port, n, { concurrency: 250 });
    const openedIn = Date.now() - started;
    const heldAtOnce = conns.filter((c) => !c.isClosed).length;
    const peak = await footprint(server);
    report(
      `opened ${conns.length} (${failures} failed to connect) in ${openedIn} ms; ` +
        `${heldAtOnce} open at once; server: ${peak.files} open files, ${peak.rssMiB} MiB`,
    );
    expect(failures).to.equal(0);

    await allClosed(
      conns,
      Number(LIMITS.HTTP_SNIFF_TIMEOUT_SECONDS) * 1000 + CLOSE_SLACK_MS,
      "idle connections",
    );
    report(
      `all ${conns.length} closed by the server ${Date.now() - started} ms after the first opened; ` +
        `each lived ${lifetimes(conns)} (min/median/max; limit ${LIMITS.HTTP_SNIFF_TIMEOUT_SECONDS} s); ` +
        `server logged ${server.count("closing a connection that did not say its protocol")} sniffer closes`,
    );
    expect(conns.filter((c) => c.received > 0)).to.have.length(0);
    ordinary.check("idle connections");
    await expectFilesBackDown("idle connections");
  });

  it("idle in other ways: a stalled HTTP/2 preface, a preface and nothing more, an idle keep-alive", async () => {
    const [stalled, silentH2, keepAlive] = await Promise.all([
      openMany(server.port, 300),
      openMany(server.port, 300),
      openMany(server.port, 300),
    ]);
    for (const c of stalled.conns) c.write("PRI * HTTP/2.0\r\n");
    for (const c of silentH2.conns) c.write(H2_PREFACE);
    for (const c of keepAlive.conns) c.write("GET /api/concerts/dates HTTP/1.1\r\nHost: x\r\n\r\n");
    const limit = (s: string) => Number(s) * 1000 + CLOSE_SLACK_MS;
    await Promise.all([
      allClosed(stalled.conns, limit(LIMITS.HTTP_SNIFF_TIMEOUT_SECONDS), "stalled prefaces"),
      allClosed(silentH2.conns, limit(LIMITS.HTTP2_IDLE_TIMEOUT_SECONDS), "silent HTTP/2"),
      allClosed(keepAlive.conns, limit(LIMITS.HTTP_KEEPALIVE_TIMEOUT_SECONDS), "idle keep-alive"),
    ]);
    report(
      `300 "PRI" stalls lived ${lifetimes(stalled.conns)} (sniffer, ${LIMITS.HTTP_SNIFF_TIMEOUT_SECONDS} s); ` +
        `300 preface-only HTTP/2 lived ${lifetimes(silentH2.conns)} (HTTP/2 idle, ${LIMITS.HTTP2_IDLE_TIMEOUT_SECONDS} s); ` +
        `300 keep-alive after one answer lived ${lifetimes(keepAlive.conns)} (keep-alive, ${LIMITS.HTTP_KEEPALIVE_TIMEOUT_SECONDS} s)`,
    );
    expect(keepAlive.conns.every((c) => c.head.startsWith("HTTP/1.1 200"))).to.equal(true);
    ordinary.check("idle in other ways");
    await expectFilesBackDown("idle in other ways");
  });

  it("slowloris: headers a byte at a time, bodies trickled over HTTP/1.1 and HTTP/2", async () => {
    const headerConns = (await openMany(server.port, 300)).conns;
    const bodyConns = (await openMany(server.port, 100)).conns;
    const headers = `GET /api/concerts/dates HTTP/1.1\r\nHost: x\r\nX-Pad: ${"a".repeat(10_000)}\r\n\r\n`;
    for (const c of bodyConns) {
      c.write(
        `POST /stagedoor.catalog.v1.CatalogService/ListConcerts HTTP/1.1\r\nHost: x\r\n` +
          "Content-Type: application/json\r\nContent-Length: 10000\r\n\r\n",
      );
    }
    // Every connection gets one more byte every 250 ms until the server closes it.
    let offset = 0;
    const drip = setInterval(() => {
      const byte = headers[offset % headers.length] ?? "a";
      for (const c of headerConns) c.write(byte);
      for (const c of bodyConns) c.write(" ");
      offset += 1;
    }, 250);

    // HTTP/2: 3 connections × 100 streams whose bodies never end.
    const sessions = Array.from({ length: 3 }, () => h2Session(server.port));
    const streams = sessions.flatMap(({ session }) =>
      Array.from(
        { length: 100 },
        () =>
          h2Request(
            session,
            {
              ":method": "POST",
              ":path": "/stagedoor.catalog.v1.CatalogService/ListConcerts",
              "content-type": "application/grpc",
              te: "trailers",
            },
            Buffer.from([0, 0, 0, 0, 10]),
            false,
          ).done,
      ),
    );
    try {
      const slack = CLOSE_SLACK_MS;
      await Promise.all([
        allClosed(
          headerConns,
          Number(LIMITS.HTTP_HEADERS_TIMEOUT_SECONDS) * 1000 + slack,
          "slow headers",
        ),
        allClosed(
          bodyConns,
          Number(LIMITS.HTTP_REQUEST_TIMEOUT_SECONDS) * 1000 + slack,
          "slow bodies",
        ),
        within(
          Promise.all(streams),
          Number(LIMITS.HTTP_REQUEST_TIMEOUT_SECONDS) * 1000 + slack,
          "HTTP/2 slow bodies reset",
        ),
        within(
          Promise.all(sessions.map((s) => s.closed)),
          (Number(LIMITS.HTTP_REQUEST_TIMEOUT_SECONDS) +
            Number(LIMITS.HTTP2_IDLE_TIMEOUT_SECONDS)) *
            1000 +
            slack,
          "HTTP/2 sessions closed once idle",
        ),
      ]);
    } finally {
      clearInterval(drip);
    }
    const outcomes = await Promise.all(streams);
    const reset = outcomes.filter((o) => o.rstCode === http2.constants.NGHTTP2_CANCEL).length;
    report(
      `300 slow-header connections: ${headerConns.filter((c) => c.head.startsWith("HTTP/1.1 408")).length} got 408, ` +
        `lived ${lifetimes(headerConns)} (headers timeout ${LIMITS.HTTP_HEADERS_TIMEOUT_SECONDS} s); ` +
        `100 slow bodies: ${bodyConns.filter((c) => c.head.startsWith("HTTP/1.1 408")).length} got 408, ` +
        `lived ${lifetimes(bodyConns)} (request timeout ${LIMITS.HTTP_REQUEST_TIMEOUT_SECONDS} s); ` +
        `HTTP/2: ${reset} of 300 trickling streams reset (CANCEL), server logged ` +
        `${server.count("resetting an HTTP/2 stream whose request did not arrive")}; 3 sessions then closed`,
    );
    expect(headerConns.every((c) => c.head.startsWith("HTTP/1.1 408"))).to.equal(true);
    expect(bodyConns.every((c) => c.head.startsWith("HTTP/1.1 408"))).to.equal(true);
    expect(reset).to.equal(300);
    ordinary.check("slowloris");
    await expectFilesBackDown("slowloris");
  });

  it("streams that are never read, over HTTP/2: refused past the limits, reset, connections closed", async () => {
    const rssBefore = await residentMiB(server.pid);
    const query = `connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ concertDateId: dateId, pageSize: 50 }))}`;
    // A flow-control window of 0: the server may not send these clients one byte of DATA.
    const noWindow = { settings: { initialWindowSize: 0 } };
    const listSessions = Array.from({ length: 5 }, () => h2Session(server.port, noWindow));
    const lists = listSessions.flatMap(({ session }) =>
      Array.from(
        { length: 150 },
        () => h2Request(session, { ":method": "GET", ":path": `${LIST_SEATS_PATH}?${query}` }).done,
      ),
    );
    const refusedBefore = server.countWhere((l) => l.reason === "WATCH_LIMIT_REACHED");
    // 20 waiting tokens × 4 watch streams on one unread connection each.
    const tokens = await Promise.all(Array.from({ length: 20 }, () => waitingToken("h2-unread")));
    const watchSessions = tokens.map(() => h2Session(server.port, noWindow));
    const watches = tokens.map((token, i) =>
      Promise.all(
        Array.from(
          { length: 4 },
          () =>
            h2Request(
              watchSessions[i]?.session as http2.ClientHttp2Session,
              {
                ":method": "POST",
                ":path": WATCH_PATH,
                "content-type": "application/grpc",
                te: "trailers",
                authorization: `Bearer ${token}`,
              },
              EMPTY_GRPC_MESSAGE,
            ).done,
        ),
      ),
    );
    await sleep(500);
    const during = await footprint(server);
    const slack = CLOSE_SLACK_MS;
    const listOutcomes = await within(
      Promise.all(lists),
      3 * Number(LIMITS.HTTP_SEND_TIMEOUT_SECONDS) * 1000 + slack,
      "unread listings settled",
    );
    const watchOutcomes = await within(
      Promise.all(watches),
      Number(LIMITS.HTTP_SEND_TIMEOUT_SECONDS) * 1000 + slack,
      "unread watches settled",
    );
    await within(
      Promise.all([...listSessions, ...watchSessions].map((s) => s.closed)),
      Number(LIMITS.HTTP2_IDLE_TIMEOUT_SECONDS) * 1000 + slack,
      "the unread connections closed once idle",
    );

    const refused = listOutcomes.filter(
      (o) => o.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM,
    ).length;
    const reset = listOutcomes.filter((o) => o.rstCode === http2.constants.NGHTTP2_CANCEL).length;
    report(
      `HTTP/2 listings: 5 connections × 150 streams, window 0: ${refused} refused (REFUSED_STREAM, ` +
        `limit ${LIMITS.HTTP2_MAX_CONCURRENT_STREAMS} per connection), ${reset} reset (CANCEL) after the send timeout ` +
        `(${LIMITS.HTTP_SEND_TIMEOUT_SECONDS} s), ${listOutcomes.length - refused - reset} otherwise`,
    );
    expect(refused + reset).to.equal(listOutcomes.length);
    expect(reset).to.be.greaterThan(0);

    // The refusals are answered (RESOURCE_EXHAUSTED), but a window of 0 holds
    // back even an answer's trailers: the server says what it refused in its
    // log, and resets those streams too at the send timeout.
    const watchRefused =
      server.countWhere((l) => l.reason === "WATCH_LIMIT_REACHED") - refusedBefore;
    const watchReset = watchOutcomes
      .flat()
      .filter((o) => o.rstCode === http2.constants.NGHTTP2_CANCEL).length;
    expect(watchRefused, "one refusal per token").to.equal(20);
    const rssAfter = await residentMiB(server.pid);
    report(
      `HTTP/2 watches: 20 tokens × 4 unread streams: ${watchRefused} refused (WATCH_LIMIT_REACHED), ` +
        `${watchReset} reset (CANCEL) after the send timeout, refusals included; ` +
        `server logged ${server.count("resetting an HTTP/2 stream whose client stopped reading")} stalled-stream resets ` +
        `and ${server.count("closing an idle HTTP/2 session")} idle-session closes so far; ` +
        `server during: ${during.files} files, ${during.rssMiB} MiB; resident before/after ${rssBefore}/${rssAfter} MiB`,
    );
    expect(watchReset).to.equal(80);
    ordinary.check("unread HTTP/2 streams");
    await expectFilesBackDown("unread HTTP/2 streams");
  });

  it("streams that are never read, over HTTP/1.1: pipelined listings cut, watch streams capped", async () => {
    const query = `connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ concertDateId: dateId, pageSize: 50 }))}`;
    const one = await freshGet(`${server.url}${LIST_SEATS_PATH}?${query}`, CALL_DEADLINE_MS);
    expect(one.status).to.equal(200);
    // Enough pipelined requests that their answers overflow every buffer on the way.
    const perConnection = Math.ceil((24 * 1024 * 1024) / one.body.length);
    const request = `GET ${LIST_SEATS_PATH}?${query} HTTP/1.1\r\nHost: x\r\n\r\n`;
    const pipeliningCuts = () =>
      server.count("closing an HTTP/1.1 connection that pipelined too many requests");
    const stalledCuts = () =>
      server.count("closing an HTTP/1.1 connection whose client stopped reading");
    const requestTimeouts = () =>
      server.countWhere(
        (l) =>
          l.msg === "client socket error" &&
          (l.err as { message?: string } | undefined)?.message === "Request timeout",
      );
    const cuts = () => pipeliningCuts() + stalledCuts() + requestTimeouts();
    await sleep(300); // the log of the call above
    const [cutsBefore, pipeliningBefore] = [cuts(), pipeliningCuts()];
    const listingsBefore = server.countWhere((l) => l.procedure === LIST_SEATS_PATH.slice(1));
    const rssBefore = await residentMiB(server.pid);
    const started = Date.now();
    const pipelined = (await openMany(server.port, 10, { read: false })).conns;
    for (const c of pipelined) c.write(request.repeat(perConnection));
    // The server closes such a connection once more than
    // HTTP1_MAX_PIPELINED_REQUESTS wait behind the one being answered (or,
    // were there fewer, at the send or the request timeout).
    await until(
      () => cuts() - cutsBefore >= pipelined.length,
      3 * Number(LIMITS.HTTP_REQUEST_TIMEOUT_SECONDS) * 1000 + CLOSE_SLACK_MS,
      "the server closed every unread pipelined connection",
      100,
    );
    const closedAfter = Date.now() - started;
    await sleep(300); // the log of the last answers
    const after = await footprint(server);
    const answered =
      server.countWhere((l) => l.procedure === LIST_SEATS_PATH.slice(1)) - listingsBefore;
    // A client that reads nothing does not notice the close until it reads.
    let received = 0;
    for (const c of pipelined) {
      c.socket.on("data", (chunk: Buffer) => {
        received += chunk.length;
      });
      c.socket.resume();
    }
    await allClosed(pipelined, CLOSE_SLACK_MS, "unread pipelined listings");
    report(
      `HTTP/1.1: 10 connections × ${perConnection} pipelined listings (${one.body.length} B each), never read: ` +
        `all closed ${closedAfter} ms after they opened (${pipeliningCuts() - pipeliningBefore} for pipelining more than ` +
        `${LIMITS.HTTP1_MAX_PIPELINED_REQUESTS}); the server built ${answered} answers in all, ` +
        `resident ${rssBefore} MiB before, ${after.rssMiB} MiB after; the clients got ${Math.round(received / 1024)} KiB`,
    );
    expect(cuts() - cutsBefore).to.equal(10);
    expect(answered).to.be.at.most(10 * (Number(LIMITS.HTTP1_MAX_PIPELINED_REQUESTS) + 1));

    // One request each, never read: its answer fits the kernel's buffers, so
    // the server is done with it and the connection idles out.
    const oneEach = (await openMany(server.port, 200, { read: false })).conns;
    for (const c of oneEach) c.write(request);
    await until(
      async () => (await openFiles(server.pid)) <= fdBaseline + 50,
      Number(LIMITS.HTTP_KEEPALIVE_TIMEOUT_SECONDS) * 1000 + CLOSE_SLACK_MS,
      "the server closed the connections of unread single answers",
      200,
    );
    for (const c of oneEach) c.socket.resume();
    await allClosed(oneEach, CLOSE_SLACK_MS, "unread single answers");
    report(
      `HTTP/1.1: 200 connections with one listing each, never read: closed by the keep-alive timeout ` +
        `(${LIMITS.HTTP_KEEPALIVE_TIMEOUT_SECONDS} s), each answer having fitted the kernel's buffers`,
    );

    // Watch streams over Connect, never read: 10 tokens × 3 (the per-token limit).
    const tokens = await Promise.all(Array.from({ length: 10 }, () => waitingToken("h1-unread")));
    const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("{}")]);
    const watchConns: Conn[] = [];
    for (const token of tokens) {
      for (const c of (await openMany(server.port, 3, { read: false })).conns) {
        c.write(
          `POST ${WATCH_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\n` +
            `Connect-Protocol-Version: 1\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${body.length}\r\n\r\n`,
        );
        c.write(body);
        watchConns.push(c);
      }
    }
    // A fourth stream of a token, over every protocol, is refused.
    await sleep(500);
    for (const [i, protocol] of PROTOCOLS.entries()) {
      const stream = clientFor(protocol, server.url, tokens[i]).queue.watchQueueStatus(
        {},
        { timeoutMs: CALL_DEADLINE_MS },
      );
      let error: unknown;
      try {
        for await (const _ of stream) break;
      } catch (thrown) {
        error = thrown;
      }
      expectRefusedWatch(error, "WATCH_LIMIT_REACHED");
    }
    // Longer than the send, request and keep-alive timeouts: the unread
    // watch streams cost one event each and a socket, and nothing waits to be
    // sent (a heartbeat fits the kernel's buffer), so they stay...
    await sleep((Number(LIMITS.HTTP_REQUEST_TIMEOUT_SECONDS) + 1) * 1000);
    expect(watchConns.filter((c) => c.isClosed)).to.have.length(0);
    // ...until their token leaves the line (or is admitted).
    for (const token of tokens) {
      await client.queue.leaveQueue({}, { headers: { authorization: `Bearer ${token}` } });
    }
    await until(
      async () => (await openFiles(server.pid)) <= fdBaseline + 50,
      Number(LIMITS.HTTP_KEEPALIVE_TIMEOUT_SECONDS) * 1000 + CLOSE_SLACK_MS,
      "the server closed the unread watches of tokens that left",
      200,
    );
    for (const c of watchConns) c.socket.resume();
    await allClosed(watchConns, CLOSE_SLACK_MS, "unread watches of tokens that left");
    report(
      `HTTP/1.1 watches: 10 tokens × 3 unread streams stayed open past every timeout until their tokens ` +
        `left the line, then closed (keep-alive ${LIMITS.HTTP_KEEPALIVE_TIMEOUT_SECONDS} s); the 4th stream of a ` +
        `token was refused RESOURCE_EXHAUSTED WATCH_LIMIT_REACHED with RetryInfo over ${PROTOCOLS.join(", ")}`,
    );
    ordinary.check("unread HTTP/1.1 streams");
    await expectFilesBackDown("unread HTTP/1.1 streams");
  });

  it(`refuses streams past WATCH_STREAMS_MAX (${LIMITS.WATCH_STREAMS_MAX}) on every protocol`, async () => {
    const max = Number(LIMITS.WATCH_STREAMS_MAX);
    // The ordinary clients open watch streams too: pause them while the process is full.
    await ordinary.stop();
    await sleep(200);
    const controllers: AbortController[] = [];
    const tokens: string[] = [];
    try {
      // Fill the process with readers that do read: 3 per token.
      for (let opened = 0; opened < max; ) {
        const token = await waitingToken("filler");
        tokens.push(token);
        for (let i = 0; i < 3 && opened < max; i++, opened++) {
          const controller = new AbortController();
          controllers.push(controller);
          const stream = clientFor("grpc", server.url, token).queue.watchQueueStatus(
            {},
            { signal: controller.signal },
          );
          const iterator = stream[Symbol.asyncIterator]();
          const first = await iterator.next();
          expect(first.value?.event.case).to.equal("status");
          void (async () => {
            try {
              for (;;) if ((await iterator.next()).done) return;
            } catch {
              // aborted at the end of the test
            }
          })();
        }
      }
      for (const protocol of PROTOCOLS) {
        const token = await waitingToken("over-capacity");
        let error: unknown;
        try {
          for await (const _ of clientFor(protocol, server.url, token).queue.watchQueueStatus(
            {},
            { timeoutMs: CALL_DEADLINE_MS },
          )) {
            break;
          }
        } catch (thrown) {
          error = thrown;
        }
        expectRefusedWatch(error, "WATCH_CAPACITY_REACHED");
      }
      report(
        `${max} streams open: a new token's stream refused RESOURCE_EXHAUSTED WATCH_CAPACITY_REACHED ` +
          `with RetryInfo over ${PROTOCOLS.join(", ")}`,
      );
    } finally {
      for (const controller of controllers) controller.abort();
      for (const token of tokens) {
        await client.queue
          .leaveQueue({}, { headers: { authorization: `Bearer ${token}` } })
          .catch(() => undefined);
      }
    }
    ordinary.take();
    ordinary.start();
  });

  it("drains on SIGTERM in the middle of the abuse, well before SHUTDOWN_TIMEOUT_MS", async () => {
    await sleep(1_000);
    ordinary.check("before SIGTERM");
    await ordinary.stop();
    // Abuse of every kind, still going when the signal comes.
    const silent = (await openMany(server.port, 1_000)).conns;
    const slowHeaders = (await openMany(server.port, 100)).conns;
    for (const c of slowHeaders) c.write("GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    const noWindow = Array.from({ length: 3 }, () =>
      h2Session(server.port, { settings: { initialWindowSize: 0 } }),
    );
    const query = `connect=v1&encoding=json&message=${encodeURIComponent(JSON.stringify({ concertDateId: dateId }))}`;
    for (const { session } of noWindow) {
      for (let i = 0; i < 50; i++) {
        void h2Request(session, { ":method": "GET", ":path": `${LIST_SEATS_PATH}?${query}` }).done;
      }
    }
    const token = await waitingToken("draining");
    const unreadWatch = (await openMany(server.port, 1, { read: false })).conns;
    const body = Buffer.concat([Buffer.from([0, 0, 0, 0, 2]), Buffer.from("{}")]);
    for (const c of unreadWatch) {
      c.write(
        `POST ${WATCH_PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/connect+json\r\n` +
          `Connect-Protocol-Version: 1\r\nAuthorization: Bearer ${token}\r\nContent-Length: ${body.length}\r\n\r\n`,
      );
      c.write(body);
    }
    await sleep(500);

    const started = Date.now();
    server.signal("SIGTERM");
    const exit = await within(server.exited, SHUTDOWN_TIMEOUT_MS + 10_000, "the server exiting");
    const tookMs = Date.now() - started;
    report(
      `SIGTERM with 1000 silent, 100 mid-header, 3 unread HTTP/2 connections (150 streams) and an ` +
        `unread watch open: exited ${exit.code} in ${tookMs} ms (SHUTDOWN_TIMEOUT_MS ${SHUTDOWN_TIMEOUT_MS})`,
    );
    expect(exit.code).to.equal(0);
    expect(tookMs, "the drain took less than half its timeout").to.be.lessThan(
      SHUTDOWN_TIMEOUT_MS / 2,
    );
    for (const c of unreadWatch) c.socket.resume();
    await within(
      Promise.all([...silent, ...slowHeaders, ...unreadWatch].map((c) => c.closed)),
      5_000,
      "every abusive connection closed",
    );
    expect(server.problems().filter((l) => (l.level ?? 0) >= 50)).to.deep.equal([]);
  });
});
