import type { CommandParser } from "redis";
import { defineScript } from "redis";
import type {
  IssueInput,
  IssueResult,
  LookupWithSeat,
  QueueLimits,
  QueueSnapshot,
} from "./queue-store.js";
import { decodeSeatEntry, seatEntryKey, seatGateScripts } from "./redis-seat-gate.js";

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

// Key layout (P = prefix, c = concert, tid = token id), kept in one place:
//   P t:<hash>       → tid, the auth lookup; exists exactly while the token authenticates
//   P s:<tid>        → hash {u, c, h, st, iat, aexp}; no TTL while waiting
//   P u:<c>:<user>   → tid, the user's current token for the concert
//   P q:<c>:w        ZSET waiting tids by arrival seq (P q:<c>:seq is the INCR counter)
//   P q:<c>:seen     ZSET waiting tids by last activity
//   P q:<c>:a        ZSET admitted tids by admission expiry
//   P q:<c>:ver      counter bumped when anyone leaves the waiting set
//   P q:<c>:avg      moving average admission duration (whole ms)
//   P concerts       SET of concert ids
//
// The scripts build these names from the prefix inside Lua instead of
// declaring them as KEYS, because most of them (one per popped or evicted
// token) are only known while the script runs. That is fine on one Redis
// primary but not on Redis Cluster, and the client's own `keyPrefix` option
// must stay unset (it only prefixes declared keys). Needs Redis >= 6.2 for
// ZADD GT.
//
// Every script is the prelude below plus a short body. The prelude's helpers
// are the single definition of each rule (eviction, expiry, promotion), so the
// scripts cannot drift apart, and MemoryQueueStore mirrors them one to one.
const PRELUDE = `
local P = ARGV[1]
local MAX_ACTIVE = tonumber(ARGV[2])
local TTL = tonumber(ARGV[3])
local IDLE = tonumber(ARGV[4])
local GRACE = tonumber(ARGV[5])
-- Bounds the eviction work one call does, so one script never stalls Redis.
local BATCH = 1000

local function sKey(tid) return P .. 's:' .. tid end
local function tKey(hash) return P .. 't:' .. hash end
local function uKey(c, u) return P .. 'u:' .. c .. ':' .. u end
local function qKey(c, part) return P .. 'q:' .. c .. ':' .. part end

-- Concerts whose waiting set shrank; their version moves once per script.
local dirty = {}
local function markDirty(c) dirty[c] = true end
local function flushDirty()
  for c in pairs(dirty) do redis.call('INCR', qKey(c, 'ver')) end
  dirty = {}
end

local function load(tid)
  local v = redis.call('HMGET', sKey(tid), 'u', 'c', 'h', 'st', 'aexp')
  if not v[4] then return nil end
  return { id = tid, u = v[1], c = v[2], h = v[3], st = v[4], aexp = tonumber(v[5]) or 0 }
end

-- The record, its auth key and the user's mapping live and die together.
-- Relative PEXPIRE (not PEXPIREAT) keeps Redis's clock out of the rules:
-- the callers' "now" stays the only time that matters.
local function setTtl(r, ms)
  redis.call('PEXPIRE', sKey(r.id), ms)
  redis.call('PEXPIRE', tKey(r.h), ms)
  local uk = uKey(r.c, r.u)
  if redis.call('GET', uk) == r.id then redis.call('PEXPIRE', uk, ms) end
end

-- Whole milliseconds, so Lua and JavaScript compute the same series.
local function fold(c, ms)
  if ms < 0 then ms = 0 end
  local key = qKey(c, 'avg')
  local avg = tonumber(redis.call('GET', key))
  if avg then ms = 0.8 * avg + 0.2 * ms end
  redis.call('SET', key, math.floor(ms + 0.5))
end

local function evict(r)
  redis.call('ZREM', qKey(r.c, 'w'), r.id)
  redis.call('ZREM', qKey(r.c, 'seen'), r.id)
  redis.call('HSET', sKey(r.id), 'st', 'evicted')
  r.st = 'evicted'
  setTtl(r, GRACE)
  markDirty(r.c)
end

-- Applies the time rules to one token as of now.
local function refresh(r, now)
  if r.st == 'waiting' then
    local seen = tonumber(redis.call('ZSCORE', qKey(r.c, 'seen'), r.id))
    if seen == nil or seen < now - IDLE then evict(r) end
  elseif r.aexp <= now and (r.st == 'admitted' or r.st == 'completed') then
    if r.st == 'admitted' and redis.call('ZREM', qKey(r.c, 'a'), r.id) == 1 then
      fold(r.c, TTL)
    end
    redis.call('HSET', sKey(r.id), 'st', 'expired')
    r.st = 'expired'
  end
end

-- GT: a caller with a slightly older clock never moves activity backwards.
local function touch(r, now)
  if r.st == 'waiting' then
    redis.call('ZADD', qKey(r.c, 'seen'), 'XX', 'GT', now, r.id)
  end
end

local function promote(c, now)
  local aKey, wKey, seenKey = qKey(c, 'a'), qKey(c, 'w'), qKey(c, 'seen')
  for _, tid in ipairs(redis.call('ZRANGEBYSCORE', aKey, '-inf', now)) do
    redis.call('ZREM', aKey, tid)
    fold(c, TTL)
    if redis.call('HGET', sKey(tid), 'st') == 'admitted' then
      redis.call('HSET', sKey(tid), 'st', 'expired')
    end
  end
  local cutoff = now - IDLE
  local idle = redis.call('ZRANGEBYSCORE', seenKey, '-inf', '(' .. cutoff, 'LIMIT', 0, BATCH)
  for _, tid in ipairs(idle) do
    local r = load(tid)
    if r then
      evict(r)
    else
      redis.call('ZREM', wKey, tid)
      redis.call('ZREM', seenKey, tid)
      markDirty(c)
    end
  end
  -- Waiters beyond the eviction batch may still be idle when they reach the
  -- front: they are evicted instead of admitted, within a bounded budget.
  local admitted, skipped = 0, 0
  local free = MAX_ACTIVE - redis.call('ZCARD', aKey)
  while free > 0 and skipped < BATCH do
    local popped = redis.call('ZPOPMIN', wKey)
    if #popped == 0 then break end
    local tid = popped[1]
    markDirty(c)
    local seen = tonumber(redis.call('ZSCORE', seenKey, tid))
    local r = load(tid)
    if r == nil then
      redis.call('ZREM', seenKey, tid)
      skipped = skipped + 1
    elseif seen == nil or seen < cutoff then
      evict(r)
      skipped = skipped + 1
    else
      redis.call('ZREM', seenKey, tid)
      local aexp = now + TTL
      redis.call('ZADD', aKey, aexp, tid)
      redis.call('HSET', sKey(tid), 'st', 'admitted', 'aexp', aexp)
      setTtl(r, TTL + GRACE)
      admitted = admitted + 1
      free = free - 1
    end
  end
  return admitted
end

local function snapshot(r)
  local wKey = qKey(r.c, 'w')
  local position, seen = 0, 0
  if r.st == 'waiting' then
    position = (redis.call('ZRANK', wKey, r.id) or -1) + 1
    seen = tonumber(redis.call('ZSCORE', qKey(r.c, 'seen'), r.id)) or 0
  end
  local avg = tonumber(redis.call('GET', qKey(r.c, 'avg'))) or TTL
  return { r.id, r.u, r.c, r.st, position, redis.call('ZCARD', wKey), seen, r.aexp, avg }
end
`;

