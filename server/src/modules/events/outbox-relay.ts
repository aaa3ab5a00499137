import type pg from "pg";
import type { Logger } from "../../logger.js";
import { type Database, transaction } from "../../persistence/database.js";
import { type Statement, statement, TxConnection } from "../../persistence/sql.js";
import type { Clock } from "../../shared/clock.js";
import { DeliveryFailed, type EventDestination, type PublishedEvent } from "./destinations.js";

/** How the relay paces itself (see `EventsConfig` for the operator's settings). */
export interface RelaySettings {
  /** How long a failing delivery is retried before it is dead-lettered. */
  readonly retryMs: number;
  readonly retryBaseDelayMs: number;
  readonly retryMaxDelayMs: number;
  /** Delivered events older than this are pruned. */
  readonly retentionMs: number;
  /** Events stamped per statement (and per lane per pass). */
  readonly batchSize?: number;
  /** Concert lanes delivered at once, per destination. */
  readonly lanes?: number;
  /** Returns a number in [0, 1) for the retry jitter; tests pass their own. */
  readonly random?: () => number;
}

/** What one pass of the relay did. */
export interface RelayPass {
  /** False when another relay holds the lock (this one did nothing). */
  readonly leader: boolean;
  readonly stamped: number;
  readonly delivered: number;
  readonly failed: number;
  readonly deadLettered: number;
  readonly pruned: number;
}

/** The advisory lock key of the one relay at a time ("stagedoor outbox"). */
export const RELAY_LOCK_KEY = 7_342_101;

// Stamps the next batch of events (visible, so committed) with their
// concert's next numbers, in position order (see the migration of the
// outbox for why that is commit order), and opens one PENDING delivery per
// configured destination ($4). One statement, run by the one relay at a time.
const STAMP = statement<{ stamped: number }>(
  "outbox_stamp",
  `with fresh as (
     select id, concert_id, position from outbox_event
      where concert_seq is null
      order by position
      limit $1
      for update
   ), numbered as (
     select f.id, f.concert_id,
            coalesce(c.last_seq, 0)
              + row_number() over (partition by f.concert_id order by f.position) as seq
       from fresh f left join outbox_concert c on c.concert_id = f.concert_id
   ), bumped as (
     insert into outbox_concert (concert_id, last_seq)
     select concert_id, max(seq) from numbered group by concert_id
     on conflict (concert_id) do update set last_seq = excluded.last_seq
   ), stamped as (
     update outbox_event e set concert_seq = n.seq, sequenced_at = $2
       from numbered n
      where e.id = n.id
     returning e.id, e.concert_id, e.concert_seq
   ), opened as (
     insert into outbox_delivery (event_id, destination, concert_id, concert_seq, status,
                                  next_attempt_at, give_up_at)
     select s.id, d.destination, s.concert_id, s.concert_seq, 'PENDING', $2, $3
       from stamped s cross join unnest($4::text[]) as d(destination)
   )
   select count(*)::int as stamped from stamped`,
);

// The concerts whose oldest pending delivery to a destination is due: one
// lane each, delivered in order. A lane whose head waits for a retry waits
// whole (nothing overtakes it); other lanes go on.
const DUE_LANES = statement<{ concert_id: string }>(
  "outbox_due_lanes",
  `select concert_id from (
     select distinct on (concert_id) concert_id, next_attempt_at
       from outbox_delivery
      where destination = $1 and status = 'PENDING'
      order by concert_id, concert_seq
   ) head
   where head.next_attempt_at <= $2
   order by head.next_attempt_at
   limit $3`,
);

/** A pending delivery with its event, as {@link LANE} selects it. */
interface LaneRow {
  readonly event_id: string;
  readonly concert_id: string;
  readonly concert_seq: string;
  readonly attempts: number;
  readonly give_up_at_ms: number;
  readonly type: string;
  readonly payload: unknown;
  readonly occurred_at: string;
}

const LANE = statement<LaneRow>(
  "outbox_lane",
  `select d.event_id, d.concert_id, d.concert_seq, d.attempts,
          (extract(epoch from d.give_up_at) * 1000)::float8 as give_up_at_ms,
          e.type, e.payload,
          to_char(e.occurred_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') as occurred_at
     from outbox_delivery d join outbox_event e on e.id = d.event_id
    where d.destination = $1 and d.concert_id = $2 and d.status = 'PENDING'
    order by d.concert_seq
    limit $3`,
);

const MARK_DELIVERED = statement<never>(
  "outbox_mark_delivered",
  `update outbox_delivery
      set status = 'DELIVERED', attempts = attempts + 1, delivered_at = $3, last_error = null
    where destination = $1 and event_id = any($2::uuid[]) and status = 'PENDING'`,
);

