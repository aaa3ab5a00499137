import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { existsSync } from "node:fs";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import pg from "pg";
import {
  type EmbeddedPostgresHandle,
  type EmbeddedPostgresLogger,
  startEmbeddedPostgres,
} from "../../../server/src/embedded/embedded-postgres.js";

interface LogEntry {
  readonly level: "info" | "warn";
  readonly msg: string;
  readonly obj: object;
}

/** A logger that remembers, so tests can assert on what operators would see. */
function recordingLogger(): EmbeddedPostgresLogger & { readonly entries: LogEntry[] } {
  const entries: LogEntry[] = [];
  return {
    entries,
    info: (obj, msg = "") => entries.push({ level: "info", msg, obj }),
    warn: (obj, msg = "") => entries.push({ level: "warn", msg, obj }),
  };
}

async function query<T extends pg.QueryResultRow>(url: string, sql: string): Promise<T[]> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<T>(sql)).rows;
  } finally {
    await client.end();
  }
}

async function postmasterPid(dataDir: string): Promise<number> {
  const text = await fs.readFile(path.join(dataDir, "pg", "postmaster.pid"), "utf8");
  return Number.parseInt(text.split("\n", 1)[0] ?? "", 10);
}

/** True until the PID has exited; a zombie awaiting its reaper counts as exited. */
async function isRunning(pid: number): Promise<boolean> {
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
    return stat.charAt(stat.lastIndexOf(")") + 2) !== "Z";
  } catch {
    return false;
  }
}

/** Live processes whose command line names the folder (what `pgrep -f` would find). */
async function processesUsing(dir: string): Promise<number[]> {
  const found: number[] = [];
  for (const entry of await fs.readdir("/proc")) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    const command = await fs.readFile(`/proc/${entry}/cmdline`, "utf8").catch(() => "");
    if (command.includes(dir)) found.push(Number(entry));
  }
  return found;
}

