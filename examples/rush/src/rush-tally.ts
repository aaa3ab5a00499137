/** How one fan's rush ended. */
export type FanEnd = "sold" | "sold-out" | "gave-up" | "error";

/**
 * The running counts of a rush, shared by every fan, and the progress lines
 * they produce: one when the whole crowd has joined the line, then one each
 * time another tenth of the fans is done. Counting in one place keeps the
 * summary and the progress lines consistent.
 */
export class RushTally {
  joined = 0;
  /** Fans in line right now (joined, not admitted yet). */
  waiting = 0;
  admitted = 0;
  sold = 0;
  soldOut = 0;
  gaveUp = 0;
  /** Hold attempts refused with SEAT_UNAVAILABLE: two fans wanted the same seat. */
  collisions = 0;
  /** The largest place in line any fan was told. */
  maxPosition = 0;
  readonly errors = new Map<string, number>();
  private admittedAtOnce = 0;
  private done = 0;
  private readonly startedAt = performance.now();

  constructor(
    readonly fans: number,
    private readonly print: (line: string) => void = console.log,
  ) {}

  /** Seconds since the rush started, as `[  1.2s]`. */
  stamp(): string {
    return `[${((performance.now() - this.startedAt) / 1000).toFixed(1).padStart(5)}s]`;
  }

  /** A fan got a token: admitted at once (position 0) or waiting at `position`. */
  joinedLine(position: number): void {
    this.joined += 1;
    if (position > 0) this.waiting += 1;
    else {
      this.admittedAtOnce += 1;
      this.admitted += 1;
    }
    this.sawPosition(position);
    if (this.joined === this.fans) {
      this.print(
        `${this.stamp()} all ${this.fans} fans joined the line: ${this.admittedAtOnce} admitted at once, ${this.waiting} waiting (last in line: position ${this.maxPosition})`,
      );
    }
  }

  /** A waiting fan heard its place in line. */
  sawPosition(position: number): void {
    if (position > this.maxPosition) this.maxPosition = position;
  }

  /** A fan who had to wait got in. */
  admittedFromLine(): void {
    this.waiting -= 1;
    this.admitted += 1;
  }

  /** A waiting fan dropped out of the line (an error while waiting). */
  leftLine(): void {
    this.waiting -= 1;
  }

  /** A hold lost to another fan who took the seat first. */
  collided(): void {
    this.collisions += 1;
  }

  /** A fan is done; `reason` says why it failed when `end` is "error". */
  finished(end: FanEnd, reason?: string): void {
    if (end === "sold") this.sold += 1;
    else if (end === "sold-out") this.soldOut += 1;
    else if (end === "gave-up") this.gaveUp += 1;
    else {
      const key = reason ?? "unknown";
      this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
    }
    this.done += 1;
    const step = Math.max(1, Math.ceil(this.fans / 10));
    if (this.done % step === 0 || this.done === this.fans) this.printProgress();
  }

  /** Errors in all, over every reason. */
  errorCount(): number {
    let total = 0;
    for (const count of this.errors.values()) total += count;
    return total;
  }

  /** `SEAT_UNAVAILABLE 2, unavailable 1`, or `none`. */
  errorsByReason(): string {
    const parts = [...this.errors.entries()]
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([reason, count]) => `${reason} ${count}`);
    return parts.length > 0 ? parts.join(", ") : "none";
  }

  private printProgress(): void {
    this.print(
      `${this.stamp()} ${this.done}/${this.fans} fans done: ${this.admitted} admitted, ${this.waiting} waiting, ${this.sold} sold, ${this.soldOut} sold out, ${this.errorCount()} errors`,
    );
  }
}
