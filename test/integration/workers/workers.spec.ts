import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readdir, readFile, readlink } from "node:fs/promises";
import http from "node:http";
import { fileURLToPath } from "node:url";
import { Code } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import {
  createStagedoorClient,
  PaymentState,
  QueueTokenState,
  ReservationState,
  type StagedoorClient,
  type WatchQueueStatusResponse,
} from "@stagedoor/sdk";
import { expect } from "chai";
import {
  demoSeat,
  expectRpcError,
  must,
  newRequestId,
  seatsOfDate,
  uniqueUser,
  withDeadline,
} from "../../rpc/rpc-kit.js";
import { bearer } from "../../support/clients.js";
import { freePort } from "../../support/ports.js";
import { createTestDatabase, type TestDatabase } from "../../support/postgres.js";
import {
  deleteKeys,
  reportRedisSkipped,
  testRedisUrl,
  uniqueKeyPrefix,
} from "../../support/redis.js";

/** `npm start` runs from the repository; so does the server under test. */
const REPO_ROOT = fileURLToPath(new URL("../../../", import.meta.url));
/** Generous bounds: two workers compile and start on two busy shared cores. */
const START_MS = 75_000;
/** Well below the drain timeout the servers get, so only a real drain can meet it. */
const STOP_MS = 15_000;
const SHUTDOWN_TIMEOUT_MS = "30000";

/** One JSON log line of the server. */
type LogLine = { readonly msg?: string; readonly pid?: number; readonly [key: string]: unknown };

/** `server/src/main.ts` running as its own process, as `npm start` runs it. */
class ServerProcess {
  readonly lines: LogLine[] = [];
  stderr = "";
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  private readonly child: ChildProcess;
  private readonly waiters = new Set<() => void>();

  constructor(env: Readonly<Record<string, string>>) {
    // Only what Node needs from this environment: nothing of the developer's
    // own DATABASE_URL or REDIS_URL may leak into the server under test.
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
    let partial = "";
    this.child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
      partial += chunk;
      const complete = partial.split("\n");
      partial = complete.pop() ?? "";
      for (const text of complete) {
        try {
          this.lines.push(JSON.parse(text) as LogLine);
        } catch {
          this.lines.push({ msg: text });
        }
      }
      for (const wake of this.waiters) wake();
    });
    this.child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
      this.stderr += chunk;
    });
    this.exited = new Promise((resolve) => {
      this.child.on("exit", (code, signal) => {
        resolve({ code, signal });
        for (const wake of this.waiters) wake();
      });
    });
  }

  get pid(): number {
    return must(this.child.pid, "the server's pid");
  }

  /** The log lines whose message starts with `prefix`. */
  logged(prefix: string): LogLine[] {
    return this.lines.filter((line) => line.msg?.startsWith(prefix));
  }

  /** Waits until `count` lines start with `prefix` (failing if the server exits first). */
  async waitForLog(prefix: string, count: number, ms: number): Promise<LogLine[]> {
    let wake = () => {};
    const enough = new Promise<void>((resolve, reject) => {
      wake = () => {
        if (this.logged(prefix).length >= count) resolve();
        else if (this.child.exitCode !== null || this.child.signalCode !== null) {
          reject(new Error(`the server exited before logging "${prefix}"\n${this.transcript()}`));
        }
      };
      this.waiters.add(wake);
      wake();
    });
    try {
      await withDeadline(enough, ms, `${count} "${prefix}" log line(s)`).catch((error: Error) => {
        throw new Error(`${error.message}\n${this.transcript()}`);
      });
      return this.logged(prefix);
    } finally {
      this.waiters.delete(wake);
    }
  }

  /** Waits for the exit, failing (and killing the process) after `ms`. */
  async exit(ms: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return withDeadline(this.exited, ms, "the server's exit").catch((error: Error) => {
      throw new Error(`${error.message}\n${this.transcript()}`);
    });
  }

  signal(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  /** Everything it printed, for failure messages. */
  transcript(): string {
    const stdout = this.lines.map((line) => JSON.stringify(line)).join("\n");
    return `--- stdout\n${stdout}\n--- stderr\n${this.stderr}`;
  }

  /** Kills whatever is left of it (primary and workers), by pid. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      for (const pid of await workerPidsOf(this.pid)) killQuietly(pid);
      this.child.kill("SIGKILL");
      await this.exited;
    }
  }
}

function killQuietly(pid: number): void {
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // already gone
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * The primary's children that run the server (Linux /proc): the workers. The
 * primary has other children too (tsx's esbuild service), hence the command
 * line check.
 */
async function workerPidsOf(primary: number): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = await readFile(`/proc/${entry}/stat`, "utf8").catch(() => "");
    // pid (comm) state ppid …; comm may contain spaces and parentheses.
    const ppid = Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]);
    if (ppid !== primary) continue;
    const command = await readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (command.includes("server/src/main.ts")) pids.push(Number(entry));
  }
  return pids.sort((a, b) => a - b);
}

