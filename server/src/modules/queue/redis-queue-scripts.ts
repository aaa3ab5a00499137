import { readFileSync } from "node:fs";
import type { CommandParser } from "redis";
import { defineScript } from "redis";
import type {
  IssueInput,
  IssueResult,
  LineDigest,
  LineSettings,
  LookupWithSeat,
  OpeningDrawRecord,
  QueueLimits,
  QueueSnapshot,
  SeatRef,
} from "./queue-store.js";
import { lineBase, REGISTRATION_LEASE_MS, seatEntryKey } from "./redis-keys.js";
import { decodeSeatEntry, seatGateScripts } from "./redis-seat-gate.js";

/**
 * What every queue script needs besides its own arguments: where its keys
 * live and the limits to enforce. Limits travel with each call (they are a
 * few bytes) so that the scripts hold no configuration of their own.
 */
export interface QueueScriptContext {
  /** Prepended to every key, e.g. `stagedoor:`. */
  readonly prefix: string;
  readonly limits: QueueLimits;
}

// Key layout: see redis-keys.ts. Every script is the prelude
// (lua/prelude.lua) plus a short body (the other lua/*.lua files). The
// prelude's helpers are the single definition of each rule (eviction,
// expiry, promotion), so the scripts cannot drift apart, and
// MemoryQueueStore mirrors them one to one.

/** A script's Lua source, read once when this module loads. */
function lua(name: string): string {
  return readFileSync(new URL(`./lua/${name}.lua`, import.meta.url), "utf8");
}

const PRELUDE = lua("prelude");
// The token lookup shared by LOOKUP and LOOKUP_PEEK.
const FIND_TOKEN = lua("find-token");
const ISSUE = lua("issue");
const LOOKUP = lua("lookup");
const LOOKUP_PEEK = lua("lookup-peek");
const SNAPSHOTS = lua("snapshots");
const LEAVE = lua("leave");
const COMPLETE = lua("complete");
const PROMOTE = lua("promote");
const RETIRE = lua("retire");
const LINE_DIGEST = lua("line-digest");
const TOUCH_MANY = lua("touch-many");
const CONFIGURE = lua("configure");
const OPENING_DRAW = lua("opening-draw");

const STATES = new Set<string>([
  "lobby",
  "waiting",
  "admitted",
  "completed",
  "expired",
  "evicted",
  "left",
  "revoked",
]);

/**
 * KEYS[1] (the line's waiting set, which routes the call), any further keys
 * (all in the line's slot), then the shared ARGV[1..5]: keys must come first.
 */
function pushContext(
  parser: CommandParser,
  context: QueueScriptContext,
  concertId: string,
  ...moreKeys: string[]
): void {
  const { maxActive, admissionTtlMs, idleMs, graceMs } = context.limits;
  const base = lineBase(context.prefix, concertId);
  parser.pushKey(`${base}q:w`);
  for (const key of moreKeys) parser.pushKey(key);
  parser.push(base, String(maxActive), String(admissionTtlMs), String(idleMs), String(graceMs));
}

function malformed(what: string): Error {
  return new Error(`unexpected reply from the Redis queue script: ${what}`);
}

function decodeSnapshot(reply: unknown): QueueSnapshot | null {
  if (reply === null) return null;
  if (!Array.isArray(reply) || reply.length !== 13) throw malformed("snapshot");
  const [
    tokenId,
    userId,
    concertId,
    state,
    position,
    waiting,
    seen,
    expires,
    average,
    seq,
    opensAt,
    paused,
    holdMs,
  ] = reply;
  if (typeof state !== "string" || !STATES.has(state)) throw malformed(`state ${String(state)}`);
  return {
    tokenId: String(tokenId),
    userId: String(userId),
    concertId: String(concertId),
    state: state as QueueSnapshot["state"],
    position: Number(position),
    waitingCount: Number(waiting),
    lastSeenAt: Number(seen),
    admissionExpiresAt: Number(expires),
    averageAdmissionMs: Number(average),
    arrival: Number(seq),
    opensAt: Number(opensAt),
    paused: Number(paused) === 1,
    holdMs: Number(holdMs),
  };
}

function decodeDigest(reply: unknown): LineDigest {
  if (!Array.isArray(reply) || reply.length !== 8 || !Array.isArray(reply[6])) {
    throw malformed("line digest");
  }
  const [version, head, waiting, average, departures, reset, seqs, paused] = reply as unknown[];
  return {
    version: Number(version),
    head: Number(head),
    waitingCount: Number(waiting),
    averageAdmissionMs: Number(average),
    departures: Number(departures),
    reset: Number(reset) === 1,
    departed: (seqs as unknown[]).map(Number),
    paused: Number(paused) === 1,
  };
}

function decodeSnapshotRequired(reply: unknown): QueueSnapshot {
  const snapshot = decodeSnapshot(reply);
  if (snapshot === null) throw malformed("missing snapshot");
  return snapshot;
}

/** What the issue script answers: the store's result, and whether the lease was renewed. */
export interface IssueReply extends IssueResult {
  readonly opened: boolean;
}

/**
 * The waiting room's Lua scripts, registered on the client through
 * `createClient({ scripts })` so each call is one EVALSHA (node-redis falls
 * back to EVAL after a SCRIPT FLUSH). Every queue rule runs inside one of
 * them, which is what makes each store operation atomic across any number of
 * server instances. Used only by RedisQueueStore; see the key layout above.
 */