const ISSUE = `
local c, u, tid, hash, now = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local uk = uKey(c, u)
local oldId = redis.call('GET', uk)
local old = nil
if oldId then old = load(oldId) end
if old then
  refresh(old, now)
  if old.st == 'waiting' or old.st == 'admitted' then
    touch(old, now)
    promote(c, now)
    flushDirty()
    return { 0, snapshot(load(oldId)) }
  end
end
if redis.call('EXISTS', sKey(tid), tKey(hash)) > 0 then
  flushDirty()
  return redis.error_reply('ERR stagedoor queue: token id or token hash already in use')
end
if old and old.st ~= 'left' and old.st ~= 'revoked' then
  if redis.call('ZREM', qKey(c, 'w'), oldId) == 1 then markDirty(c) end
  redis.call('ZREM', qKey(c, 'seen'), oldId)
  redis.call('ZREM', qKey(c, 'a'), oldId)
  redis.call('HSET', sKey(oldId), 'st', 'revoked')
  redis.call('DEL', tKey(old.h))
  redis.call('PEXPIRE', sKey(oldId), GRACE)
end
local seq = redis.call('INCR', qKey(c, 'seq'))
redis.call('HSET', sKey(tid), 'u', u, 'c', c, 'h', hash, 'st', 'waiting', 'iat', now, 'aexp', 0)
redis.call('SET', tKey(hash), tid)
redis.call('SET', uk, tid)
redis.call('ZADD', qKey(c, 'w'), seq, tid)
redis.call('ZADD', qKey(c, 'seen'), now, tid)
redis.call('SADD', P .. 'concerts', c)
promote(c, now)
flushDirty()
return { 1, snapshot(load(tid)) }
`;

