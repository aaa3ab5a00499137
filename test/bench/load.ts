import { CpuMeter, type CpuTimes } from "./cpu-meter.js";
import { HttpConnection, type HttpReply, HttpTarget } from "./http1.js";

export { type HttpReply, HttpTarget };

/**
 * How a reply counts: `ok` (what the phase is for), `refused` (an expected
 * refusal, such as "seat taken" in a rush) or `error` (anything unexpected).
 */
export type Outcome = "ok" | "refused" | "error";

/** Decides how a reply counts. */
export type Judge = (reply: HttpReply) => Outcome;

/** The default judge: 200 is success, anything else an error. */
export const okIf200: Judge = (reply) => (reply.status === 200 ? "ok" : "error");

/**
 * Sends one request on the worker's connection, records its latency and
 * outcome, and returns the reply. A transport failure comes back as status 0
 * with the error message as text, counted as an error.
 */
export type Call = (request: string, judge?: Judge) => Promise<HttpReply>;

/** The outcome of one load phase. */
export interface PhaseResult {
  readonly name: string;
  readonly requests: number;
  readonly ok: number;
  readonly refused: number;
  readonly errors: number;
  readonly seconds: number;
  /** Requests per second. */
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p95Ms: number;
  readonly p99Ms: number;
  /** Units of work done (fans, payments, …); equal to requests for one-call units. */
  readonly units: number;
  readonly unitsPerSecond: number;
  /** Refusals and errors by HTTP status and Connect code or REST message, e.g. "409 seat taken". */
  readonly outcomes: Readonly<Record<string, number>>;
  /** CPU the load generator itself spent per request, in microseconds. */
  readonly loadCpuUsPerRequest: number;
  /**
   * CPU per request (µs) of the server under test (with its workers), of
   * PostgreSQL and of Redis, when the pool knows the server's pid.
   */
  readonly cpuUsPerRequest: Pick<CpuTimes, "server" | "db" | "redis"> | undefined;
  /** The share of the whole machine (all cores) kept busy during the phase, 0–1; undefined off Linux. */
  readonly machineBusy: number | undefined;
}

/**
 * The keep-alive connections of one load generator to one server: worker i
 * of a phase always uses connection i, so a phase with C workers keeps C
 * connections busy, and later phases reuse them.
 *
 * With several instances (`spread`), connection i goes to instance
 * i mod N, as a load balancer spreads keep-alive connections round-robin; a
 * fan is served by whichever connection picks it up, so the same fan's token,
 * hold and payment usually reach different instances.
 */
export class ConnectionPool {
  private readonly connections: HttpConnection[] = [];
  /** Measures the server's, PostgreSQL's and Redis's CPU per phase, when given its pid(s). */
  readonly meter: CpuMeter | undefined;

  constructor(
    readonly target: HttpTarget,
    serverPid?: number | readonly number[],
    private readonly spread: readonly HttpTarget[] = [target],
  ) {
    this.meter = serverPid === undefined ? undefined : new CpuMeter(serverPid);
  }

  /** Connection `index`, opened on first use (to instance index mod N). */
  connection(index: number): HttpConnection {
    for (let i = this.connections.length; i <= index; i++) {
      this.connections.push(new HttpConnection(this.spread[i % this.spread.length] ?? this.target));
    }
    return this.connections[index] as HttpConnection;
  }

  /** One request outside any phase (set-up, checks): not measured. */
  send(request: string): Promise<HttpReply> {
    return this.connection(0).request(request);
  }

  close(): void {
    for (const connection of this.connections) connection.close();
  }
}

/**
 * The nearest-rank percentile of ascending `sorted` values: the one place
 * every benchmark here computes p50, p95 and p99.
 */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  if (sorted.length === 0) return 0;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length, Math.max(1, rank)) - 1] ?? 0;
}

/**
 * Runs a closed-loop phase: `concurrency` workers, each on its own
 * connection, take the next unit of work until `units` are done, and `task`
 * does unit i with any number of calls (a token issue is one call, a fan's
 * hold attempts several). Latency is measured per call with
 * `performance.now()`.
 */