/**
 * Which of `pids` holds the server end of the TCP connection from
 * `clientPort` to `serverPort`: the kernel's socket table gives the socket's
 * inode, and exactly one process has it among its open files once cluster
 * has handed the connection over. No header or debug hook in the server.
 */
async function ownerOfConnection(
  serverPort: number,
  clientPort: number,
  pids: readonly number[],
): Promise<number | undefined> {
  const portOf = (address: string | undefined) => Number.parseInt(address?.split(":")[1] ?? "", 16);
  let inode: string | undefined;
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    const text = await readFile(table, "utf8").catch(() => "");
    for (const row of text.split("\n").slice(1)) {
      const columns = row.trim().split(/\s+/);
      if (portOf(columns[1]) === serverPort && portOf(columns[2]) === clientPort) {
        inode = columns[9];
      }
    }
  }
  if (inode === undefined) return undefined;
  for (const pid of pids) {
    for (const fd of await readdir(`/proc/${pid}/fd`).catch(() => [])) {
      const target = await readlink(`/proc/${pid}/fd/${fd}`).catch(() => "");
      if (target === `socket:[${inode}]`) return pid;
    }
  }
  return undefined;
}

/** A WatchQueueStatus stream on a connection of its own, whose client port we know. */
class OwnConnectionWatch {
  private readonly agent = new http.Agent({ keepAlive: false });
  private readonly iterator: AsyncIterator<WatchQueueStatusResponse>;

  constructor(baseUrl: string, token: string) {
    const transport = createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      interceptors: [bearer(token)],
      nodeOptions: { agent: this.agent },
    });
    this.iterator = createStagedoorClient(transport)
      .queue.watchQueueStatus({})
      [Symbol.asyncIterator]();
  }

  /** The next event, skipping heartbeats; undefined when the stream ended. */
  async next(ms: number, what: string): Promise<WatchQueueStatusResponse["event"] | undefined> {
    for (;;) {
      const result = await withDeadline(this.iterator.next(), ms, what);
      if (result.done) return undefined;
      if (result.value.event.case !== "heartbeat") return result.value.event;
    }
  }

  /** The client end's port of the stream's connection. */
  clientPort(): number {
    const [socket] = Object.values(this.agent.sockets).flatMap((sockets) => sockets ?? []);
    return must(socket?.localPort, "the stream's socket");
  }

  close(): void {
    this.agent.destroy();
  }
}

/** SDK clients whose every call opens a new connection, so calls spread over the workers. */
function freshConnections(baseUrl: string, token?: string): StagedoorClient {
  return createStagedoorClient(
    createConnectTransport({
      baseUrl,
      httpVersion: "1.1",
      interceptors: token ? [bearer(token)] : [],
      nodeOptions: { agent: false },
    }),
  );
}

