import type { RedisClient } from "../../redis/redis-client.js";
import { type DeadlineOptions, SharedCommandDeadline } from "../../redis/shared-deadline.js";
import { type CallLimit, type LimitRefusal, rateLimited } from "../ratelimit/index.js";
import { newDrawSeed } from "./opening-draw.js";
import type {
  AdmissionBatch,
  IssueInput,
  IssueResult,
  LineCounts,
  LineDigest,
  LineSettings,
  LookupWithSeat,
  OpeningDrawRecord,
  QueueLimits,
  QueueSnapshot,
  QueueStore,
  SeatRef,
} from "./queue-store.js";
import { admittedKey, leaseKey, registryKey, versionKey, waitingKey } from "./redis-keys.js";
import type {
  IssueReply,
  LookupPeekReply,
  LookupReply,
  QueueScriptContext,
  queueScripts,
} from "./redis-queue-scripts.js";
import { RedisSeatGate, type SeatGateRedis } from "./redis-seat-gate.js";

/** A connection to one Redis primary with the waiting room's scripts. */
export type QueueRedisClient = RedisClient<typeof queueScripts>;

/**
 * What the store needs of a Redis connection that has the waiting room's
 * scripts (`queueScripts`) registered: a client of one primary
 * (`createClient`) or of a Redis Cluster (`createCluster`) both fit. Every
 * call names keys of one slot, so the cluster client routes it by its first
 * key and never needs a cross-slot command.
 */
export interface QueueRedis extends SeatGateRedis {
  withCommandOptions(options: DeadlineOptions): QueueRedis;
  queueIssue(context: QueueScriptContext, input: IssueInput, drawSeed: string): Promise<IssueReply>;
  queueLookup(
    context: QueueScriptContext,
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
    limit?: CallLimit,
  ): Promise<LookupReply>;
  queueLookupPeek(
    context: QueueScriptContext,
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
    seat: SeatRef,
    limit?: CallLimit,
  ): Promise<LookupPeekReply>;
  queueSnapshots(
    context: QueueScriptContext,
    concertId: string,
    tokenIds: readonly string[],
    now: number,
    touch: boolean,
  ): Promise<(QueueSnapshot | null)[]>;
  queueLeave(
    context: QueueScriptContext,
    concertId: string,
    tokenId: string,
    now: number,
  ): Promise<boolean>;
  queueComplete(
    context: QueueScriptContext,
    concertId: string,
    tokenId: string,
    now: number,
  ): Promise<boolean>;
  queuePromote(
    context: QueueScriptContext,
    concertId: string,
    now: number,
    drawSeed: string,
  ): Promise<number>;
  queueConfigure(
    context: QueueScriptContext,
    concertId: string,
    settings: LineSettings,
  ): Promise<boolean>;
  queueOpeningDraw(
    context: QueueScriptContext,
    concertId: string,
  ): Promise<OpeningDrawRecord | null>;
  queueRetire(context: QueueScriptContext, concertId: string, now: number): Promise<boolean>;
  queueLineDigest(
    context: QueueScriptContext,
    concertId: string,
    after: number,
  ): Promise<LineDigest>;
  queueTouchMany(
    context: QueueScriptContext,
    concertId: string,
    tokenIds: readonly string[],
    now: number,
  ): Promise<number>;
  queueTakeLimit(
    context: QueueScriptContext,
    scope: string,
    limit: CallLimit,
    userId: string,
    now: number,
  ): Promise<LimitRefusal | undefined>;
  queueDrainAdmissions(context: QueueScriptContext, concertId: string): Promise<AdmissionBatch>;
  zCard(key: string): Promise<number>;
  zCount(key: string, min: string, max: string): Promise<number>;
  sMembers(key: string): Promise<string[]>;
  sAdd(key: string, member: string): Promise<number>;
  sRem(key: string, member: string): Promise<number>;
  exists(key: string): Promise<number>;
  get(key: string): Promise<string | null>;
}

/** Tokens per `snapshots` or `touchMany` script call, so no single call holds Redis for long. */
const SNAPSHOT_CHUNK = 1000;

/**
 * The production queue store: the line lives in Redis and every operation is
 * one Lua script (see redis-keys.ts for the key layout), so any number of
 * server instances share one line and the admitted count never exceeds
 * `maxActive`. Runs on one Redis primary or on Redis Cluster (each concert's
 * line, and its seat gate, in one slot), Redis 6.2 or newer, with a client
 * without `keyPrefix`; the prefix is given here.
 *
 * The client is shared and owned by the caller: `close()` leaves it open.
 */
export class RedisQueueStore implements QueueStore {
  private readonly deadline: SharedCommandDeadline<QueueRedis>;
  private readonly context: QueueScriptContext;
  readonly seats: RedisSeatGate;

  constructor(client: QueueRedis, limits: QueueLimits, keyPrefix: string) {
    this.deadline = new SharedCommandDeadline(client);
    this.context = { prefix: keyPrefix, limits };
    this.seats = new RedisSeatGate(client, keyPrefix);
  }

  /** The client, with every command bounded in time (see {@link SharedCommandDeadline}). */
  private get client(): QueueRedis {
    return this.deadline.commands();
  }

  async issue(input: IssueInput): Promise<IssueResult> {
    // A fresh seed rides along (64 bytes, no round trip more) in case the
    // opening draw is due: the first script at or after the opening draws.
    const reply = await this.client.queueIssue(this.context, input, newDrawSeed());
    if (reply.refused !== undefined) {
      throw rateLimited((input.limit as CallLimit).action, reply.refused);
    }
    // Once per registration lease: the registry lives in another slot.
    if (reply.opened) await this.client.sAdd(registryKey(this.context.prefix), input.concertId);
    return { created: reply.created, snapshot: reply.snapshot };
  }