// A failed attempt: retried at $4, or dead-lettered once its time to give up has come.
const MARK_FAILED = statement<{ status: string }>(
  "outbox_mark_failed",
  `update outbox_delivery
      set attempts = attempts + 1, last_error = $5,
          status = case when give_up_at <= $3 then 'DEAD' else 'PENDING' end,
          dead_lettered_at = case when give_up_at <= $3 then $3 end,
          next_attempt_at = $4
    where destination = $1 and event_id = $2 and status = 'PENDING'
   returning status`,
);

// Delivered (or never addressed) events past the retention window, a batch
// at a time; their deliveries go with them. Dead letters stay until an
// operator redelivers them and they are delivered.
const PRUNE = statement<{ id: string }>(
  "outbox_prune",
  `delete from outbox_event where id in (
     select e.id from outbox_event e
      where e.concert_seq is not null and e.sequenced_at < $1
        and not exists (select 1 from outbox_delivery d
                         where d.event_id = e.id and d.status <> 'DELIVERED')
      limit $2
   )
   returning id`,
);

/**
 * Publishes the outbox: at least once, to every destination, in commit order
 * per concert, one relay at a time across all instances.
 *
 * Each pass: take the relay lock, stamp newly committed events
 * with their concert's sequence numbers and open their deliveries, then, for
 * every destination at once, deliver each due concert lane in order (a lane
 * stops at its first failure, which is retried with exponential backoff and
 * jitter; destinations and lanes never wait for each other), then prune.
 *
 * The lock is a session advisory lock, taken for each pass on a connection
 * kept out of the pool until the pass ends: passes of different instances
 * never overlap (a pass that finds the lock taken does nothing), and a relay
 * that crashes mid-pass loses the lock with its connection, so the next pass
 * of any instance carries on from the database's state (the connection of a
 * relay that hangs without dying keeps the lock until PostgreSQL notices).
 * An event published but not yet marked when a relay dies is published
 * again by the next one: receivers deduplicate by event id (JetStream does it itself
 * within its duplicate window, from `Nats-Msg-Id`).
 */
export class OutboxRelay {
  private lockConnection: pg.ClientBase | undefined;
  private readonly batchSize: number;
  private readonly lanes: number;
  private readonly random: () => number;

  constructor(
    private readonly db: Database,
    private readonly destinations: readonly EventDestination[],
    private readonly clock: Clock,
    private readonly settings: RelaySettings,
    private readonly logger: Logger,
  ) {
    this.batchSize = settings.batchSize ?? 200;
    this.lanes = settings.lanes ?? 16;
    this.random = settings.random ?? Math.random;
  }

  /** One pass (see the class comment); an interval job calls it. */
  async runOnce(): Promise<RelayPass> {
    if (!(await this.lead())) {
      return { leader: false, stamped: 0, delivered: 0, failed: 0, deadLettered: 0, pruned: 0 };
    }
    try {
      const stamped = await this.stampAll();
      const totals = { delivered: 0, failed: 0, deadLettered: 0 };
      await Promise.all(
        this.destinations.map(async (destination) => {
          const done = await this.deliverTo(destination);
          totals.delivered += done.delivered;
          totals.failed += done.failed;
          totals.deadLettered += done.deadLettered;
        }),
      );
      const pruned = await this.prune();
      return { leader: true, stamped, ...totals, pruned };
    } finally {
      await this.unlock();
    }
  }

  /** Closes the destinations (on shutdown, once the job has stopped). */
  async close(): Promise<void> {
    await Promise.all(this.destinations.map((destination) => destination.close()));
  }

  /** Stamps everything committed so far, a batch per statement. */
  private async stampAll(): Promise<number> {
    const keys = this.destinations.map((destination) => destination.key);
    let total = 0;
    for (;;) {
      const now = this.clock.now();
      const giveUpAt = new Date(now.getTime() + this.settings.retryMs);
      const stamped = await transaction(this.db, async (em) => {
        const row = await (await TxConnection.of(em)).one(STAMP, [
          this.batchSize,
          now,
          giveUpAt,
          keys,
        ]);
        return row?.stamped ?? 0;
      });
      total += stamped;
      if (stamped < this.batchSize) return total;
    }
  }

  /** Delivers every due lane of one destination. */
  private async deliverTo(
    destination: EventDestination,
  ): Promise<{ delivered: number; failed: number; deadLettered: number }> {
    const lanes = await this.run(DUE_LANES, [destination.key, this.clock.now(), this.lanes]);
    const results = await Promise.all(
      lanes.map((lane) => this.deliverLane(destination, lane.concert_id)),
    );
    return {
      delivered: results.reduce((sum, r) => sum + r.delivered, 0),
      failed: results.reduce((sum, r) => sum + r.failed, 0),
      deadLettered: results.reduce((sum, r) => sum + r.deadLettered, 0),
    };
  }