export async function runPhase(
  name: string,
  pool: ConnectionPool,
  units: number,
  concurrency: number,
  task: (unit: number, call: Call) => Promise<void>,
): Promise<PhaseResult> {
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  const counts = { ok: 0, refused: 0, error: 0 };
  let next = 0;
  const worker = async (index: number) => {
    const connection = pool.connection(index);
    const call: Call = async (request, judge = okIf200) => {
      const started = performance.now();
      let reply: HttpReply;
      try {
        reply = await connection.request(request);
      } catch (error) {
        reply = { status: 0, text: (error as Error).message };
      }
      latencies.push(performance.now() - started);
      const outcome = reply.status === 0 ? "error" : judge(reply);
      counts[outcome]++;
      if (outcome !== "ok") {
        const key = describe(reply);
        outcomes[key] = (outcomes[key] ?? 0) + 1;
      }
      return reply;
    };
    for (;;) {
      const unit = next++;
      if (unit >= units) return;
      await task(unit, call);
    }
  };
  const machine = pool.meter?.sample();
  const cpu = process.cpuUsage();
  const started = performance.now();
  await Promise.all(
    Array.from({ length: Math.max(0, Math.min(concurrency, units)) }, (_, i) => worker(i)),
  );
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  const machineAfter = pool.meter?.sample();
  const sorted = Float64Array.from(latencies).sort();
  const requests = latencies.length;
  const perRequest = (before: number, after: number) =>
    requests > 0 ? (after - before) / requests : 0;
  return {
    name,
    requests,
    ok: counts.ok,
    refused: counts.refused,
    errors: counts.error,
    seconds,
    perSecond: seconds > 0 ? requests / seconds : 0,
    p50Ms: percentile(sorted, 50),
    p95Ms: percentile(sorted, 95),
    p99Ms: percentile(sorted, 99),
    units,
    unitsPerSecond: seconds > 0 ? units / seconds : 0,
    outcomes,
    loadCpuUsPerRequest: requests > 0 ? (used.user + used.system) / requests : 0,
    cpuUsPerRequest:
      machine && machineAfter
        ? {
            server: perRequest(machine.server, machineAfter.server),
            db: perRequest(machine.db, machineAfter.db),
            redis: perRequest(machine.redis, machineAfter.redis),
          }
        : undefined,
    machineBusy:
      machine && machineAfter && machineAfter.machineTotal > machine.machineTotal
        ? (machineAfter.machineBusy - machine.machineBusy) /
          (machineAfter.machineTotal - machine.machineTotal)
        : undefined,
  };
}

/** "409 the seat is not available", "400 failed_precondition", "0 connect ECONNREFUSED …". */
function describe(reply: HttpReply): string {
  if (reply.status === 0) return `0 ${reply.text}`;
  const match = /"(?:code|error)":"([^"]{0,80})/.exec(reply.text);
  return `${reply.status} ${match?.[1] ?? reply.text.slice(0, 60)}`.trim();
}

/** Parses a JSON object body; a body that is not one becomes `{}`. */
export function jsonBody(reply: HttpReply): Record<string, unknown> {
  try {
    const parsed: unknown = JSON.parse(reply.text);
    return typeof parsed === "object" && parsed !== null ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

/** Lays out rows under a header, numbers right-aligned, the first column left-aligned. */
export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
): string {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((row) => (row[i] ?? "").length)),
  );
  const line = (cells: readonly string[]) =>
    cells
      .map((cell, i) => (i === 0 ? cell.padEnd(widths[i] ?? 0) : cell.padStart(widths[i] ?? 0)))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}

/** A figure for a table: thousands separated, `digits` decimals. */
export function fmt(value: number, digits = 0): string {
  if (!Number.isFinite(value)) return "-";
  return value.toLocaleString("en-US", {
    minimumFractionDigits: digits,
    maximumFractionDigits: digits,
  });
}

/** The standard columns of a phase table. */
export const PHASE_HEADER = [
  "phase",
  "requests",
  "ok",
  "refused",
  "errors",
  "seconds",
  "ops/s",
  "p50 ms",
  "p95 ms",
  "p99 ms",
] as const;

/** The CPU columns that follow a phase row: server, PostgreSQL, Redis and load generator µs/req. */
export const CPU_HEADER = ["server µs", "db µs", "redis µs", "load µs", "busy"] as const;

/** A phase's CPU per request as cells under {@link CPU_HEADER}. */
export function cpuCells(result: PhaseResult): string[] {
  const cpu = result.cpuUsPerRequest;
  return [
    cpu ? fmt(cpu.server) : "-",
    cpu ? fmt(cpu.db) : "-",
    cpu ? fmt(cpu.redis) : "-",
    fmt(result.loadCpuUsPerRequest),
    result.machineBusy === undefined ? "-" : `${Math.round(result.machineBusy * 100)}%`,
  ];
}

/** One phase as a row under {@link PHASE_HEADER}. */
export function phaseRow(result: PhaseResult): string[] {
  return [
    result.name,
    fmt(result.requests),
    fmt(result.ok),
    fmt(result.refused),
    fmt(result.errors),
    fmt(result.seconds, 2),
    fmt(result.perSecond),
    fmt(result.p50Ms, 2),
    fmt(result.p95Ms, 2),
    fmt(result.p99Ms, 2),
  ];
}

/** The refusals and errors of phases, one line per kind, for the report. */
export function outcomeLines(results: readonly PhaseResult[]): string[] {
  const lines: string[] = [];
  for (const result of results) {
    for (const [key, count] of Object.entries(result.outcomes)) {
      lines.push(`  ${result.name}: ${fmt(count)} × ${key}`);
    }
  }
  return lines;
}