  async lookup(
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
    limit?: CallLimit,
  ): Promise<QueueSnapshot | null> {
    const reply = await this.client.queueLookup(
      this.context,
      concertId,
      tokenHash,
      now,
      touch,
      limit,
    );
    if (reply.refused !== undefined) throw rateLimited((limit as CallLimit).action, reply.refused);
    return reply.snapshot;
  }

  async takeLimit(scope: string, limit: CallLimit, userId: string, now: number): Promise<void> {
    const refused = await this.client.queueTakeLimit(this.context, scope, limit, userId, now);
    if (refused !== undefined) throw rateLimited(limit.action, refused);
  }

  async lookupWithSeat(
    concertId: string,
    tokenHash: string,
    now: number,
    touch: boolean,
    seat: SeatRef,
    limit?: CallLimit,
  ): Promise<LookupWithSeat> {
    const reply = await this.client.queueLookupPeek(
      this.context,
      concertId,
      tokenHash,
      now,
      touch,
      seat,
      limit,
    );
    if (reply.refused !== undefined) throw rateLimited((limit as CallLimit).action, reply.refused);
    return { snapshot: reply.snapshot, seat: reply.seat };
  }

  async snapshots(
    concertId: string,
    tokenIds: readonly string[],
    now: number,
    touch: boolean,
  ): Promise<Map<string, QueueSnapshot | null>> {
    const chunks: string[][] = [];
    for (let i = 0; i < tokenIds.length; i += SNAPSHOT_CHUNK) {
      chunks.push(tokenIds.slice(i, i + SNAPSHOT_CHUNK));
    }
    const replies = await Promise.all(
      chunks.map((chunk) => this.client.queueSnapshots(this.context, concertId, chunk, now, touch)),
    );
    const result = new Map<string, QueueSnapshot | null>();
    chunks.forEach((chunk, c) => {
      chunk.forEach((tokenId, i) => {
        result.set(tokenId, replies[c]?.[i] ?? null);
      });
    });
    return result;
  }

  lineDigest(concertId: string, after: number): Promise<LineDigest> {
    return this.client.queueLineDigest(this.context, concertId, after);
  }

  async touchMany(concertId: string, tokenIds: readonly string[], now: number): Promise<number> {
    let touched = 0;
    for (let i = 0; i < tokenIds.length; i += SNAPSHOT_CHUNK) {
      const chunk = tokenIds.slice(i, i + SNAPSHOT_CHUNK);
      touched += await this.client.queueTouchMany(this.context, concertId, chunk, now);
    }
    return touched;
  }

  async leave(concertId: string, tokenId: string, now: number): Promise<void> {
    await this.client.queueLeave(this.context, concertId, tokenId, now);
  }

  async complete(concertId: string, tokenId: string, now: number): Promise<void> {
    await this.client.queueComplete(this.context, concertId, tokenId, now);
  }

  promote(concertId: string, now: number): Promise<number> {
    return this.client.queuePromote(this.context, concertId, now, newDrawSeed());
  }

  configure(concertId: string, settings: LineSettings): Promise<boolean> {
    return this.client.queueConfigure(this.context, concertId, settings);
  }

  openingDraw(concertId: string): Promise<OpeningDrawRecord | null> {
    return this.client.queueOpeningDraw(this.context, concertId);
  }

  /**
   * Retires the line in its slot, then takes the concert out of the registry
   * (another slot). An issue that renewed the lease in between has added the
   * concert already, or adds it after this removal; in that second case the
   * lease is there when checked below, and the concert goes back in.
   */
  async retire(concertId: string, now: number): Promise<boolean> {
    if (!(await this.client.queueRetire(this.context, concertId, now))) return false;
    const { prefix } = this.context;
    await this.client.sRem(registryKey(prefix), concertId);
    if ((await this.client.exists(leaseKey(prefix, concertId))) > 0) {
      await this.client.sAdd(registryKey(prefix), concertId);
    }
    return true;
  }

  concerts(): Promise<string[]> {
    return this.client.sMembers(registryKey(this.context.prefix));
  }

  /** One GET per concert (each line's counter is in its own slot), sent side by side. */
  async versions(concertIds: readonly string[]): Promise<number[]> {
    const values = await Promise.all(
      concertIds.map((c) => this.client.get(versionKey(this.context.prefix, c))),
    );
    return values.map((value) => (value === null ? 0 : Number(value)));
  }

  /** Two counts per concert (ZCARD, ZCOUNT in its slot), all sent side by side. */
  lineCounts(concertIds: readonly string[], now: number): Promise<LineCounts[]> {
    const { prefix } = this.context;
    return Promise.all(
      concertIds.map(async (concertId) => {
        const [waiting, admitted] = await Promise.all([
          this.client.zCard(waitingKey(prefix, concertId)),
          this.client.zCount(admittedKey(prefix, concertId), `(${now}`, "+inf"),
        ]);
        return { waiting, admitted };
      }),
    );
  }

  drainAdmissions(concertId: string): Promise<AdmissionBatch> {
    return this.client.queueDrainAdmissions(this.context, concertId);
  }

  async close(): Promise<void> {
    // The client is shared with the rest of the server; its owner quits it.
  }
}
