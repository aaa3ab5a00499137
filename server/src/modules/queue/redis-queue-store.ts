import type { RedisClient } from "../../redis/redis-client.js";
import type {
  IssueInput,
  IssueResult,
  LineDigest,
  LookupWithSeat,
  QueueLimits,
  QueueSnapshot,
  QueueStore,
  SeatRef,
} from "./queue-store.js";
import type { QueueScriptContext, queueScripts } from "./redis-queue-scripts.js";
import { RedisSeatGate } from "./redis-seat-gate.js";

/** A Redis connection with the waiting room's scripts (`client.queueIssue(...)`, …). */
export type QueueRedisClient = RedisClient<typeof queueScripts>;

/** Tokens per `snapshots` or `touchMany` script call, so no single call holds Redis for long. */
const SNAPSHOT_CHUNK = 1000;

/**
 * The production queue store: the line lives in Redis and every operation is
 * one Lua script (see redis-queue-scripts.ts for the key layout), so any
 * number of server instances share one line and the admitted count never
 * exceeds `maxActive`. Needs a single Redis primary (not Cluster), Redis 6.2
 * or newer, and a client without `keyPrefix`; the prefix is given here.
 *
 * The client is shared and owned by the caller: `close()` leaves it open.
 */
export class RedisQueueStore implements QueueStore {
  private readonly client: QueueRedisClient;
  private readonly context: QueueScriptContext;
  readonly seats: RedisSeatGate;

  constructor(client: QueueRedisClient, limits: QueueLimits, keyPrefix: string) {
    this.client = client;
    this.context = { prefix: keyPrefix, limits };
    this.seats = new RedisSeatGate(client, keyPrefix);
  }

  issue(input: IssueInput): Promise<IssueResult> {
    return this.client.queueIssue(this.context, input);
  }

  lookup(tokenHash: string, now: number, touch: boolean): Promise<QueueSnapshot | null> {
    return this.client.queueLookup(this.context, tokenHash, now, touch);
  }

  lookupWithSeat(
    tokenHash: string,
    now: number,
    touch: boolean,
    seat: SeatRef,
  ): Promise<LookupWithSeat> {
    return this.client.queueLookupPeek(this.context, tokenHash, now, touch, seat);
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

  async leave(tokenId: string, now: number): Promise<void> {
    await this.client.queueLeave(this.context, tokenId, now);
  }

  async complete(tokenId: string, now: number): Promise<void> {
    await this.client.queueComplete(this.context, tokenId, now);
  }

  promote(concertId: string, now: number): Promise<number> {
    return this.client.queuePromote(this.context, concertId, now);
  }

  retire(concertId: string, now: number): Promise<boolean> {
    return this.client.queueRetire(this.context, concertId, now);
  }

  concerts(): Promise<string[]> {
    return this.client.sMembers(`${this.context.prefix}concerts`);
  }

  async versions(concertIds: readonly string[]): Promise<number[]> {
    if (concertIds.length === 0) return [];
    const keys = concertIds.map((c) => `${this.context.prefix}q:${c}:ver`);
    const values = await this.client.mGet(keys);
    return values.map((value) => (value === null ? 0 : Number(value)));
  }

  async close(): Promise<void> {
    // The client is shared with the rest of the server; its owner quits it.
  }
}
