import type { QueueEvents } from "../../shared/queue-events.js";
import type { Admission, AdmissionBatch } from "./queue-store.js";

/** The window the admission rate is measured over. */
export const ADMISSION_RATE_WINDOW_MS = 60_000;

/** How far apart the samples of a line's admission total are kept. */
const SAMPLE_EVERY_MS = 1_000;

/** A line not drained for this long is forgotten (its sale ended, or it moved away). */
const FORGET_AFTER_MS = 5 * 60_000;

/**
 * Whether an admission broke arrival order: someone who joined the line
 * later had already been admitted. Compared against the line's own order
 * (arrival numbers as the line ranks its waiters), not against when tokens
 * were issued, so any order the line itself was built in (such as an
 * opening draw that numbers its entrants in drawn order) is not counted.
 */
export function outOfOrder(admission: Admission): boolean {
  return admission.arrival < admission.highestBefore;
}

interface Sample {
  readonly at: number;
  readonly total: number;
}

interface LineSamples {
  /** One sample per SAMPLE_EVERY_MS at most, oldest first, back to the window's start. */
  readonly ring: Sample[];
  latest: Sample;
}

/**
 * Turns the admissions the admitter drains from each line into events (one
 * per admission: its wait and whether it kept arrival order) and into each
 * line's admission rate. The rate is read from the line's own total, which
 * every instance sees whole, so it is the same on every instance however
 * the drained admissions were shared among them. Memory is bounded: about
 * one sample per second of the window per live line.
 */
export class AdmissionMeter {
  private readonly lines = new Map<string, LineSamples>();

  constructor(private readonly events: QueueEvents) {}

  /** Reports a drained batch of a concert's line, read at `now`. */
  record(concertId: string, batch: AdmissionBatch, now: number): void {
    for (const admission of batch.admissions) {
      const waitMs = Math.max(0, admission.admittedAt - admission.joinedAt);
      this.events.admitted(concertId, waitMs, outOfOrder(admission));
    }
    this.sample(concertId, { at: now, total: batch.total }, now);
  }

  /**
   * Admissions per minute of a concert's line over the last minute (over
   * what has been seen of it, when that is shorter); 0 when its admissions
   * have not been read for a whole window.
   */
  perMinute(concertId: string, now: number): number {
    const line = this.lines.get(concertId);
    if (line === undefined || line.latest.at < now - ADMISSION_RATE_WINDOW_MS) return 0;
    const base = line.ring[0] ?? line.latest;
    const elapsed = line.latest.at - base.at;
    if (elapsed < SAMPLE_EVERY_MS) return 0;
    return ((line.latest.total - base.total) * 60_000) / elapsed;
  }

  private sample(concertId: string, sample: Sample, now: number): void {
    let line = this.lines.get(concertId);
    // A total that went down means the line's store lost its counters: start over.
    if (line === undefined || sample.total < line.latest.total) {
      line = { ring: [sample], latest: sample };
      this.lines.set(concertId, line);
      this.forgetIdle(now);
      return;
    }
    line.latest = sample;
    const last = line.ring[line.ring.length - 1];
    if (last === undefined || sample.at - last.at >= SAMPLE_EVERY_MS) line.ring.push(sample);
    // Keep the newest sample at or before the window's start as the base.
    const start = now - ADMISSION_RATE_WINDOW_MS;
    while (line.ring.length > 1 && (line.ring[1] as Sample).at <= start) line.ring.shift();
  }

  private forgetIdle(now: number): void {
    for (const [concertId, line] of this.lines) {
      if (line.latest.at < now - FORGET_AFTER_MS) this.lines.delete(concertId);
    }
  }
}