  /**
   * Delivers one concert's pending events to one destination in order, until
   * the batch ends or an attempt fails. A failure past its time to give up
   * is dead-lettered and the lane goes on; any other failure ends the lane
   * until its retry is due.
   */
  private async deliverLane(
    destination: EventDestination,
    concertId: string,
  ): Promise<{ delivered: number; failed: number; deadLettered: number }> {
    const rows = await this.run(LANE, [destination.key, concertId, this.batchSize]);
    const delivered: string[] = [];
    let failed = 0;
    let deadLettered = 0;
    try {
      for (const row of rows) {
        try {
          await destination.deliver(publishedEvent(row));
          delivered.push(row.event_id);
        } catch (error) {
          failed += 1;
          const dead = await this.recordFailure(destination, row, error);
          if (!dead) break;
          deadLettered += 1;
        }
      }
    } finally {
      if (delivered.length > 0) {
        await this.run(MARK_DELIVERED, [destination.key, delivered, this.clock.now()]);
      }
    }
    return { delivered: delivered.length, failed, deadLettered };
  }

  /** Records a failed attempt; true when it dead-lettered the delivery. */
  private async recordFailure(
    destination: EventDestination,
    row: LaneRow,
    error: unknown,
  ): Promise<boolean> {
    const now = this.clock.now();
    const message =
      error instanceof DeliveryFailed ? error.message : "delivery failed unexpectedly";
    if (!(error instanceof DeliveryFailed)) {
      this.logger.warn({ err: error, destination: destination.key }, "event delivery failed");
    }
    const next = new Date(now.getTime() + this.backoffMs(row.attempts + 1));
    const [marked] = await this.run(MARK_FAILED, [
      destination.key,
      row.event_id,
      now,
      next,
      message.slice(0, 500),
    ]);
    const dead = marked?.status === "DEAD";
    if (dead) {
      this.logger.warn(
        { destination: destination.key, eventId: row.event_id, attempts: row.attempts + 1 },
        "event delivery dead-lettered",
      );
    }
    return dead;
  }

  /**
   * The delay before retry number `attempt` (1 for the first retry): the base
   * doubled per attempt, capped, then a random half of it taken off (jitter,
   * so receivers coming back are not hit by every lane at once).
   */
  backoffMs(attempt: number): number {
    const { retryBaseDelayMs, retryMaxDelayMs } = this.settings;
    const full = Math.min(retryMaxDelayMs, retryBaseDelayMs * 2 ** Math.min(attempt - 1, 40));
    return Math.round(full * (1 - this.random() / 2));
  }

  /** Prunes delivered events past the retention window, a batch at a time. */
  private async prune(): Promise<number> {
    const cutoff = new Date(this.clock.now().getTime() - this.settings.retentionMs);
    let total = 0;
    for (;;) {
      const deleted = await this.run(PRUNE, [cutoff, 1000]);
      total += deleted.length;
      if (deleted.length < 1000) return total;
    }
  }

  /** Runs one statement in a short transaction of its own. */
  private run<Row>(sql: Statement<Row>, values: readonly unknown[]): Promise<Row[]> {
    return transaction(this.db, async (em) => (await TxConnection.of(em)).all(sql, values));
  }

  /**
   * Takes the relay lock for one pass (one round trip), on a connection taken
   * out of the pool until {@link unlock}; false when another relay has it.
   */
  private async lead(): Promise<boolean> {
    const client = knexClient(this.db);
    const connection = (await client.acquireConnection()) as pg.ClientBase;
    try {
      const result = await connection.query<{ locked: boolean }>(
        "select pg_try_advisory_lock($1) as locked",
        [RELAY_LOCK_KEY],
      );
      if (result.rows[0]?.locked === true) {
        this.lockConnection = connection;
        return true;
      }
    } catch (error) {
      client.releaseConnection(connection);
      throw error;
    }
    client.releaseConnection(connection);
    return false;
  }

  /** Gives the lock and its connection back (a broken connection has lost the lock already). */
  private async unlock(): Promise<void> {
    const connection = this.lockConnection;
    if (connection === undefined) return;
    this.lockConnection = undefined;
    await connection.query("select pg_advisory_unlock($1)", [RELAY_LOCK_KEY]).catch(() => {});
    knexClient(this.db).releaseConnection(connection);
  }
}

/** The knex client of the pool behind the database (for a connection held outside a transaction). */
function knexClient(db: Database): {
  acquireConnection(): Promise<unknown>;
  releaseConnection(connection: unknown): void;
} {
  return db.fork().getConnection().getKnex().client;
}

/** The event of a lane row, as destinations receive it. */
function publishedEvent(row: LaneRow): PublishedEvent {
  return {
    id: row.event_id,
    type: row.type,
    concert_id: row.concert_id,
    sequence: Number(row.concert_seq),
    occurred_at: row.occurred_at,
    data: row.payload,
  };
}
