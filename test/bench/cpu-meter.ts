import { readdirSync, readFileSync } from "node:fs";

/** CPU time (µs) spent so far by the processes a benchmark watches, by role. */
export interface CpuTimes {
  /** The server under test and its children (workers). */
  readonly server: number;
  /** Every PostgreSQL process of the machine. */
  readonly db: number;
  /** Every Redis server of the machine. */
  readonly redis: number;
}

/** Microseconds per clock tick of /proc (USER_HZ is 100 on Linux). */
const TICK_US = 10_000;

interface ProcStat {
  readonly pid: number;
  readonly comm: string;
  readonly ppid: number;
  readonly cpuUs: number;
}

function readStat(pid: string): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    // comm is in parentheses and may hold spaces; the fields after it are fixed.
    const close = text.lastIndexOf(")");
    const comm = text.slice(text.indexOf("(") + 1, close);
    const fields = text.slice(close + 2).split(" ");
    const ticks = Number(fields[11]) + Number(fields[12]); // utime + stime
    return { pid: Number(pid), comm, ppid: Number(fields[1]), cpuUs: ticks * TICK_US };
  } catch {
    return undefined; // gone, or not Linux
  }
}

/**
 * Reads, from /proc, how much CPU the server under test, PostgreSQL and Redis
 * have used. Sampled before and after a phase, it tells where the machine's
 * time went per request, which survives the noise of a shared machine better
 * than throughput. A process that exits between samples drops out of the
 * sum, so figures for phases that start or stop processes are lower bounds.
 * Off Linux every figure is 0.
 */
export class CpuMeter {
  private readonly serverPids: ReadonlySet<number>;

  /** `serverPid`: the server under test, or every instance of it (each with its children). */
  constructor(serverPid: number | readonly number[]) {
    this.serverPids = new Set(typeof serverPid === "number" ? [serverPid] : serverPid);
  }

  sample(): CpuTimes {
    let server = 0;
    let db = 0;
    let redis = 0;
    let entries: string[] = [];
    try {
      entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
    } catch {
      return { server, db, redis };
    }
    for (const pid of entries) {
      const stat = readStat(pid);
      if (stat === undefined) continue;
      if (this.serverPids.has(stat.pid) || this.serverPids.has(stat.ppid)) server += stat.cpuUs;
      else if (stat.comm === "postgres") db += stat.cpuUs;
      else if (stat.comm.startsWith("redis-server")) redis += stat.cpuUs;
    }
    return { server, db, redis };
  }
}
