-- The prelude of every waiting-room script (see redis-queue-scripts.ts for the
-- key layout and the arguments every script shares): its helpers are the
-- single definition of each rule (eviction, expiry, promotion), so the
-- scripts cannot drift apart, and MemoryQueueStore mirrors them one to one.
-- Each script is this prelude followed by its body (the other files here).
-- Every script works on one concert's line: B is the base of its keys
-- ("<prefix>{<concert>}:"), so everything it touches shares the concert's
-- hash tag and lives in one Redis Cluster slot, the slot of KEYS[1] (the
-- line's waiting set, declared so the cluster routes the call to its node).
local B = ARGV[1]
local MAX_ACTIVE = tonumber(ARGV[2])
local TTL = tonumber(ARGV[3])
local IDLE = tonumber(ARGV[4])
local GRACE = tonumber(ARGV[5])
-- Bounds the eviction work one call does, so one script never stalls Redis.
local BATCH = 1000

local function sKey(tid) return B .. 's:' .. tid end
local function tKey(hash) return B .. 't:' .. hash end
local function uKey(u) return B .. 'u:' .. u end
local function qKey(part) return B .. 'q:' .. part end

-- Whether the waiting set shrank; the version moves once per script.
local dirty = false
local function markDirty() dirty = true end
local function flushDirty()
  if dirty then redis.call('INCR', qKey('ver')) end
  dirty = false
end

-- Departures from behind the head of a line, which watchers need to derive
-- positions (see line-digest.lua): each is logged by its arrival seq in
-- q:dl (scored by the departure count q:dn, the last DEPARTURE_LOG
-- kept) and in q:ds (scored by seq, trimmed below the head by promote).
-- Pops from the head are not logged: no one waits ahead of them.
local DEPARTURE_LOG = 10000
local function leaveLine(tid)
  local wKey = qKey('w')
  local seq = redis.call('ZSCORE', wKey, tid)
  if not seq then return false end
  redis.call('ZREM', wKey, tid)
  local n = redis.call('INCR', qKey('dn'))
  redis.call('ZADD', qKey('dl'), n, seq)
  redis.call('ZREMRANGEBYSCORE', qKey('dl'), '-inf', n - DEPARTURE_LOG)
  redis.call('ZADD', qKey('ds'), seq, seq)
  return true
end

-- Every admission is logged for the admitter to drain (drain-admissions.lua)
-- as "<arrival seq>:<joined>:<admitted>": one RPUSH on the admission path.
-- The last ADMISSION_LOG undrained ones are kept; older ones only count in
-- the line's admission total (q:an).
local ADMISSION_LOG = 10000
local function logAdmission(r, seq, now)
  local n = redis.call('RPUSH', qKey('al'), seq .. ':' .. r.iat .. ':' .. now)
  if n > ADMISSION_LOG then
    redis.call('LTRIM', qKey('al'), -ADMISSION_LOG, -1)
    redis.call('INCRBY', qKey('an'), n - ADMISSION_LOG)
  end
end

local function load(tid)
  local v = redis.call('HMGET', sKey(tid), 'u', 'c', 'h', 'st', 'aexp', 'iat')
  if not v[4] then return nil end
  return {
    id = tid, u = v[1], c = v[2], h = v[3], st = v[4], aexp = tonumber(v[5]) or 0,
    iat = tonumber(v[6]) or 0,
  }
end

-- The record, its auth key and the user's mapping live and die together.
-- Relative PEXPIRE (not PEXPIREAT) keeps Redis's clock out of the rules:
-- the callers' "now" stays the only time that matters.
local function setTtl(r, ms)
  redis.call('PEXPIRE', sKey(r.id), ms)
  redis.call('PEXPIRE', tKey(r.h), ms)
  local uk = uKey(r.u)
  if redis.call('GET', uk) == r.id then redis.call('PEXPIRE', uk, ms) end
end

-- Whole milliseconds, so Lua and JavaScript compute the same series.
local function fold(ms)
  if ms < 0 then ms = 0 end
  local key = qKey('avg')
  local avg = tonumber(redis.call('GET', key))
  if avg then ms = 0.8 * avg + 0.2 * ms end
  redis.call('SET', key, math.floor(ms + 0.5))
end

local function evict(r)
  leaveLine(r.id)
  redis.call('ZREM', qKey('seen'), r.id)
  redis.call('HSET', sKey(r.id), 'st', 'evicted')
  r.st = 'evicted'
  setTtl(r, GRACE)
  markDirty()
end

-- Applies the time rules to one token as of now.
local function refresh(r, now)
  if r.st == 'waiting' then
    local seen = tonumber(redis.call('ZSCORE', qKey('seen'), r.id))
    if seen == nil or seen < now - IDLE then evict(r) end
  elseif r.aexp <= now and (r.st == 'admitted' or r.st == 'completed') then
    if r.st == 'admitted' and redis.call('ZREM', qKey('a'), r.id) == 1 then
      fold(TTL)
    end
    redis.call('HSET', sKey(r.id), 'st', 'expired')
    r.st = 'expired'
  end
end

-- GT: a caller with a slightly older clock never moves activity backwards.
local function touch(r, now)
  if r.st == 'waiting' then
    redis.call('ZADD', qKey('seen'), 'XX', 'GT', now, r.id)
  end
end

local function promote(now)
  local aKey, wKey, seenKey = qKey('a'), qKey('w'), qKey('seen')
  for _, tid in ipairs(redis.call('ZRANGEBYSCORE', aKey, '-inf', now)) do
    redis.call('ZREM', aKey, tid)
    fold(TTL)
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
      leaveLine(tid)
      redis.call('ZREM', seenKey, tid)
      markDirty()
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
    markDirty()
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
      logAdmission(r, popped[2], now)
      admitted = admitted + 1
      free = free - 1
    end
  end
  local head = redis.call('ZRANGE', wKey, 0, 0, 'WITHSCORES')[2]
  if head then
    redis.call('ZREMRANGEBYSCORE', qKey('ds'), '-inf', '(' .. head)
  else
    redis.call('DEL', qKey('ds'))
  end
  return admitted
end

local function snapshot(r)
  local wKey = qKey('w')
  local position, seen, seq = 0, 0, 0
  if r.st == 'waiting' then
    position = (redis.call('ZRANK', wKey, r.id) or -1) + 1
    seen = tonumber(redis.call('ZSCORE', qKey('seen'), r.id)) or 0
    seq = tonumber(redis.call('ZSCORE', wKey, r.id)) or 0
  end
  local avg = tonumber(redis.call('GET', qKey('avg'))) or TTL
  return { r.id, r.u, r.c, r.st, position, redis.call('ZCARD', wKey), seen, r.aexp, avg, seq }
end
