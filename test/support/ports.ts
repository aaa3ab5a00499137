import { readFileSync } from "node:fs";
import net from "node:net";

/**
 * Ports for the processes tests and benchmarks start and must name before
 * those listen (a server told where a webhook receiver will be, a Redis told
 * its port, a server started with PORT=…).
 *
 * Asking the OS for port 0 and closing it again hands out a port from the
 * kernel's ephemeral range (Linux: net.ipv4.ip_local_port_range, 32768–60999
 * by default), the same range every outgoing connection's local port comes
 * from. Between the moment a test learns such a port and the moment its
 * process listens on it, any client socket (to PostgreSQL, to Redis, a
 * webhook) may be given that very port, and the listen then fails with
 * EADDRINUSE (it happened in CI: a script's webhook receiver, named to the
 * server at start-up and opened seconds later). So the ports come from below
 * the ephemeral range, where the OS never picks a local port by itself, drawn
 * at random (two runs at once rarely draw the same) and checked free by
 * listening on them.
 */

/** The lowest port handed out; below it live the well-known services (PostgreSQL, Redis, …). */
const LOWEST = 10_000;
/** Used when the kernel's range cannot be read (Linux's default start). */
const DEFAULT_EPHEMERAL_START = 32_768;

/** The first port of the kernel's ephemeral range. */
export function ephemeralRangeStart(
  read: () => string = () => readFileSync("/proc/sys/net/ipv4/ip_local_port_range", "utf8"),
): number {
  try {
    const start = Number.parseInt(read().trim().split(/\s+/)[0] ?? "", 10);
    return Number.isInteger(start) && start > 0 ? start : DEFAULT_EPHEMERAL_START;
  } catch {
    return DEFAULT_EPHEMERAL_START;
  }
}

/** Whether a TCP port is free on 127.0.0.1 right now. */
export function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const probe = net.createServer();
    probe.unref();
    probe.once("error", () => resolve(false));
    probe.listen(port, "127.0.0.1", () => probe.close(() => resolve(true)));
  });
}

export interface FreePortOptions {
  /** Ports that must be free too, as offsets from the one returned (a Redis Cluster bus: 10000). */
  readonly offsets?: readonly number[];
  /** Ports already handed out by the caller and not listened on yet. */
  readonly taken?: ReadonlySet<number>;
  /** Where the draw comes from (tests of this module). */
  readonly random?: () => number;
  /** The first port of the ephemeral range (tests of this module). */
  readonly ephemeralStart?: number;
}

/**
 * A loopback port below the ephemeral range that is free now, with the ports
 * at `offsets` from it free and below that range as well.
 */
export async function freePort(options: FreePortOptions = {}): Promise<number> {
  const offsets = options.offsets ?? [];
  const random = options.random ?? Math.random;
  const ephemeralStart = options.ephemeralStart ?? ephemeralRangeStart();
  const highest = ephemeralStart - 1 - Math.max(0, ...offsets);
  if (highest < LOWEST) {
    throw new Error(
      `no ports below the ephemeral range to hand out (range starts at ${ephemeralStart})`,
    );
  }
  for (let attempt = 0; attempt < 200; attempt++) {
    const port = LOWEST + Math.floor(random() * (highest - LOWEST + 1));
    const wanted = [port, ...offsets.map((offset) => port + offset)];
    if (wanted.some((p) => options.taken?.has(p))) continue;
    let free = true;
    for (const p of wanted) {
      if (!(await portIsFree(p))) {
        free = false;
        break;
      }
    }
    if (free) return port;
  }
  throw new Error(`found no free port between ${LOWEST} and ${highest}`);
}
