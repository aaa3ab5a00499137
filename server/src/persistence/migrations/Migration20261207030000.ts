import { Migration } from "@mikro-orm/migrations";

/**
 * Events out, as durable as the sale: a transactional outbox and its
 * per-destination delivery state.
 *
 * - `outbox_event` rows are written by the same statement (so the same
 *   transaction) as the change they describe; `id` is the stable event id
 *   receivers deduplicate by.
 * - COMMIT order, not insert order. `position` comes from a sequence, but is
 *   drawn in the change's last statement, while the transaction already holds
 *   the row locks of everything it changes (seat, reservation, wallet): of two
 *   transactions that touch a common row, the second can only draw its
 *   position after the first has committed, so position order is commit order
 *   for every pair of changes that could be observed in either order. The
 *   relay stamps `concert_seq` (1, 2, 3... per concert, gapless) on rows as
 *   they become visible to it, by position within one pass: a row that
 *   commits late with a small position is stamped after the rows already
 *   stamped, which is where it belongs (it committed later, and by the rule
 *   above it shares no row with them). No per-concert lock on the hot path
 *   (that would serialise every hold of a concert until its COMMIT), and no
 *   reliance on xid order (xids are taken at a transaction's first write,
 *   not at its commit).
 * - `outbox_concert` keeps each concert's last stamped number, so pruning
 *   old events never restarts a concert's numbering.
 * - `outbox_delivery`: one row per event and destination (`nats` or
 *   `webhook:<url>`), created when the event is stamped: PENDING until
 *   delivered, retried with backoff until `give_up_at`, then DEAD (dead
 *   letter, listed and redeliverable by operators).
 */
export class Migration20261207030000 extends Migration {
  override async up(): Promise<void> {
    this.addSql(`
      create sequence outbox_event_position_seq;
      create table outbox_event (
        id uuid primary key,
        position bigint not null default nextval('outbox_event_position_seq'),
        concert_id uuid not null,
        type text not null check (type ~ '^[a-z]+(\\.[a-z_]+)+$' and length(type) <= 64),
        payload jsonb not null,
        occurred_at timestamptz not null,
        concert_seq bigint check (concert_seq > 0),
        sequenced_at timestamptz
      );
      alter sequence outbox_event_position_seq owned by outbox_event.position;
      create index outbox_event_unsequenced_idx on outbox_event (position) where concert_seq is null;
      create unique index outbox_event_concert_seq_idx on outbox_event (concert_id, concert_seq)
        where concert_seq is not null;
      create index outbox_event_sequenced_at_idx on outbox_event (sequenced_at)
        where concert_seq is not null;

      create table outbox_concert (
        concert_id uuid primary key,
        last_seq bigint not null check (last_seq > 0)
      );

      create table outbox_delivery (
        event_id uuid not null references outbox_event (id) on delete cascade,
        destination text not null check (length(destination) between 1 and 2100),
        concert_id uuid not null,
        concert_seq bigint not null,
        status text not null check (status in ('PENDING', 'DELIVERED', 'DEAD')),
        attempts integer not null default 0 check (attempts >= 0),
        next_attempt_at timestamptz not null,
        give_up_at timestamptz not null,
        last_error text check (length(last_error) <= 500),
        delivered_at timestamptz,
        dead_lettered_at timestamptz,
        primary key (event_id, destination)
      );
      -- Each destination's pending deliveries, lane by lane (one lane per concert), in order.
      create index outbox_delivery_lane_idx on outbox_delivery (destination, concert_id, concert_seq)
        where status = 'PENDING';
      create index outbox_delivery_dead_idx on outbox_delivery (dead_lettered_at desc, event_id, destination)
        where status = 'DEAD';
    `);
  }

  override async down(): Promise<void> {
    this.addSql(`
      drop table outbox_delivery;
      drop table outbox_concert;
      drop table outbox_event;
    `);
  }
}
