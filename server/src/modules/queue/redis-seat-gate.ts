import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { CommandParser } from "redis";
import { defineScript } from "redis";
import { SharedCommandDeadline, type WithCommandOptions } from "../../redis/shared-deadline.js";
import { dateLogKey, dateVersionKey, seatEntryKey } from "./redis-keys.js";
import {
  contiguous,
  type DateChanges,
  type DateChangesQuery,
  type GateDate,
  SEAT_ENTRY_TTL_MS,
  SEAT_LOG_LIMIT,
  type SeatChange,
  type SeatGate,
  type SeatGateEntry,
} from "./seat-gate.js";

// Key layout: see redis-keys.ts. Every key of a date lives next to its
// concert's line, under the concert's `{c}` hash tag, so a token lookup can
// read a seat's entry in the same script, even on Redis Cluster.
//
// The epoch tells listings that the counter started again (Redis lost the
// keys), so a counter value can never be mistaken for one from before.
// Numbers that can exceed 14 digits never pass through Lua's number-to-string
// conversion: held-until times travel and are stored as the strings they came in.

/** A script's Lua source, read once when this module loads. */
function lua(name: string): string {
  return readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
}

const RECORD = lua("seat-gate-record");
const INVALIDATE = lua("seat-gate-invalidate");
const CHANGES = lua("seat-gate-changes");

const STATES = new Set(["held", "sold", "free", "unknown"]);

function malformed(what: string): Error {
  return new Error(`unexpected reply from the Redis seat gate: ${what}`);
}

/** Decodes an `HMGET v s u o` reply (also used by the token lookup that peeks a seat). */
export function decodeSeatEntry(reply: unknown): SeatGateEntry | null {
  if (!Array.isArray(reply) || reply.length !== 4) throw malformed("entry");
  const [version, state, heldUntil, owner] = reply;
  if (version === null || version === undefined) return null;
  if (typeof state !== "string" || !STATES.has(state)) throw malformed(`state ${String(state)}`);
  return {
    seatVersion: Number(version),
    state: state as SeatGateEntry["state"],
    heldUntil: Number(heldUntil),
    owner: String(owner ?? ""),
  };
}

function decodeChange(member: unknown): NumberedChange {
  const parts = String(member).split("|");
  const [n, seatId, seatVersion, state, heldUntil] = parts;
  if (parts.length !== 5 || (state !== "held" && state !== "sold" && state !== "free")) {
    throw malformed(`log entry ${String(member)}`);
  }
  return {
    n: Number(n),
    seatId: seatId ?? "",
    seatVersion: Number(seatVersion),
    state,
    heldUntil: Number(heldUntil),
    owner: "",
  };
}

/** A logged change with its number in the date's log. */
type NumberedChange = SeatChange & { readonly n: number };

/** A date's log as the script returns it, before the contiguity check. */
interface RawDateChanges {
  readonly epoch: string;
  readonly version: number;
  readonly changes: readonly NumberedChange[];
}

/** What the gate scripts need besides their arguments: where the keys live. */
export interface SeatGateScriptContext {
  readonly prefix: string;
}

/**
 * The gate's Lua scripts, registered on the queue's Redis client next to the
 * waiting room's (see redis-queue-scripts.ts). Each declares the keys it
 * touches, all of one date.
 */
export const seatGateScripts = {
  seatGateRecord: defineScript({
    NUMBER_OF_KEYS: 3,
    SCRIPT: RECORD,
    parseCommand(
      parser: CommandParser,
      context: SeatGateScriptContext,
      date: GateDate,
      change: SeatChange,
      epoch: string,
    ) {
      parser.pushKey(seatEntryKey(context.prefix, date, change.seatId));
      parser.pushKey(dateVersionKey(context.prefix, date));
      parser.pushKey(dateLogKey(context.prefix, date));
      parser.push(
        change.seatId,
        String(change.seatVersion),
        change.state,
        String(change.heldUntil),
        change.owner,
        String(SEAT_ENTRY_TTL_MS),
        epoch,
        String(SEAT_LOG_LIMIT),
      );
    },
    transformReply: (reply: unknown): number => Number(reply),
  }),
  seatGateInvalidate: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: INVALIDATE,
    parseCommand(
      parser: CommandParser,
      context: SeatGateScriptContext,
      date: GateDate,
      seatId: string,
      seatVersion: number,
    ) {
      parser.pushKey(seatEntryKey(context.prefix, date, seatId));
      parser.push(String(seatVersion), String(SEAT_ENTRY_TTL_MS));
    },
    transformReply: (reply: unknown): number => Number(reply),
  }),
  seatGateChanges: defineScript({
    IS_READ_ONLY: true,
    SCRIPT: CHANGES,
    parseCommand(
      parser: CommandParser,
      context: SeatGateScriptContext,
      queries: readonly DateChangesQuery[],
    ) {
      parser.push(String(queries.length * 2));
      for (const query of queries) {
        parser.pushKey(dateVersionKey(context.prefix, query));
        parser.pushKey(dateLogKey(context.prefix, query));
      }
      for (const query of queries) parser.push(String(query.afterVersion));
    },
    transformReply(reply: unknown): RawDateChanges[] {
      if (!Array.isArray(reply)) throw malformed("changes");
      return reply.map((item: unknown, i: number) => {
        if (!Array.isArray(item) || item.length !== 3 || !Array.isArray(item[2])) {
          throw malformed(`changes of query ${i}`);
        }
        const [epoch, version, members] = item as [unknown, unknown, unknown[]];
        return {
          epoch: String(epoch),
          version: Number(version),
          changes: members.map(decodeChange),
        };
      });
    },
  }),
};

