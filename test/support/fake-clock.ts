import type { Clock } from "../../server/src/shared/clock.js";

/** A clock that only moves when a test moves it. */
export class FakeClock implements Clock {
  private current: number;

  constructor(start: Date | number = Date.UTC(2030, 0, 1, 12, 0, 0)) {
    this.current = typeof start === "number" ? start : start.getTime();
  }

  now(): Date {
    return new Date(this.current);
  }

  /** The current time in ms since the epoch. */
  ms(): number {
    return this.current;
  }

  advance(ms: number): void {
    this.current += ms;
  }

  set(time: Date | number): void {
    this.current = typeof time === "number" ? time : time.getTime();
  }
}