// The token lookup, shared by LOOKUP and LOOKUP_PEEK.
const FIND_TOKEN = `
local function findToken(hash, now, doTouch)
  local tid = redis.call('GET', tKey(hash))
  if not tid then return nil end
  local r = load(tid)
  if not r then return nil end
  refresh(r, now)
  if doTouch then touch(r, now) end
  flushDirty()
  return r
end
`;

const LOOKUP = `
local r = findToken(ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1')
if not r then return false end
return snapshot(r)
`;

// A lookup that also reads one seat's gate entry (ARGV[9] is its key, built by
// redis-seat-gate.ts), so a hold is authenticated and gated in one round trip.
const LOOKUP_PEEK = `
local seat = redis.call('HMGET', ARGV[9], 'v', 's', 'u', 'o')
local r = findToken(ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1')
if not r then return { false, seat } end
return { snapshot(r), seat }
`;

const SNAPSHOTS = `
local c, now, doTouch = ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1'
local found = {}
for i = 9, #ARGV do
  local r = load(ARGV[i])
  if r and r.c == c then
    refresh(r, now)
    if doTouch then touch(r, now) end
    found[i] = r
  end
end
flushDirty()
-- Snapshots are taken after every token was refreshed, so the positions in
-- one reply agree with each other.
local out = {}
for i = 9, #ARGV do
  if found[i] then out[#out + 1] = snapshot(found[i]) else out[#out + 1] = false end
end
return out
`;

const LEAVE = `
local tid, now = ARGV[6], tonumber(ARGV[7])
local r = load(tid)
if not r then return 0 end
refresh(r, now)
if r.st == 'left' or r.st == 'revoked' then
  flushDirty()
  return 0
end
if r.st == 'waiting' then
  redis.call('ZREM', qKey(r.c, 'w'), tid)
  redis.call('ZREM', qKey(r.c, 'seen'), tid)
  markDirty(r.c)
elseif r.st == 'admitted' then
  if redis.call('ZREM', qKey(r.c, 'a'), tid) == 1 then fold(r.c, now - (r.aexp - TTL)) end
end
redis.call('HSET', sKey(tid), 'st', 'left')
redis.call('DEL', tKey(r.h))
local uk = uKey(r.c, r.u)
if redis.call('GET', uk) == tid then redis.call('DEL', uk) end
redis.call('PEXPIRE', sKey(tid), GRACE)
promote(r.c, now)
flushDirty()
return 1
`;

const COMPLETE = `
local tid, now = ARGV[6], tonumber(ARGV[7])
local r = load(tid)
if not r then return 0 end
refresh(r, now)
if r.st ~= 'admitted' then
  flushDirty()
  return 0
end
if redis.call('ZREM', qKey(r.c, 'a'), tid) == 1 then fold(r.c, now - (r.aexp - TTL)) end
redis.call('HSET', sKey(tid), 'st', 'completed')
promote(r.c, now)
flushDirty()
return 1
`;

const PROMOTE = `
local n = promote(ARGV[6], tonumber(ARGV[7]))
flushDirty()
return n
`;

const STATES = new Set<string>([
  "waiting",
  "admitted",
  "completed",
  "expired",
  "evicted",
  "left",
  "revoked",
]);

function pushContext(parser: CommandParser, context: QueueScriptContext): void {
  const { maxActive, admissionTtlMs, idleMs, graceMs } = context.limits;
  parser.push(
    context.prefix,
    String(maxActive),
    String(admissionTtlMs),
    String(idleMs),
    String(graceMs),
  );
}

