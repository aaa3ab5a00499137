import { randomBytes } from "node:crypto";
import {
  contiguous,
  type DateChanges,
  type DateChangesQuery,
  type GateDate,
  SEAT_LOG_LIMIT,
  type SeatChange,
  type SeatGate,
  type SeatGateEntry,
  supersedes,
} from "./seat-gate.js";

interface DateLog {
  readonly epoch: string;
  version: number;
  /** The newest changes, oldest first, each with its number. */
  changes: (SeatChange & { readonly n: number })[];
}

/**
 * The gate of the embedded default, in process, with exactly the semantics of
 * the Redis gate (both pass one contract suite). It is not checkpointed: after
 * a restart it knows nothing, which only sends attempts to the database, and
 * its fresh epoch makes every listing rebuild.
 */
export class MemorySeatGate implements SeatGate {
  private readonly entries = new Map<string, SeatGateEntry>();
  private readonly logs = new Map<string, DateLog>();

  async peek(date: GateDate, seatId: string): Promise<SeatGateEntry | null> {
    return this.entry(date, seatId);
  }

  /** The entry right now, for callers that already run inside the store. */
  entry(date: GateDate, seatId: string): SeatGateEntry | null {
    return this.entries.get(seatKey(date, seatId)) ?? null;
  }

  async record(date: GateDate, change: SeatChange): Promise<void> {
    const k = seatKey(date, change.seatId);
    if (!supersedes(change, this.entries.get(k) ?? null)) return;
    this.entries.set(k, {
      seatVersion: change.seatVersion,
      state: change.state,
      heldUntil: change.heldUntil,
      owner: change.owner,
    });
    let log = this.logs.get(dateKey(date));
    if (log === undefined) {
      log = { epoch: randomBytes(8).toString("hex"), version: 0, changes: [] };
      this.logs.set(dateKey(date), log);
    }
    log.version += 1;
    log.changes.push({ ...change, owner: "", n: log.version });
    // Trim in chunks so a busy date does not copy its log on every write.
    if (log.changes.length > SEAT_LOG_LIMIT + 256) {
      log.changes = log.changes.slice(log.changes.length - SEAT_LOG_LIMIT);
    }
  }

  async invalidate(date: GateDate, seatId: string, seatVersion: number): Promise<void> {
    const k = seatKey(date, seatId);
    const current = this.entries.get(k);
    this.entries.set(k, {
      seatVersion: Math.max(seatVersion, current?.seatVersion ?? 0),
      state: "unknown",
      heldUntil: 0,
      owner: "",
    });
  }

  async changesSince(queries: readonly DateChangesQuery[]): Promise<DateChanges[]> {
    return queries.map((query) => {
      const { afterVersion } = query;
      const log = this.logs.get(dateKey(query));
      if (log === undefined)
        return { epoch: "", version: 0, changes: contiguous([], afterVersion, 0) };
      const first = log.changes[0]?.n ?? log.version + 1;
      const start = Math.max(0, afterVersion + 1 - first);
      return {
        epoch: log.epoch,
        version: log.version,
        changes: contiguous(log.changes.slice(start), afterVersion, log.version),
      };
    });
  }
}

// Keyed by concert and date, as the Redis gate is (a date asked under another
// concert is unknown there too).
function dateKey(date: GateDate): string {
  return `${date.concertId}/${date.dateId}`;
}

function seatKey(date: GateDate, seatId: string): string {
  return `${dateKey(date)}/${seatId}`;
}
