import { type ChildProcess, spawn } from "node:child_process";
import { createHash, randomBytes, randomUUID } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { QueueTokenState } from "@stagedoor/sdk";
import { expect } from "chai";
import pg from "pg";
import {
  admittedUser,
  must,
  newRequestId,
  pollUntil,
  seatsOfDate,
  startRpcServer,
  uniqueUser,
} from "../rpc/rpc-kit.js";
import { clientFor } from "../support/clients.js";
import { BAD_CSV, csvSeats } from "../support/seat-maps.js";
import type { TestServer } from "../support/test-server.js";

const REPO_ROOT = fileURLToPath(new URL("../../", import.meta.url));
/** The bin's source, run the way the workspace runs TypeScript (source condition, tsx). */
const CLI = path.join(REPO_ROOT, "sdk", "src", "cli", "stagedoor-admin.ts");
const KEY = randomBytes(24).toString("base64url");
const DAY_MS = 86_400_000;

/** How one run of the command line ended. */
interface CliRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** For assertion messages. */
  readonly transcript: string;
}

/** Starts the command line with `args`; the environment has no key or URL unless `env` sets them. */
function startCli(args: readonly string[], env: Record<string, string>): ChildProcess {
  const base: Record<string, string> = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (value !== undefined && !name.startsWith("STAGEDOOR_")) base[name] = value;
  }
  return spawn(
    process.execPath,
    ["--conditions=stagedoor-source", "--import", "tsx", CLI, ...args],
    { cwd: REPO_ROOT, env: { ...base, ...env }, stdio: ["ignore", "pipe", "pipe"] },
  );
}

/** Collects a child's output and resolves when it exits (killed by its pid after 45 s). */
function finished(child: ChildProcess, args: readonly string[]): Promise<CliRun> {
  let stdout = "";
  let stderr = "";
  child.stdout?.setEncoding("utf8").on("data", (chunk: string) => {
    stdout += chunk;
  });
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr += chunk;
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill("SIGKILL"), 45_000);
    child.on("error", reject);
    child.on("close", (code) => {
      clearTimeout(timer);
      const transcript = `$ stagedoor-admin ${args.join(" ")}\nexit ${code}\n--- stdout\n${stdout}--- stderr\n${stderr}`;
      resolve({ code, stdout, stderr, transcript });
    });
  });
}

/** A start time `days` from now at 05:00 UTC (14:00 in Seoul, the same date), as the operator types it. */
function startsIn(days: number): string {
  const day = new Date(Date.now() + days * DAY_MS);
  return new Date(
    Date.UTC(day.getUTCFullYear(), day.getUTCMonth(), day.getUTCDate(), 5),
  ).toISOString();
}

/** A loopback port nothing listens on: one the OS just handed out and took back. */
async function closedPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, "127.0.0.1", resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  if (address === null || typeof address === "string") throw new Error("no port");
  return address.port;
}

