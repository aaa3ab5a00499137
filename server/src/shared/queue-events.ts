/**
 * What the waiting room tells the outside world of its admissions (the
 * metrics implement it; the domain never imports them). Told by the
 * instance that drained the admission from its line, so each admission is
 * told once over all instances.
 */
export interface QueueEvents {
  /**
   * A user was admitted to a concert's line after waiting `waitMs`;
   * `outOfOrder` when someone who joined the line later was admitted before
   * them (see `outOfOrder` in modules/queue/admission-meter.ts).
   */
  admitted(concertId: string, waitMs: number, outOfOrder: boolean): void;
}

/** Tells nobody: when no metrics are served. */
export const IGNORED_QUEUE_EVENTS: QueueEvents = {
  admitted() {},
};
