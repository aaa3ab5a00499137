/**
 * Request ids for the fan's logical actions ("pay for reservation r", "top up
 * ₩50,000"): one id per action, generated the first time and reused every
 * time the fan (or the app) tries that action again, until it is known to
 * have succeeded. A retry after a timeout therefore returns the first result
 * instead of charging or topping up twice; a deliberate second top-up after a
 * success gets a new id.
 *
 * @example
 * ```ts
 * const requestId = actions.idFor(`pay:${reservation.id}`);
 * await client.payment.createPayment({ reservationId, amount, requestId });
 * actions.done(`pay:${reservation.id}`);
 * ```
 */
export class ActionIds {
  private readonly pending = new Map<string, string>();

  /** The request id of an action: the same one until {@link done} is called for it. */
  idFor(action: string): string {
    let id = this.pending.get(action);
    if (id === undefined) {
      id = newRequestId();
      this.pending.set(action, id);
    }
    return id;
  }

  /** The action succeeded (or was refused for good): the next attempt is a new action. */
  done(action: string): void {
    this.pending.delete(action);
  }

  /** Forgets every pending action, e.g. when the fan starts over. */
  clear(): void {
    this.pending.clear();
  }
}

/**
 * A random v4 UUID. `crypto.randomUUID` exists only in secure contexts
 * (https or localhost); a box office opened over plain http on a LAN address
 * falls back to `getRandomValues`, which works everywhere.
 */
function newRequestId(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = ((bytes[6] ?? 0) & 0x0f) | 0x40;
  bytes[8] = ((bytes[8] ?? 0) & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