/** A Redis client with the gate's scripts (the queue's client has them). */
export interface SeatGateRedis extends WithCommandOptions<SeatGateRedis> {
  seatGateRecord(
    context: SeatGateScriptContext,
    date: GateDate,
    change: SeatChange,
    epoch: string,
  ): Promise<number>;
  seatGateInvalidate(
    context: SeatGateScriptContext,
    date: GateDate,
    seatId: string,
    seatVersion: number,
  ): Promise<number>;
  seatGateChanges(
    context: SeatGateScriptContext,
    queries: readonly DateChangesQuery[],
  ): Promise<RawDateChanges[]>;
  hmGet(key: string, fields: string[]): Promise<unknown>;
}

/**
 * The production gate: shared by every instance through the queue's Redis.
 * Every write is one script, atomic on its own; a listing's catch-up is one
 * read-only script for all the dates it needs.
 */
export class RedisSeatGate implements SeatGate {
  private readonly context: SeatGateScriptContext;
  /** A fresh epoch for a date whose counter does not exist yet. */
  private readonly newEpoch = () => randomBytes(8).toString("hex");

  private readonly deadline: SharedCommandDeadline<SeatGateRedis>;

  constructor(client: SeatGateRedis, prefix: string) {
    this.deadline = new SharedCommandDeadline(client);
    this.context = { prefix };
  }

  /** The client, with every command bounded in time (see {@link SharedCommandDeadline}). */
  private get client(): SeatGateRedis {
    return this.deadline.commands();
  }

  async peek(date: GateDate, seatId: string): Promise<SeatGateEntry | null> {
    const reply = await this.client.hmGet(seatEntryKey(this.context.prefix, date, seatId), [
      "v",
      "s",
      "u",
      "o",
    ]);
    return decodeSeatEntry(reply);
  }

  async record(date: GateDate, change: SeatChange): Promise<void> {
    await this.client.seatGateRecord(this.context, date, change, this.newEpoch());
  }

  async invalidate(date: GateDate, seatId: string, seatVersion: number): Promise<void> {
    await this.client.seatGateInvalidate(this.context, date, seatId, seatVersion);
  }

  /**
   * One read-only script per concert among the dates (a concert's dates
   * share its slot), sent side by side: a listing asks for one concert's
   * dates, so that is one script in one round trip.
   */
  async changesSince(queries: readonly DateChangesQuery[]): Promise<DateChanges[]> {
    if (queries.length === 0) return [];
    const byConcert = new Map<string, DateChangesQuery[]>();
    for (const query of queries) {
      const group = byConcert.get(query.concertId);
      if (group === undefined) byConcert.set(query.concertId, [query]);
      else group.push(query);
    }
    const groups = [...byConcert.values()];
    const replies = await Promise.all(
      groups.map((group) => this.client.seatGateChanges(this.context, group)),
    );
    const byQuery = new Map<DateChangesQuery, RawDateChanges>();
    groups.forEach((group, g) => {
      group.forEach((query, i) => {
        const reply = replies[g]?.[i];
        if (reply === undefined) throw malformed("fewer dates than asked");
        byQuery.set(query, reply);
      });
    });
    return queries.map((query) => {
      const reply = byQuery.get(query) as RawDateChanges;
      return {
        epoch: reply.epoch,
        version: reply.version,
        changes: contiguous(reply.changes, query.afterVersion, reply.version),
      };
    });
  }
}