export const queueScripts = {
  queueIssue: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + ISSUE,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      input: IssueInput,
      drawSeed: string,
    ) {
      pushContext(parser, context, input.concertId);
      parser.push(
        input.concertId,
        input.userId,
        input.tokenId,
        input.tokenHash,
        String(input.now),
        String(REGISTRATION_LEASE_MS),
        drawSeed,
      );
    },
    transformReply(reply: unknown): IssueReply {
      if (!Array.isArray(reply) || reply.length !== 3) throw malformed("issue");
      return {
        created: Number(reply[0]) === 1,
        snapshot: decodeSnapshotRequired(reply[1]),
        opened: Number(reply[2]) === 1,
      };
    },
  }),
  queueLookup: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + FIND_TOKEN + LOOKUP,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      tokenHash: string,
      now: number,
      touch: boolean,
    ) {
      pushContext(parser, context, concertId);
      parser.push(tokenHash, String(now), touch ? "1" : "0");
    },
    transformReply: decodeSnapshot,
  }),
  queueLookupPeek: defineScript({
    NUMBER_OF_KEYS: 2,
    SCRIPT: PRELUDE + FIND_TOKEN + LOOKUP_PEEK,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      tokenHash: string,
      now: number,
      touch: boolean,
      seat: SeatRef,
    ) {
      // The seat is looked up under the token's concert: a seat of another
      // concert's date has no entry there, so it goes to the database, which
      // refuses it.
      const seatKey = seatEntryKey(context.prefix, { concertId, dateId: seat.dateId }, seat.seatId);
      pushContext(parser, context, concertId, seatKey);
      parser.push(tokenHash, String(now), touch ? "1" : "0");
    },
    transformReply(reply: unknown): LookupWithSeat {
      if (!Array.isArray(reply) || reply.length !== 2) throw malformed("lookup with seat");
      return { snapshot: decodeSnapshot(reply[0]), seat: decodeSeatEntry(reply[1]) };
    },
  }),
  queueSnapshots: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + SNAPSHOTS,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      tokenIds: readonly string[],
      now: number,
      touch: boolean,
    ) {
      pushContext(parser, context, concertId);
      parser.push(concertId, String(now), touch ? "1" : "0", ...tokenIds);
    },
    transformReply(reply: unknown): (QueueSnapshot | null)[] {
      if (!Array.isArray(reply)) throw malformed("snapshots");
      return reply.map(decodeSnapshot);
    },
  }),
  queueLeave: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + LEAVE,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      tokenId: string,
      now: number,
    ) {
      pushContext(parser, context, concertId);
      parser.push(tokenId, String(now));
    },
    transformReply: (reply: unknown): boolean => Number(reply) === 1,
  }),
  queueComplete: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + COMPLETE,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      tokenId: string,
      now: number,
    ) {
      pushContext(parser, context, concertId);
      parser.push(tokenId, String(now));
    },
    transformReply: (reply: unknown): boolean => Number(reply) === 1,
  }),
  queuePromote: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + PROMOTE,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      now: number,
      drawSeed: string,
    ) {
      pushContext(parser, context, concertId);
      parser.push(concertId, String(now), drawSeed);
    },
    transformReply: (reply: unknown): number => Number(reply),
  }),
  queueRetire: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + RETIRE,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      now: number,
    ) {
      pushContext(parser, context, concertId);
      parser.push(concertId, String(now));
    },
    transformReply: (reply: unknown): boolean => Number(reply) === 1,
  }),
  queueLineDigest: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + LINE_DIGEST,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      after: number,
    ) {
      pushContext(parser, context, concertId);
      parser.push(concertId, String(after));
    },
    transformReply: decodeDigest,
  }),
  queueTouchMany: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + TOUCH_MANY,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      tokenIds: readonly string[],
      now: number,
    ) {
      pushContext(parser, context, concertId);
      parser.push(concertId, String(now), ...tokenIds);
    },
    transformReply: (reply: unknown): number => Number(reply),
  }),
  queueConfigure: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + CONFIGURE,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      settings: LineSettings,
    ) {
      pushContext(parser, context, concertId);
      parser.push(
        concertId,
        String(settings.opensAt),
        settings.paused ? "1" : "0",
        String(settings.maxActive),
        String(settings.admissionTtlMs),
        String(settings.holdMs),
      );
    },
    transformReply: (reply: unknown): boolean => Number(reply) === 1,
  }),
  queueOpeningDraw: defineScript({
    NUMBER_OF_KEYS: 1,
    SCRIPT: PRELUDE + OPENING_DRAW,
    parseCommand(parser: CommandParser, context: QueueScriptContext, concertId: string) {
      pushContext(parser, context, concertId);
      parser.push(concertId);
    },
    transformReply(reply: unknown): OpeningDrawRecord | null {
      if (reply === null) return null;
      if (!Array.isArray(reply) || reply.length !== 3 || !Array.isArray(reply[2])) {
        throw malformed("opening draw");
      }
      return {
        drawnAt: Number(reply[0]),
        seed: String(reply[1]),
        tokenIds: (reply[2] as unknown[]).map(String),
      };
    },
  }),
  ...seatGateScripts,
};
