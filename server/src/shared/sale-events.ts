/** How a hold attempt ended, as counted: a new hold, a repeat of one, or the seat refused. */
export type HoldOutcome = "held" | "repeated" | "refused";

/**
 * What the domain tells the outside world of the sale once it is committed
 * (the metrics implement it; the domain never imports them). Each is told
 * after the commit, so a rolled-back change is never counted.
 */
export interface SaleEvents {
  /** A hold attempt ended so. */
  hold(outcome: HoldOutcome): void;
  /** A ticket was paid for (amount in minor units). */
  sold(amount: bigint): void;
  /** An operator refunded a ticket (amount in minor units). */
  refunded(amount: bigint): void;
}

/** Tells nobody: when no metrics are served. */
export const IGNORED_SALE_EVENTS: SaleEvents = {
  hold() {},
  sold() {},
  refunded() {},
};
