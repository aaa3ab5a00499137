import type { Logger } from "../../logger.js";
import type { Clock } from "../../shared/clock.js";
import type { GateDate, SeatChange, SeatGate } from "./seat-gate.js";

/** How often failed gate writes are retried, and for how long. */
const RETRY_EVERY_MS = 250;
const GIVE_UP_AFTER_MS = 60_000;

interface Pending {
  readonly date: GateDate;
  readonly change: SeatChange;
  readonly since: number;
}

/**
 * Writes committed seat changes to the gate on behalf of the services. The
 * services call it after their transaction commits and before they answer,
 * so once a caller has seen a seat held or sold, the gate (and every listing)
 * knows it too.
 *
 * A write that fails (the gate's Redis is unreachable) never fails the
 * request that committed the change: the change is kept and retried in the
 * background until it lands or a minute has passed, and the outage is logged
 * once, not once per write. A missed write is safe for holds: the gate then
 * knows less, so attempts on that seat go to the database.
 */
export class SeatGateWriter {
  private readonly pending = new Map<string, Pending>();
  private timer: NodeJS.Timeout | undefined;
  private failing = false;

  constructor(
    private readonly gate: SeatGate,
    private readonly clock: Clock,
    private readonly logger: Logger,
  ) {}

  /** Records a committed change; never throws. */
  async record(date: GateDate, change: SeatChange): Promise<void> {
    try {
      await this.gate.record(date, change);
    } catch (error) {
      this.retryLater({ date, change, since: this.clock.now().getTime() }, error);
      return;
    }
    if (this.pending.size === 0) this.noteRecovery();
  }

  /**
   * Marks a seat unknown before a change that frees it commits (see
   * {@link SeatGate.invalidate}); never throws. If it cannot, the change's own
   * record afterwards still frees the seat in the gate.
   */
  async invalidate(date: GateDate, seatId: string, seatVersion: number): Promise<void> {
    try {
      await this.gate.invalidate(date, seatId, seatVersion);
    } catch (error) {
      this.noteFailure(error);
    }
  }

  /** How many changes wait for a retry (for tests and health). */
  get backlog(): number {
    return this.pending.size;
  }

  /** Tries the waiting changes once more and stops retrying. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    await this.flush();
    if (this.pending.size > 0) {
      this.logger.error(
        { seats: this.pending.size },
        "stopped with seat changes the gate never got; attempts on those seats go to the database",
      );
    }
    this.pending.clear();
  }

  private retryLater(entry: Pending, error: unknown): void {
    this.noteFailure(error);
    const current = this.pending.get(entry.change.seatId);
    if (!current || current.change.seatVersion < entry.change.seatVersion) {
      this.pending.set(entry.change.seatId, entry);
    }
    this.timer ??= setInterval(() => void this.flush(), RETRY_EVERY_MS).unref();
  }

  private noteFailure(error: unknown): void {
    if (this.failing) return;
    this.failing = true;
    this.logger.warn(
      { err: error },
      "seat gate unreachable; retrying its writes in the background",
    );
  }

  private async flush(): Promise<void> {
    const now = this.clock.now().getTime();
    let landed = false;
    for (const [seatId, entry] of this.pending) {
      if (now - entry.since > GIVE_UP_AFTER_MS) {
        this.pending.delete(seatId);
        this.logger.error(
          { seatId, dateId: entry.date.dateId },
          "gave up writing a seat change to the gate; attempts on it go to the database",
        );
        continue;
      }
      try {
        await this.gate.record(entry.date, entry.change);
        if (this.pending.get(seatId) === entry) this.pending.delete(seatId);
        landed = true;
      } catch {
        return; // Still unreachable; the next tick tries again.
      }
    }
    if (this.pending.size === 0) {
      if (this.timer) clearInterval(this.timer);
      this.timer = undefined;
      // Only a write that went through proves the gate is back.
      if (landed) this.noteRecovery();
    }
  }

  private noteRecovery(): void {
    if (!this.failing) return;
    this.failing = false;
    this.logger.info("seat gate reachable again; every pending write landed");
  }
}
