import { randomBytes } from "node:crypto";
import { readFileSync } from "node:fs";
import type { CommandParser } from "redis";
import { defineScript } from "redis";
import {
  contiguous,
  type DateChanges,
  type DateChangesQuery,
  SEAT_ENTRY_TTL_MS,
  SEAT_LOG_LIMIT,
  type SeatChange,
  type SeatGate,
  type SeatGateEntry,
} from "./seat-gate.js";

// Key layout of the gate (P = prefix, d = concert date, s = seat). Every key of
// one date shares the `{d}` hash tag, so a date's keys live in one slot:
//   P g:{d}:s:<s>  hash {v: seat row version, s: state, u: held until (ms), o: owner}
//   P g:{d}:v      hash {e: epoch (random, set when created), n: change counter}
//   P g:{d}:log    ZSET of "<n>|<seat>|<seat version>|<state>|<held until>" scored by n
//
// The epoch tells listings that the counter started again (Redis lost the
// keys), so a counter value can never be mistaken for one from before.
// Numbers that can exceed 14 digits never pass through Lua's number-to-string
// conversion: held-until times travel and are stored as the strings they came in.

/** The hash of one seat's entry. */
export function seatEntryKey(prefix: string, dateId: string, seatId: string): string {
  return `${prefix}g:{${dateId}}:s:${seatId}`;
}

function versionKey(prefix: string, dateId: string): string {
  return `${prefix}g:{${dateId}}:v`;
}

function logKey(prefix: string, dateId: string): string {
  return `${prefix}g:{${dateId}}:log`;
}

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
      dateId: string,
      change: SeatChange,
      epoch: string,
    ) {
      parser.pushKey(seatEntryKey(context.prefix, dateId, change.seatId));
      parser.pushKey(versionKey(context.prefix, dateId));
      parser.pushKey(logKey(context.prefix, dateId));
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
      dateId: string,
      seatId: string,
      seatVersion: number,
    ) {
      parser.pushKey(seatEntryKey(context.prefix, dateId, seatId));
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
        parser.pushKey(versionKey(context.prefix, query.dateId));
        parser.pushKey(logKey(context.prefix, query.dateId));
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
export interface SeatGateRedis {
  seatGateRecord(
    context: SeatGateScriptContext,
    dateId: string,
    change: SeatChange,
    epoch: string,
  ): Promise<number>;
  seatGateInvalidate(
    context: SeatGateScriptContext,
    dateId: string,
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

  constructor(
    private readonly client: SeatGateRedis,
    prefix: string,
  ) {
    this.context = { prefix };
  }

  async peek(dateId: string, seatId: string): Promise<SeatGateEntry | null> {
    const reply = await this.client.hmGet(seatEntryKey(this.context.prefix, dateId, seatId), [
      "v",
      "s",
      "u",
      "o",
    ]);
    return decodeSeatEntry(reply);
  }

  async record(dateId: string, change: SeatChange): Promise<void> {
    await this.client.seatGateRecord(this.context, dateId, change, this.newEpoch());
  }

  async invalidate(dateId: string, seatId: string, seatVersion: number): Promise<void> {
    await this.client.seatGateInvalidate(this.context, dateId, seatId, seatVersion);
  }

  async changesSince(queries: readonly DateChangesQuery[]): Promise<DateChanges[]> {
    if (queries.length === 0) return [];
    const replies = await this.client.seatGateChanges(this.context, queries);
    return replies.map((reply, i) => ({
      epoch: reply.epoch,
      version: reply.version,
      changes: contiguous(reply.changes, queries[i]?.afterVersion ?? 0, reply.version),
    }));
  }
}