describe("startEmbeddedPostgres", () => {
  const dirs: string[] = [];
  const handles: EmbeddedPostgresHandle[] = [];
  const children: ChildProcess[] = [];

  async function tempDir(): Promise<string> {
    // realpath: the module reports and matches the resolved path.
    const dir = await fs.realpath(await fs.mkdtemp(path.join(os.tmpdir(), "stagedoor-ep-spec-")));
    dirs.push(dir);
    return dir;
  }

  async function start(
    dataDir: string,
    logger: EmbeddedPostgresLogger = recordingLogger(),
    persistent = true,
  ): Promise<EmbeddedPostgresHandle> {
    const handle = await startEmbeddedPostgres({ dataDir, logger, persistent });
    handles.push(handle);
    return handle;
  }

  after(async () => {
    for (const child of children) child.kill("SIGKILL");
    await Promise.all(handles.map((handle) => handle.stop()));
    const leftovers: number[] = [];
    for (const dir of dirs) leftovers.push(...(await processesUsing(dir)));
    // Even when a test failed half-way, nothing it started outlives the run.
    for (const pid of leftovers) process.kill(pid, "SIGINT");
    for (const dir of dirs) await fs.rm(dir, { recursive: true, force: true });
    expect(leftovers, "postgres processes left running by these tests").to.deep.equal([]);
  });

  it("initialises a fresh directory and serves the stagedoor database on a free local port", async () => {
    const dataDir = await tempDir();
    const logger = recordingLogger();
    const handle = await start(dataDir, logger);

    const url = new URL(handle.url);
    expect(url.hostname).to.equal("127.0.0.1");
    expect(Number(url.port)).to.equal(handle.port);
    expect(handle.port).to.be.above(0).and.not.equal(5432);
    expect(url.pathname).to.equal("/stagedoor");

    const rows = await query<{ one: number; db: string }>(
      handle.url,
      "select 1 as one, current_database() as db",
    );
    expect(rows).to.deep.equal([{ one: 1, db: "stagedoor" }]);

    const credentials = await fs.stat(path.join(dataDir, "pg-credentials.json"));
    expect(credentials.mode & 0o777).to.equal(0o600);
    const wrongPassword = new URL(handle.url);
    wrongPassword.password = "wrong";
    const rejected = await query(wrongPassword.toString(), "select 1").catch((e: Error) => e);
    expect(rejected).to.be.instanceOf(Error);

    expect(logger.entries.map((e) => e.msg)).to.include("initialising embedded PostgreSQL cluster");
    const pid = await postmasterPid(dataDir);
    await handle.stop();
    await handle.stop();
    expect(await isRunning(pid)).to.equal(false);
    expect(existsSync(path.join(dataDir, "pg", "postmaster.pid"))).to.equal(false);
  });

  it("takes embedded-postgres' own signal and exit handlers off", async () => {
    // They would stop postgres under a draining server and call process.exit().
    const handle = await start(await tempDir(), recordingLogger(), false);
    const requireFromLibrary = createRequire(
      createRequire(import.meta.url).resolve("embedded-postgres"),
    );
    const exitHook = requireFromLibrary("async-exit-hook") as { hookedEvents(): string[] };
    expect(exitHook.hookedEvents()).to.deep.equal([]);
    await handle.stop();
  });

  it("reuses the data after a restart and picks the port afresh", async () => {
    const dataDir = await tempDir();
    const first = await start(dataDir);
    await query(
      first.url,
      "create table survivor (name text); insert into survivor values ('kept')",
    );
    const password = new URL(first.url).password;
    await first.stop();

    const logger = recordingLogger();
    const second = await start(dataDir, logger);
    expect(await query(second.url, "select name from survivor")).to.deep.equal([{ name: "kept" }]);
    expect(await query(second.url, "show port")).to.deep.equal([{ port: String(second.port) }]);
    expect(new URL(second.url).password).to.equal(password);
    expect(logger.entries.map((e) => e.msg)).not.to.include(
      "initialising embedded PostgreSQL cluster",
    );
    // The port lives on the command line only, so no start inherits an old one.
    const config = await fs.readFile(path.join(dataDir, "pg", "postgresql.auto.conf"), "utf8");
    expect(config).not.to.match(/^\s*port/m);
    await second.stop();
  });

  it("stops a postgres orphaned by a SIGKILLed parent, then starts cleanly", async () => {
    const dataDir = await tempDir();
    const moduleUrl = new URL("../../../server/src/embedded/embedded-postgres.ts", import.meta.url)
      .href;
    const code = `
      const { startEmbeddedPostgres } = await import(${JSON.stringify(moduleUrl)});
      const logger = { info() {}, warn() {} };
      const handle = await startEmbeddedPostgres({ dataDir: ${JSON.stringify(dataDir)}, logger });
      process.stdout.write(JSON.stringify({ port: handle.port }) + "\\n");
      setInterval(() => {}, 60_000);
    `;
    const child = spawn(process.execPath, ["--import", "tsx", "--input-type=module", "-e", code], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    children.push(child);
    const stdout = child.stdout;
    if (stdout === null) throw new Error("child has no stdout");
    await once(stdout, "data");
    const orphan = await postmasterPid(dataDir);

    // While its Node parent lives, the cluster is in use, not orphaned.
    const inUse = await startEmbeddedPostgres({ dataDir, logger: recordingLogger() }).catch(
      (e: Error) => e,
    );
    expect(inUse)
      .to.be.instanceOf(Error)
      .with.property("message")
      .that.matches(/running process/);

    child.kill("SIGKILL");
    await once(child, "exit");
    expect(await isRunning(orphan), "postgres outlives a SIGKILLed parent").to.equal(true);

    const logger = recordingLogger();
    const handle = await start(dataDir, logger);
    expect(await isRunning(orphan)).to.equal(false);
    const stopped = logger.entries.find((e) => e.msg === "stopped orphaned embedded PostgreSQL");
    expect(stopped?.level).to.equal("warn");
    expect(stopped?.obj).to.include({ pid: orphan });
    expect(await query(handle.url, "select 1 as one")).to.deep.equal([{ one: 1 }]);
    await handle.stop();
  });

  it("stops a postgres this process started but never stopped", async () => {
    const dataDir = await tempDir();
    const leaked = await start(dataDir);
    const leakedPid = await postmasterPid(dataDir);

    const handle = await start(dataDir);
    expect(await isRunning(leakedPid)).to.equal(false);
    expect(await query(handle.url, "select 1 as one")).to.deep.equal([{ one: 1 }]);
    // Stopping the stale handle must neither hang nor touch the new postgres.
    await leaked.stop();
    expect(await query(handle.url, "select 1 as one")).to.deep.equal([{ one: 1 }]);
    await handle.stop();
  });

  it("removes a stale postmaster.pid whose process is gone", async () => {
    const dataDir = await tempDir();
    await (await start(dataDir)).stop();
    const gone = spawn(process.execPath, ["-e", ""]);
    await once(gone, "exit");
    const pidFile = path.join(dataDir, "pg", "postmaster.pid");
    await fs.writeFile(pidFile, `${gone.pid}\n${path.join(dataDir, "pg")}\n`);

    const logger = recordingLogger();
    const handle = await start(dataDir, logger);
    expect(logger.entries.some((e) => e.level === "warn" && /stale/.test(e.msg))).to.equal(true);
    expect(await query(handle.url, "select 1 as one")).to.deep.equal([{ one: 1 }]);
    await handle.stop();
  });

  it("refuses to start a cluster whose password file is gone", async () => {
    const dataDir = await tempDir();
    await (await start(dataDir)).stop();
    await fs.rm(path.join(dataDir, "pg-credentials.json"));

    const error = await startEmbeddedPostgres({ dataDir, logger: recordingLogger() }).catch(
      (e: Error) => e,
    );
    expect(error)
      .to.be.instanceOf(Error)
      .with.property("message")
      .that.includes("pg-credentials.json");
  });

  it("deletes a non-persistent cluster when stopped", async () => {
    const dataDir = await tempDir();
    const handle = await start(dataDir, recordingLogger(), false);
    expect(await query(handle.url, "show fsync")).to.deep.equal([{ fsync: "off" }]);
    await handle.stop();
    expect(existsSync(path.join(dataDir, "pg"))).to.equal(false);
    expect(existsSync(path.join(dataDir, "pg-credentials.json"))).to.equal(false);
  });
});
