import { statement, type TxConnection } from "../../persistence/sql.js";

/** One event's delivery to one destination, as operators see it. */
export interface EventDelivery {
  readonly eventId: string;
  readonly destination: string;
  readonly concertId: string;
  readonly type: string;
  readonly sequence: bigint;
  readonly status: "PENDING" | "DELIVERED" | "DEAD";
  readonly attempts: number;
  readonly lastError: string | null;
  readonly occurredAt: Date;
  readonly deadLetteredAt: Date | null;
  /** The payload as JSON text. */
  readonly payloadJson: string;
}

interface DeliveryRow {
  readonly event_id: string;
  readonly destination: string;
  readonly concert_id: string;
  readonly type: string;
  readonly concert_seq: string;
  readonly status: EventDelivery["status"];
  readonly attempts: number;
  readonly last_error: string | null;
  readonly occurred_at_ms: number;
  readonly dead_lettered_at_us: string | null;
  readonly payload_json: string;
}

// `dead_lettered_at` in whole microseconds (as text), so a page token keeps it exactly.
const DELIVERY_COLUMNS = `d.event_id, d.destination, d.concert_id, e.type, d.concert_seq::text as concert_seq,
  d.status, d.attempts, d.last_error,
  (extract(epoch from e.occurred_at) * 1000)::float8 as occurred_at_ms,
  (extract(epoch from d.dead_lettered_at) * 1000000)::bigint::text as dead_lettered_at_us,
  e.payload::text as payload_json`;

// Most recently given up first; the page token is the last row's key.
const LIST_DEAD = statement<DeliveryRow>(
  "outbox_list_dead",
  `select ${DELIVERY_COLUMNS}
     from outbox_delivery d join outbox_event e on e.id = d.event_id
    where d.status = 'DEAD'
      and ($1::bigint is null
           or (d.dead_lettered_at, d.event_id, d.destination)
              < (to_timestamp($1::bigint / 1000000.0), $2::uuid, $3::text))
    order by d.dead_lettered_at desc, d.event_id desc, d.destination desc
    limit $4`,
);

const LOCK = statement<DeliveryRow>(
  "outbox_lock_delivery",
  `select ${DELIVERY_COLUMNS}
     from outbox_delivery d join outbox_event e on e.id = d.event_id
    where d.event_id = $1 and d.destination = $2
    for update of d`,
);

const FIND = statement<DeliveryRow>(
  "outbox_find_delivery",
  `select ${DELIVERY_COLUMNS}
     from outbox_delivery d join outbox_event e on e.id = d.event_id
    where d.event_id = $1 and d.destination = $2`,
);

// Back to pending, due now, with a fresh retry window; attempts and the last error are kept.
const REQUEUE = statement<never>(
  "outbox_requeue_delivery",
  `update outbox_delivery
      set status = 'PENDING', dead_lettered_at = null, next_attempt_at = $3, give_up_at = $4
    where event_id = $1 and destination = $2 and status = 'DEAD'`,
);

/** The key of a page of dead letters (see {@link DeadLetters.list}). */
export interface DeadLetterCursor {
  readonly us: string;
  readonly id: string;
  readonly dest: string;
}

/**
 * The dead letters of the outbox: deliveries given up after the retry
 * window. Statements run inside a transaction, on its connection.
 */
export const DeadLetters = {
  /** One page of dead letters after `cursor`, with each row's cursor. */
  async list(
    tx: TxConnection,
    cursor: DeadLetterCursor | undefined,
    limit: number,
  ): Promise<{ delivery: EventDelivery; cursor: DeadLetterCursor }[]> {
    const rows = await tx.all(LIST_DEAD, [
      cursor?.us ?? null,
      cursor?.id ?? null,
      cursor?.dest ?? null,
      limit,
    ]);
    return rows.map((row) => ({
      delivery: deliveryFromRow(row),
      cursor: { us: row.dead_lettered_at_us ?? "0", id: row.event_id, dest: row.destination },
    }));
  },

  /** Reads a delivery without locking it. */
  async find(tx: TxConnection, eventId: string, destination: string) {
    const row = await tx.one(FIND, [eventId, destination]);
    return row === undefined ? null : deliveryFromRow(row);
  },

  /** Locks a delivery with `FOR UPDATE` (the relay's updates of it wait, and it waits for theirs). */
  async lock(tx: TxConnection, eventId: string, destination: string) {
    const row = await tx.one(LOCK, [eventId, destination]);
    return row === undefined ? null : deliveryFromRow(row);
  },

  /** Moves a locked dead letter back to pending, due at `now`, given up again at `giveUpAt`. */
  async requeue(
    tx: TxConnection,
    eventId: string,
    destination: string,
    now: Date,
    giveUpAt: Date,
  ): Promise<void> {
    await tx.all(REQUEUE, [eventId, destination, now, giveUpAt]);
  },
};

function deliveryFromRow(row: DeliveryRow): EventDelivery {
  return {
    eventId: row.event_id,
    destination: row.destination,
    concertId: row.concert_id,
    type: row.type,
    sequence: BigInt(row.concert_seq),
    status: row.status,
    attempts: row.attempts,
    lastError: row.last_error,
    occurredAt: new Date(row.occurred_at_ms),
    deadLetteredAt:
      row.dead_lettered_at_us === null ? null : new Date(Number(row.dead_lettered_at_us) / 1000),
    payloadJson: row.payload_json,
  };
}
