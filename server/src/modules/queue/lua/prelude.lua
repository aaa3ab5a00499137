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

-- The concert's sale settings (configure.lua writes them; see LineSettings
-- in queue-store.ts): an opening time, the brake, and limits that replace
-- the server's when set. One HMGET inside the script, no round trip more.
local CFG = redis.call('HMGET', B .. 'q:cfg', 'open', 'paused', 'max', 'ttl', 'hold', 'drawn')
local OPENS_AT = tonumber(CFG[1]) or 0
local PAUSED = CFG[2] == '1'
if (tonumber(CFG[3]) or 0) > 0 then MAX_ACTIVE = tonumber(CFG[3]) end
if (tonumber(CFG[4]) or 0) > 0 then TTL = tonumber(CFG[4]) end
local HOLD = tonumber(CFG[5]) or 0
local DRAWN = CFG[6] == '1'

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

-- Admits one token (its record r, from the line or a newcomer, and its arrival
-- seq): admitted until now + TTL, its keys kept GRACE longer, and the
-- admission logged.
local function admit(r, seq, now)
  local aexp = now + TTL
  redis.call('ZADD', qKey('a'), aexp, r.id)
  redis.call('HSET', sKey(r.id), 'st', 'admitted', 'aexp', aexp)
  r.st = 'admitted'
  r.aexp = aexp
  setTtl(r, TTL + GRACE)
  logAdmission(r, seq, now)
end

-- Expires ended admissions, evicts idle waiters and admits from the head of
-- the line while places are free. Returns how many it admitted, how many
-- places are still free, and whether the line is now empty.
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
  -- Paused: nobody new is admitted; waiters keep their place.
  local free = MAX_ACTIVE - redis.call('ZCARD', aKey)
  if PAUSED then free = 0 end
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
      admit(r, popped[2], now)
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
  return admitted, free, head == nil
end

-- The opening draw (the rule of opening-draw.ts, which MemoryQueueStore
-- uses): the lobby's token ids in byte order (a ZSET of equal scores sorts
-- them so), shuffled by Fisher-Yates with j = the k-th number of the
-- SHA-1(seed:k) stream modulo i, rejecting numbers that would bias it. The
-- lobby then joins the line in that order, ahead of everyone after it, and
-- the seed and order are kept (q:draw, q:dorder) for audit. Due once the
-- opening has come, or when the opening was cleared while fans waited.
local function lobbyPending() return OPENS_AT > 0 and not DRAWN end
local function lobbyOpen(now) return lobbyPending() and now < OPENS_AT end
local function drawIfDue(now, seed)
  if DRAWN or not seed or seed == '' then return end
  if OPENS_AT > 0 then
    if now < OPENS_AT then return end
  elseif redis.call('ZCARD', qKey('lobby')) == 0 then
    return
  end
  local ids = redis.call('ZRANGE', qKey('lobby'), 0, -1)
  local TWO_52 = 4503599627370496
  local counter = 0
  for i = #ids, 2, -1 do
    local limit = math.floor(TWO_52 / i) * i
    local r
    repeat
      r = tonumber(string.sub(redis.sha1hex(seed .. ':' .. counter), 1, 13), 16)
      counter = counter + 1
    until r < limit
    local j = math.fmod(r, i) + 1
    ids[i], ids[j] = ids[j], ids[i]
  end
  for _, tid in ipairs(ids) do
    local seq = redis.call('INCR', qKey('seq'))
    redis.call('ZADD', qKey('w'), seq, tid)
    redis.call('ZADD', qKey('seen'), now, tid)
    redis.call('HSET', sKey(tid), 'st', 'waiting')
    redis.call('RPUSH', qKey('dorder'), tid)
  end
  redis.call('DEL', qKey('lobby'))
  redis.call('HSET', qKey('draw'), 'at', now, 'seed', seed, 'size', #ids)
  redis.call('HSET', qKey('cfg'), 'drawn', '1')
  DRAWN = true
  markDirty()
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
  local opensAt = 0
  if lobbyPending() then opensAt = OPENS_AT end
  local paused = 0
  if PAUSED then paused = 1 end
  return { r.id, r.u, r.c, r.st, position, redis.call('ZCARD', wKey), seen, r.aexp, avg, seq,
    opensAt, paused, HOLD }
end