function malformed(what: string): Error {
  return new Error(`unexpected reply from the Redis queue script: ${what}`);
}

function decodeSnapshot(reply: unknown): QueueSnapshot | null {
  if (reply === null) return null;
  if (!Array.isArray(reply) || reply.length !== 9) throw malformed("snapshot");
  const [tokenId, userId, concertId, state, position, waiting, seen, expires, average] = reply;
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
  };
}

function decodeSnapshotRequired(reply: unknown): QueueSnapshot {
  const snapshot = decodeSnapshot(reply);
  if (snapshot === null) throw malformed("missing snapshot");
  return snapshot;
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
    NUMBER_OF_KEYS: 0,
    SCRIPT: PRELUDE + ISSUE,
    parseCommand(parser: CommandParser, context: QueueScriptContext, input: IssueInput) {
      pushContext(parser, context);
      parser.push(input.concertId, input.userId, input.tokenId, input.tokenHash, String(input.now));
    },
    transformReply(reply: unknown): IssueResult {
      if (!Array.isArray(reply) || reply.length !== 2) throw malformed("issue");
      return { created: Number(reply[0]) === 1, snapshot: decodeSnapshotRequired(reply[1]) };
    },
  }),
  queueLookup: defineScript({
    NUMBER_OF_KEYS: 0,
    SCRIPT: PRELUDE + FIND_TOKEN + LOOKUP,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      tokenHash: string,
      now: number,
      touch: boolean,
    ) {
      pushContext(parser, context);
      parser.push(tokenHash, String(now), touch ? "1" : "0");
    },
    transformReply: decodeSnapshot,
  }),
  queueLookupPeek: defineScript({
    NUMBER_OF_KEYS: 0,
    SCRIPT: PRELUDE + FIND_TOKEN + LOOKUP_PEEK,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      tokenHash: string,
      now: number,
      touch: boolean,
      seat: { readonly dateId: string; readonly seatId: string },
    ) {
      pushContext(parser, context);
      parser.push(
        tokenHash,
        String(now),
        touch ? "1" : "0",
        seatEntryKey(context.prefix, seat.dateId, seat.seatId),
      );
    },
    transformReply(reply: unknown): LookupWithSeat {
      if (!Array.isArray(reply) || reply.length !== 2) throw malformed("lookup with seat");
      return { snapshot: decodeSnapshot(reply[0]), seat: decodeSeatEntry(reply[1]) };
    },
  }),
  queueSnapshots: defineScript({
    NUMBER_OF_KEYS: 0,
    SCRIPT: PRELUDE + SNAPSHOTS,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      tokenIds: readonly string[],
      now: number,
      touch: boolean,
    ) {
      pushContext(parser, context);
      parser.push(concertId, String(now), touch ? "1" : "0", ...tokenIds);
    },
    transformReply(reply: unknown): (QueueSnapshot | null)[] {
      if (!Array.isArray(reply)) throw malformed("snapshots");
      return reply.map(decodeSnapshot);
    },
  }),
  queueLeave: defineScript({
    NUMBER_OF_KEYS: 0,
    SCRIPT: PRELUDE + LEAVE,
    parseCommand(parser: CommandParser, context: QueueScriptContext, tokenId: string, now: number) {
      pushContext(parser, context);
      parser.push(tokenId, String(now));
    },
    transformReply: (reply: unknown): boolean => Number(reply) === 1,
  }),
  queueComplete: defineScript({
    NUMBER_OF_KEYS: 0,
    SCRIPT: PRELUDE + COMPLETE,
    parseCommand(parser: CommandParser, context: QueueScriptContext, tokenId: string, now: number) {
      pushContext(parser, context);
      parser.push(tokenId, String(now));
    },
    transformReply: (reply: unknown): boolean => Number(reply) === 1,
  }),
  queuePromote: defineScript({
    NUMBER_OF_KEYS: 0,
    SCRIPT: PRELUDE + PROMOTE,
    parseCommand(
      parser: CommandParser,
      context: QueueScriptContext,
      concertId: string,
      now: number,
    ) {
      pushContext(parser, context);
      parser.push(concertId, String(now));
    },
    transformReply: (reply: unknown): number => Number(reply),
  }),
  ...seatGateScripts,
};