describe("sdk: the stagedoor-admin command line against a running server", function () {
  // Each run starts a Node process with the TypeScript loader (seconds on a busy machine),
  // and one test makes up to fifteen runs.
  this.timeout(180_000);

  let server: TestServer;
  let db: pg.Pool;
  let files: string;
  let env: Record<string, string>;

  before(async () => {
    server = await startRpcServer({
      env: { ADMIN_API_KEYS: `ops:${createHash("sha256").update(KEY).digest("hex")}` },
    });
    db = new pg.Pool({ connectionString: server.databaseUrl, max: 2 });
    files = await mkdtemp(path.join(os.tmpdir(), "stagedoor-cli-"));
    env = { STAGEDOOR_URL: server.url, STAGEDOOR_ADMIN_KEY: KEY };
  });
  after(async () => {
    await db?.end();
    await server?.stop();
    if (files) await rm(files, { recursive: true, force: true });
  });

  async function cli(args: readonly string[], runEnv = env): Promise<CliRun> {
    return finished(startCli(args, runEnv), args);
  }

  /** Runs a command that must succeed with `--json` and returns what it printed. */
  async function cliJson(args: readonly string[]): Promise<Record<string, unknown>> {
    const run = await cli([...args, "--json"]);
    expect(run.code, run.transcript).to.equal(0);
    return JSON.parse(run.stdout) as Record<string, unknown>;
  }

  /** The JSON error a failed `--json` run printed on stderr. */
  function errorOf(run: CliRun): Record<string, unknown> {
    return (JSON.parse(run.stderr) as { error: Record<string, unknown> }).error;
  }

  async function seatCount(dateId: string): Promise<number> {
    const { rows } = await db.query<{ n: number }>(
      "select count(*)::int as n from seat where concert_date_id = $1",
      [dateId],
    );
    return must(rows[0]).n;
  }

  async function auditRequestIds(action: string): Promise<string[]> {
    const { rows } = await db.query<{ request_id: string }>(
      "select request_id from admin_audit where action = $1",
      [action],
    );
    return rows.map((row) => row.request_id);
  }

  it("prints its help, and each command's", async () => {
    const all = await cli(["--help"], {});
    expect(all.code, all.transcript).to.equal(0);
    for (const command of [
      "concerts create",
      "concerts list",
      "sale open",
      "sale pause",
      "sale resume",
      "performances create",
      "seatmap import",
      "stats",
      "refund",
      "credit",
    ]) {
      expect(all.stdout).to.include(command);
    }
    const one = await cli(["seatmap", "import", "--help"], {});
    expect(one.code, one.transcript).to.equal(0);
    expect(one.stdout).to.include("usage: stagedoor-admin seatmap import FILE --performance ID");
  });

  it("creates a concert and a performance, imports its seat map after a dry run, and lists it; retries with a request id replay", async () => {
    const requestId = newRequestId();
    const created = await cliJson([
      "concerts",
      "create",
      "--title",
      "CLI Live",
      "--venue",
      "KSPO Dome",
      "--time-zone",
      "Asia/Seoul",
      "--request-id",
      requestId,
    ]);
    const concert = created.concert as { id: string; timeZone: string };
    expect(created.requestId).to.equal(requestId);
    expect(concert.timeZone).to.equal("Asia/Seoul");
    // The same request id again: the same concert, not a second one.
    const replay = await cliJson([
      "concerts",
      "create",
      "--title",
      "CLI Live",
      "--venue",
      "KSPO Dome",
      "--time-zone",
      "Asia/Seoul",
      "--request-id",
      requestId,
    ]);
    expect((replay.concert as { id: string }).id).to.equal(concert.id);
    const listed = await cli(["concerts", "list"], { STAGEDOOR_URL: server.url });
    expect(listed.code, listed.transcript).to.equal(0);
    expect(listed.stdout.match(/CLI Live/g), listed.transcript).to.have.length(1);
    expect(listed.stdout).to.include(`${concert.id}  CLI Live  (KSPO Dome, Asia/Seoul)`);

    const startsAt = startsIn(20);
    const performance = (
      await cliJson(["performances", "create", "--concert", concert.id, "--starts-at", startsAt])
    ).performance as { id: string; date: string };
    expect(performance.date).to.equal(startsAt.slice(0, 10));
    // The server's refusal reaches the operator with its reason and exit code 1.
    const sameDay = await cli([
      "performances",
      "create",
      "--concert",
      concert.id,
      "--starts-at",
      startsAt.replace("T05:", "T06:"),
    ]);
    expect(sameDay.code, sameDay.transcript).to.equal(1);
    expect(sameDay.stderr).to.include("AlreadyExists CONCERT_DATE_EXISTS");
    const local = await cli([
      "performances",
      "create",
      "--concert",
      concert.id,
      "--starts-at",
      "2026-12-24 19:00",
    ]);
    expect(local.code, local.transcript).to.equal(2);
    expect(local.stderr).to.include("--starts-at must be an ISO 8601 time with its offset");

    const bad = path.join(files, "bad.csv");
    await writeFile(bad, BAD_CSV);
    const dryBad = await cli([
      "seatmap",
      "import",
      bad,
      "--performance",
      performance.id,
      "--dry-run",
    ]);
    expect(dryBad.code, dryBad.transcript).to.equal(3);
    expect(dryBad.stdout).to.include("2 bad row(s) (dry run: nothing was written)");
    expect(dryBad.stdout).to.match(/line 3 \(number\): /);
    expect(dryBad.stdout).to.match(/line 4 \(price\): /);
    // A real import of the same file is refused whole, with the same lines.
    const realBad = await cli(["seatmap", "import", bad, "--performance", performance.id]);
    expect(realBad.code, realBad.transcript).to.equal(3);
    expect(realBad.stdout).to.include("nothing was imported");
    expect(realBad.stdout).to.match(/line 4 \(price\): /);
    expect(await seatCount(performance.id)).to.equal(0);

    const good = path.join(files, "hall.CSV");
    await writeFile(good, csvSeats(12));
    const dry = await cliJson([
      "seatmap",
      "import",
      good,
      "--performance",
      performance.id,
      "--dry-run",
    ]);
    expect(dry).to.deep.include({ seatCount: 12, applied: false, problems: [] });
    expect(await seatCount(performance.id)).to.equal(0);
    const imported = await cli(["seatmap", "import", good, "--performance", performance.id]);
    expect(imported.code, imported.transcript).to.equal(0);
    expect(imported.stdout).to.include(`imported 12 seats into performance ${performance.id}`);
    expect(await seatCount(performance.id)).to.equal(12);
    const again = await cli(["seatmap", "import", good, "--performance", performance.id, "--json"]);
    expect(again.code, again.transcript).to.equal(1);
    expect(errorOf(again)).to.deep.include({
      code: "FailedPrecondition",
      reason: "SEAT_MAP_EXISTS",
    });

    const json = path.join(files, "hall.json");
    await writeFile(
      json,
      JSON.stringify([{ section: "Floor", row: "A", number: 1, grade: "", price: 1 }]),
    );
    const jsonRun = await cli([
      "seatmap",
      "import",
      json,
      "--performance",
      performance.id,
      "--dry-run",
      "--json",
    ]);
    expect(jsonRun.code, jsonRun.transcript).to.equal(3);
    const jsonDry = JSON.parse(jsonRun.stdout) as Record<string, unknown>;
    expect(jsonDry.seatCount).to.equal(0);
    expect((jsonDry.problems as { line: number; field: string }[])[0]).to.deep.include({
      line: 1,
      field: "grade",
    });
  });

  it("pauses and resumes admission, and opens the sale now or at a time", async () => {
    const created = await cliJson([
      "concerts",
      "create",
      "--title",
      "CLI Sale",
      "--venue",
      "Gocheok Dome",
      "--time-zone",
      "Asia/Seoul",
    ]);
    const concertId = (created.concert as { id: string }).id;
    const status = await cli(["sale", "status", "--concert", concertId]);
    expect(status.code, status.transcript).to.equal(0);
    expect(status.stdout).to.include("no scheduled opening");
    expect(status.stdout).to.include("admission running");

    const paused = await cliJson([
      "sale",
      "pause",
      "--concert",
      concertId,
      "--reason",
      "payment provider down",
    ]);
    expect((paused.settings as { paused: boolean }).paused).to.equal(true);
    // A fan who comes now waits: nobody new is admitted while paused.
    const fans = clientFor("connect", server.url);
    const { token, status: first } = await fans.queue.issueQueueToken({
      concertId,
      userId: uniqueUser("cli-paused"),
    });
    expect(first?.state).to.equal(QueueTokenState.WAITING);
    const resumed = await cli(["sale", "resume", "--concert", concertId]);
    expect(resumed.code, resumed.transcript).to.equal(0);
    expect(resumed.stdout).to.include("admission running");
    const fan = clientFor("connect", server.url, token);
    await pollUntil(
      async () => (await fan.queue.getQueueStatus({})).status?.state === QueueTokenState.ADMITTED,
      15_000,
      "the waiting fan admitted after the resume",
    );

    const at = new Date(Date.now() + 3 * DAY_MS);
    at.setUTCMilliseconds(0);
    const scheduled = await cliJson([
      "sale",
      "open",
      "--concert",
      concertId,
      "--at",
      at.toISOString(),
    ]);
    expect((scheduled.settings as { opensAt: string }).opensAt).to.equal(
      at.toISOString().replace(".000Z", "Z"),
    );
    const pending = await cliJson(["sale", "status", "--concert", concertId]);
    expect(pending.drawState).to.equal("OPENING_DRAW_STATE_PENDING");
    const before = Date.now();
    const now = await cliJson(["sale", "open", "--concert", concertId]);
    const opensAt = Date.parse((now.settings as { opensAt: string }).opensAt);
    expect(opensAt).to.be.within(before - 60_000, Date.now());
    const badTime = await cli(["sale", "open", "--concert", concertId, "--at", "tomorrow"]);
    expect(badTime.code, badTime.transcript).to.equal(2);
    const unknown = await cli(["sale", "pause", "--concert", randomUUID()]);
    expect(unknown.code, unknown.transcript).to.equal(1);
    expect(unknown.stderr).to.include("CONCERT_NOT_FOUND");
  });

  it("shows a sale's figures once and keeps reading them with --watch until Ctrl-C", async () => {
    const once = await cli(["stats", "--concert", server.concertId]);
    expect(once.code, once.transcript).to.equal(0);
    expect(once.stdout).to.match(/seats {4}total \d+, available \d+, held \d+, sold \d+/);
    const figures = await cliJson(["stats", "--concert", server.concertId]);
    const { rows } = await db.query<{ n: number }>(
      `select count(*)::int as n from seat s join concert_date d on d.id = s.concert_date_id
        where d.concert_id = $1`,
      [server.concertId],
    );
    expect(figures.totalSeats).to.equal(must(rows[0]).n);

    const args = ["stats", "--concert", server.concertId, "--watch", "--interval", "1", "--json"];
    const child = startCli(args, env);
    const run = finished(child, args);
    let lines = 0;
    child.stdout?.on("data", (chunk: string) => {
      lines += chunk.split("\n").filter((line) => line.startsWith("{")).length;
    });
    await pollUntil(() => lines >= 2, 20_000, "two readings");
    child.kill("SIGINT");
    const watched = await run;
    expect(watched.code, watched.transcript).to.equal(0);
    for (const line of watched.stdout.trim().split("\n")) {
      expect((JSON.parse(line) as { totalSeats: number }).totalSeats).to.equal(figures.totalSeats);
    }

    const badInterval = await cli(["stats", "--concert", server.concertId, "--interval", "1"]);
    expect(badInterval.code, badInterval.transcript).to.equal(2);
  });

  it("refunds a ticket once (a second refund is ALREADY_REFUNDED) and credits a wallet", async () => {
    const anonymous = clientFor("connect", server.url);
    const buyer = await admittedUser(anonymous, server.concertId, "cli-refund");
    const fan = clientFor("connect", server.url, buyer.token);
    const { seats } = await seatsOfDate(anonymous, server.concertId, 0);
    const seat = must(seats.get(45), "seat 45");
    await fan.wallet.rechargeWallet({ amount: 200_000n, requestId: newRequestId() });
    const { reservation } = await fan.reservation.holdSeat({
      seatId: seat.id,
      requestId: newRequestId(),
    });
    const reservationId = must(reservation).id;
    await fan.payment.createPayment({
      reservationId,
      amount: seat.price,
      requestId: newRequestId(),
    });

    const noReason = await cli(["refund", "--reservation", reservationId]);
    expect(noReason.code, noReason.transcript).to.equal(2);
    expect(noReason.stderr).to.include("--reason is required");
    const requestId = newRequestId();
    const refunded = await cliJson([
      "refund",
      "--reservation",
      reservationId,
      "--reason",
      "fan cannot come",
      "--request-id",
      requestId,
    ]);
    expect((refunded.wallet as { balance: string }).balance).to.equal("200000");
    expect(await auditRequestIds("RefundTicket")).to.include(requestId);
    const twice = await cli(["refund", "--reservation", reservationId, "--reason", "again"]);
    expect(twice.code, twice.transcript).to.equal(1);
    expect(twice.stderr).to.include("ALREADY_REFUNDED");

    const credited = await cli([
      "credit",
      "--user",
      buyer.userId,
      "--amount",
      "5000",
      "--reason",
      "sorry for the wait",
    ]);
    expect(credited.code, credited.transcript).to.equal(0);
    expect(credited.stdout).to.include(`credited 5000 to ${buyer.userId}; balance now 205000`);
    expect((await fan.wallet.getWallet({})).wallet?.balance).to.equal(205_000n);
    const badAmount = await cli([
      "credit",
      "--user",
      buyer.userId,
      "--amount",
      "12.5",
      "--reason",
      "x",
    ]);
    expect(badAmount.code, badAmount.transcript).to.equal(2);
  });

  it("explains every failure with an exit code, and never prints the key", async () => {
    const noKey = await cli(["stats", "--concert", server.concertId], {
      STAGEDOOR_URL: server.url,
    });
    expect(noKey.code, noKey.transcript).to.equal(2);
    expect(noKey.stderr).to.include("set STAGEDOOR_ADMIN_KEY");

    const wrongKey = "wrong-key-that-must-not-be-printed";
    const refused = await cli(["stats", "--concert", server.concertId, "--json"], {
      STAGEDOOR_URL: server.url,
      STAGEDOOR_ADMIN_KEY: wrongKey,
    });
    expect(refused.code, refused.transcript).to.equal(1);
    expect(errorOf(refused)).to.deep.include({
      code: "Unauthenticated",
      reason: "ADMIN_KEY_INVALID",
    });
    expect(refused.stdout + refused.stderr).to.not.include(wrongKey);

    const badField = await cli(["stats", "--concert", "not-a-uuid"]);
    expect(badField.code, badField.transcript).to.equal(1);
    expect(badField.stderr).to.match(/InvalidArgument INVALID_ARGUMENT: .*\n {2}concert_id: /);
    expect(badField.stdout + badField.stderr).to.not.include(KEY);

    const noServer = await cli(["stats", "--concert", server.concertId], {
      STAGEDOOR_ADMIN_KEY: KEY,
    });
    expect(noServer.code, noServer.transcript).to.equal(2);
    expect(noServer.stderr).to.include("pass --server URL or set STAGEDOOR_URL");

    const port = await closedPort();
    const unreachable = await cli([
      "stats",
      "--concert",
      server.concertId,
      "--server",
      `http://127.0.0.1:${port}`,
    ]);
    expect(unreachable.code, unreachable.transcript).to.equal(4);
    expect(unreachable.stderr).to.include("no answer from a Stagedoor server");

    const unknown = await cli(["concerts", "delete"]);
    expect(unknown.code, unknown.transcript).to.equal(2);
    expect(unknown.stderr).to.include('unknown command "concerts delete"');
    const flag = await cli(["concerts", "list", "--key", KEY]);
    expect(flag.code, flag.transcript).to.equal(2);
    expect(flag.stderr).to.include("Unknown option '--key'");
    expect(flag.stderr).to.not.include(KEY);
    const notSeatMap = path.join(files, "seats.txt");
    await writeFile(notSeatMap, "x");
    const format = await cli(["seatmap", "import", notSeatMap, "--performance", server.concertId]);
    expect(format.code, format.transcript).to.equal(2);
    expect(format.stderr).to.include("must be a .csv or .json file");
  });
});
