import { statement, type TxConnection } from "../../persistence/sql.js";
import { newId } from "../../shared/ids.js";

/**
 * The kinds of event the box office publishes. Each is written to the outbox
 * in the same transaction as the change it describes.
 */
export type OutboxEventType =
  | "seat.held"
  | "seat.released"
  | "hold.expired"
  | "ticket.sold"
  | "ticket.refunded"
  | (string & { readonly outboxEventType?: never });

/** A JSON value of an event's payload (money as decimal strings: JSON has no bigint). */
export type OutboxJson =
  | string
  | number
  | boolean
  | null
  | readonly OutboxJson[]
  | { readonly [key: string]: OutboxJson };

/** One event, as a writer appends it. */
export interface OutboxEvent {
  /** The stable event id receivers deduplicate by; a new UUID when left out. */
  readonly id?: string;
  /** The concert the event belongs to: events are ordered per concert. */
  readonly concertId: string;
  /** Lower-case dotted, e.g. `sale.paused`. */
  readonly type: OutboxEventType;
  readonly payload: { readonly [key: string]: OutboxJson };
  readonly occurredAt: Date;
}

/**
 * The data-modifying CTE (`<name> as (insert ...)`) that appends outbox rows
 * from `select`, whose columns are, in order: id, concert_id, type, payload
 * (jsonb), occurred_at. The hot paths fold it into the one statement that
 * already writes their change, so the event costs no round trip of its own
 * and commits or rolls back with the change. PostgreSQL runs a
 * data-modifying CTE to completion even when nothing reads its output.
 * `position` is drawn here, under the change's row locks (see the
 * migration that created the table for why that gives commit order).
 */
export function outboxAppendCte(name: string, select: string): string {
  return `${name} as (
     insert into outbox_event (id, concert_id, type, payload, occurred_at)
     ${select}
   )`;
}

/**
 * The two parameters a hot-path statement passes for its event: a new event
 * id and the payload as JSON text (cast to `jsonb` in the statement, which
 * supplies the concert, the type and the time itself).
 */
export function eventIdAndPayload(payload: OutboxEvent["payload"]): [string, string] {
  return [newId(), JSON.stringify(payload)];
}

const APPEND = statement<never>(
  "outbox_append",
  `insert into outbox_event (id, concert_id, type, payload, occurred_at)
   values ($1, $2, $3, $4::jsonb, $5)`,
);

/**
 * The outbox's port for code off the hot path (sale control: a sale paused,
 * resumed or opened; anything else that changes a sale): inside the change's
 * own transaction, `await OutboxWriter.append(await TxConnection.of(em), event)`
 * (one round trip), and the event commits or rolls back with the change. The
 * relay publishes it, in order with the concert's other events, to NATS and
 * every webhook. Hot paths fold {@link outboxAppendCte} into their one write
 * statement instead.
 */
export const OutboxWriter = {
  async append(tx: TxConnection, event: OutboxEvent): Promise<string> {
    const id = event.id ?? newId();
    await tx.all(APPEND, [
      id,
      event.concertId,
      event.type,
      JSON.stringify(event.payload),
      event.occurredAt,
    ]);
    return id;
  },
};
