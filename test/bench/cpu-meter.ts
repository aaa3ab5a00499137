import { readdirSync, readFileSync } from "node:fs";

/** CPU time (µs) spent so far by the processes a benchmark watches, by role. */
export interface CpuTimes {
  /** The server under test and its children (workers). */
  readonly server: number;
  /** Every PostgreSQL process of the machine. */
  readonly db: number;
  /** Every Redis server of the machine. */
  readonly redis: number;
  /**
   * The whole machine, all cores (from /proc/stat): time busy, in the kernel
   * too (softirq work for loopback sockets is charged to no process), and in
   * all. Their differences over a phase give the share of the machine it
   * kept busy: near 100% means the phase was bound by the CPU.
   */
  readonly machineBusy: number;
  readonly machineTotal: number;
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
    const { busy: machineBusy, total: machineTotal } = readMachine();
    let entries: string[] = [];
    try {
      entries = readdirSync("/proc").filter((name) => /^\d+$/.test(name));
    } catch {
      return { server, db, redis, machineBusy, machineTotal };
    }
    for (const pid of entries) {
      const stat = readStat(pid);
      if (stat === undefined) continue;
      if (this.serverPids.has(stat.pid) || this.serverPids.has(stat.ppid)) server += stat.cpuUs;
      else if (stat.comm === "postgres") db += stat.cpuUs;
      else if (stat.comm.startsWith("redis-server")) redis += stat.cpuUs;
    }
    return { server, db, redis, machineBusy, machineTotal };
  }
}

/**
 * All cores' time so far, in µs: busy (user, nice, system, irq, softirq,
 * steal) and in all (the same plus idle and iowait). Zeros off Linux.
 */
function readMachine(): { busy: number; total: number } {
  try {
    const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
    // cpu  user nice system idle iowait irq softirq steal guest guest_nice
    const [user, nice, system, idle, iowait, irq, softirq, steal] = line
      .trim()
      .split(/\s+/)
      .slice(1, 9)
      .map(Number);
    const busy = [user, nice, system, irq, softirq, steal].reduce<number>(
      (a, b) => a + (b ?? 0),
      0,
    );
    const total = busy + (idle ?? 0) + (iowait ?? 0);
    return Number.isFinite(total) ? { busy: busy * TICK_US, total: total * TICK_US } : NO_MACHINE;
  } catch {
    return NO_MACHINE;
  }
}

const NO_MACHINE = { busy: 0, total: 0 } as const;