describe("WORKERS: several server processes on one port", () => {
  describe("refusals", () => {
    it("WORKERS=2 without REDIS_URL exits with code 2 and says why", async () => {
      const server = new ServerProcess({
        WORKERS: "2",
        DATABASE_URL: "postgres://stagedoor@127.0.0.1:1/never-reached",
        AUTH_MODE: "trust",
      });
      try {
        const { code } = await server.exit(START_MS);
        expect(code, server.transcript()).to.equal(2);
        expect(server.stderr).to.contain("configuration error: WORKERS=2");
        expect(server.stderr).to.contain("needs REDIS_URL");
        expect(server.stderr).to.contain(
          "the in-process waiting room cannot be shared between processes",
        );
        expect(server.lines, "nothing was started").to.deep.equal([]);
      } finally {
        await server.kill();
      }
    });

    it("gives up, non-zero, when workers keep dying at start-up, leaving no process", async function () {
      this.timeout(START_MS + STOP_MS);
      const server = new ServerProcess({
        WORKERS: "2",
        // Nothing listens there: every worker fails to reach its database.
        DATABASE_URL: `postgres://stagedoor@127.0.0.1:${await freePort()}/stagedoor`,
        REDIS_URL: "redis://127.0.0.1:1/0",
        AUTH_MODE: "trust",
        PORT: "0",
        SERVE_WEB: "false",
        SHUTDOWN_TIMEOUT_MS: "2000",
      });
      try {
        const { code } = await server.exit(START_MS);
        expect(code, server.transcript()).to.equal(1);
        const [fatal] = server.logged("workers keep dying before they serve");
        expect(fatal?.level, server.transcript()).to.equal(60);
        expect(fatal?.msg).to.contain("giving up");
        const workers = server.lines.flatMap((line) =>
          typeof line.workerPid === "number" ? [line.workerPid] : [],
        );
        expect(workers.length, "the dead workers are named").to.be.at.least(3);
        expect(workers.filter(isAlive), "workers left running").to.deep.equal([]);
        expect(server.logged("Stagedoor is serving on")).to.deep.equal([]);
      } finally {
        await server.kill();
      }
    });
  });

  if (!testRedisUrl) {
    reportRedisSkipped("WORKERS=2 serving one port");
    return;
  }
  const redisUrl = testRedisUrl;
  let database: TestDatabase;
  const keyPrefix = uniqueKeyPrefix();
  const tokenSecret = randomBytes(32).toString("hex");

  before(async () => {
    database = await createTestDatabase();
  });

  after(async () => {
    await database?.drop();
    await deleteKeys(redisUrl, keyPrefix);
  });

  /** A two-worker server on this suite's database and Redis key prefix. */
  function startWorkers(env: Readonly<Record<string, string>>): ServerProcess {
    return new ServerProcess({
      WORKERS: "2",
      DATABASE_URL: database.url,
      REDIS_URL: redisUrl,
      REDIS_KEY_PREFIX: keyPrefix,
      AUTH_MODE: "trust",
      TOKEN_SECRET: tokenSecret,
      SEED_DEMO: "true",
      SERVE_WEB: "false",
      HOST: "127.0.0.1",
      DB_POOL_MAX: "4",
      LOG_LEVEL: "info",
      SHUTDOWN_TIMEOUT_MS,
      ...env,
    });
  }

  describe("WORKERS=2 on a free port: serving, a purchase, and a drain with streams open", () => {
    let server: ServerProcess;
    let port: number;
    let url: string;
    let workers: number[];
    const watches: OwnConnectionWatch[] = [];

    before(async function () {
      this.timeout(START_MS + 5_000);
      port = await freePort();
      // One admission at a time: the buyer first, then a head of line and
      // watchers waiting behind it.
      server = startWorkers({ PORT: String(port), QUEUE_MAX_ACTIVE: "1" });
      const [serving] = await server.waitForLog("Stagedoor is serving on", 1, START_MS);
      // Each process writes its own lines: the workers' may come after the primary's.
      await server.waitForLog("worker serving on", 2, START_MS);
      url = String(must(serving).url);
      workers = await workerPidsOf(server.pid);
    });

    after(async () => {
      for (const watch of watches) watch.close();
      await server?.kill();
    });

    it("logs one serving line from the primary (URL, worker count) and one per worker with its pid", () => {
      expect(url).to.equal(`http://127.0.0.1:${port}`);
      const serving = server.logged("Stagedoor is serving on");
      expect(serving, server.transcript()).to.have.length(1);
      expect(serving[0]).to.deep.include({ pid: server.pid, role: "primary", workers: 2, url });
      expect(serving[0]?.msg).to.equal(`Stagedoor is serving on ${url} with 2 workers`);

      const workerLines = server.logged("worker serving on");
      expect(workerLines.map((line) => line.url)).to.deep.equal([url, url]);
      const logged = workerLines.map((line) => Number(line.pid)).sort((a, b) => a - b);
      expect(workers, "the primary's server children are the workers that logged").to.deep.equal(
        logged,
      );
      expect(workers).to.have.length(2);
      expect(workers).not.to.include(server.pid);
      for (const line of server.lines) {
        expect(line.role, JSON.stringify(line)).to.be.oneOf(["primary", "worker"]);
      }
    });

    it("never logs the secrets or the connection URLs", () => {
      const everything = server.transcript();
      expect(everything).not.to.contain(tokenSecret);
      expect(everything).not.to.contain(database.url);
      expect(everything).not.to.contain(redisUrl);
    });

    it("sells a seat: token, hold, recharge and pay, each call on a new connection", async () => {
      // Cluster hands new connections to the workers in turn, so these calls
      // alternate between the two processes: what one worker records, the
      // other must see (token, hold, wallet).
      const anonymous = freshConnections(url);
      const { concerts } = await anonymous.catalog.listConcerts({});
      const concertId = must(concerts[0], "the demo concert").id;
      const { token, status } = await anonymous.queue.issueQueueToken({
        concertId,
        userId: uniqueUser("buyer"),
      });
      expect(status?.state).to.equal(QueueTokenState.ADMITTED);
      const me = freshConnections(url, token);
      const { seats } = await seatsOfDate(anonymous, concertId, 0);
      const seat = must(seats.get(7), "seat 7");
      const held = must(
        (await me.reservation.holdSeat({ seatId: seat.id, requestId: newRequestId() })).reservation,
      );
      expect(held.state).to.equal(ReservationState.HELD);
      await me.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });
      const paid = await me.payment.createPayment({
        reservationId: held.id,
        amount: demoSeat(7).price,
        requestId: newRequestId(),
      });
      expect(paid.payment?.state).to.equal(PaymentState.COMPLETED);
      expect(paid.reservation?.state).to.equal(ReservationState.CONFIRMED);
      const { wallet } = await me.wallet.getWallet({});
      expect(wallet?.balance).to.equal(200_000n - demoSeat(7).price);
    });

    it("answers from both workers: open streams are held by each of them", async () => {
      const anonymous = freshConnections(url);
      const concertId = must((await anonymous.catalog.listConcerts({})).concerts[0]).id;
      // The buyer paid, so the one slot is free: the head takes it and the
      // watchers wait behind, their streams staying open.
      const head = await anonymous.queue.issueQueueToken({ concertId, userId: uniqueUser("head") });
      expect(head.status?.state).to.equal(QueueTokenState.ADMITTED);
      const tokens: string[] = [];
      for (let i = 0; i < 8; i++) {
        const { token, status } = await anonymous.queue.issueQueueToken({
          concertId,
          userId: uniqueUser(`watcher${i}`),
        });
        expect(status?.state).to.equal(QueueTokenState.WAITING);
        tokens.push(token);
      }
      // Connections opened one after another (and nothing else in between)
      // go to the workers in turn; a few more than two allow for a worker
      // being busy at that moment.
      const owners = new Set<number>();
      for (const token of tokens) {
        if (owners.size === workers.length) break;
        const watch = new OwnConnectionWatch(url, token);
        watches.push(watch);
        const first = await watch.next(10_000, "the first message of a watch stream");
        expect(first?.case).to.equal("status");
        const owner = await ownerOfConnection(port, watch.clientPort(), workers);
        expect(owner, "a worker holds the stream's connection").to.be.oneOf(workers);
        owners.add(must(owner));
      }
      expect([...owners.keys()].sort((a, b) => a - b)).to.deep.equal(workers);
    });

    it("drains on SIGTERM: streams end, every process exits cleanly and promptly", async function () {
      this.timeout(STOP_MS * 2);
      expect(watches.length, "open streams to drain").to.be.at.least(2);
      server.signal("SIGTERM");
      for (const watch of watches) {
        const outcome = await watch.next(STOP_MS, "the stream's end").then(
          (event) => ({ event }),
          (error: unknown) => ({ error }),
        );
        if ("error" in outcome) {
          await expectRpcError(Promise.reject(outcome.error), {
            code: Code.Unavailable,
            reason: "SERVER_SHUTTING_DOWN",
          });
        } else {
          expect(outcome.event, "no message after the drain began").to.equal(undefined);
        }
      }
      const { code, signal } = await server.exit(STOP_MS);
      expect({ code, signal }, server.transcript()).to.deep.equal({ code: 0, signal: null });
      for (const pid of workers) {
        const own = server.lines.filter((line) => line.pid === pid).map((line) => line.msg);
        expect(own, `worker ${pid}`).to.include.members(["draining", "stopped"]);
        expect(isAlive(pid), `worker ${pid} still running`).to.equal(false);
      }
      expect(server.logged("stopped").at(-1)).to.deep.include({
        pid: server.pid,
        role: "primary",
        exitCode: 0,
      });
      expect(server.logged("worker still running"), "nobody had to be killed").to.deep.equal([]);
    });
  });

  describe("WORKERS=2 with PORT=0: one shared random port, replacement, and the kill deadline", () => {
    let server: ServerProcess;

    before(async function () {
      this.timeout(START_MS + 5_000);
      // A short drain timeout: the last test waits it out, plus the margin.
      server = startWorkers({ PORT: "0", SHUTDOWN_TIMEOUT_MS: "1000" });
      await server.waitForLog("Stagedoor is serving on", 1, START_MS);
      await server.waitForLog("worker serving on", 2, START_MS);
    });

    after(async () => {
      await server?.kill();
    });

    it("logs the port the workers share, not 0", () => {
      const [serving] = server.logged("Stagedoor is serving on");
      const url = String(serving?.url);
      expect(url).to.match(/^http:\/\/127\.0\.0\.1:[1-9]\d*$/);
      expect(server.logged("worker serving on").map((line) => line.url)).to.deep.equal([url, url]);
    });

    it("replaces a worker killed with SIGKILL, on the same port", async function () {
      this.timeout(START_MS + 5_000);
      const url = String(server.logged("Stagedoor is serving on")[0]?.url);
      const [victim, survivor] = await workerPidsOf(server.pid);
      process.kill(must(victim), "SIGKILL");
      const [, , replacement] = await server.waitForLog("worker serving on", 3, START_MS);
      expect(replacement?.url, "the replacement serves the same port").to.equal(url);
      const [replaced] = server.logged("worker exited; replacing it");
      expect(replaced).to.deep.include({ workerPid: victim, signal: "SIGKILL" });
      const now = await workerPidsOf(server.pid);
      expect(now).to.have.length(2);
      expect(now).to.include(must(survivor));
      expect(now).to.include(Number(replacement?.pid));
      const health = await fetch(`${url}/grpc.health.v1.Health/Check`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(await health.json()).to.deep.equal({ status: "SERVING" });
    });

    it("kills a worker that cannot drain (SIGSTOPped) after the deadline, and exits 1", async function () {
      // SHUTDOWN_TIMEOUT_MS (1 s) plus the primary's 5 s margin, plus slack.
      this.timeout(STOP_MS * 2);
      const [frozen, healthy] = await workerPidsOf(server.pid);
      process.kill(must(frozen), "SIGSTOP");
      server.signal("SIGTERM");
      const { code } = await server.exit(STOP_MS);
      expect(code, server.transcript()).to.equal(1);
      const [killed] = server.logged("worker still running");
      expect(killed, server.transcript()).to.deep.include({ workerPid: frozen });
      const own = server.lines.filter((line) => line.pid === healthy).map((line) => line.msg);
      expect(own, "the other worker drained").to.include("stopped");
      for (const pid of [must(frozen), must(healthy)]) {
        expect(isAlive(pid), `worker ${pid}`).to.equal(false);
      }
    });
  });
});
