-- issue: the user's live token, or a new one at the back of the line.
-- ARGV[6..10] = concert, user, new token id, new token hash, now;
-- ARGV[11] = the registration lease (ms); ARGV[12] = a fresh seed for the
-- opening draw, used only if the draw is due now; ARGV[13..20] = the call's
-- rate limits (bucket.lua's takeCallLimit), taken first: a refusal does
-- nothing else. Before the opening, a new token waits in the lobby (q:lobby)
-- instead of the line.
-- Returns { created, snapshot, opened, refusal }: a refusal comes with
-- created 0 and no snapshot. opened is 1 when the line's
-- registration lease (q:reg) was renewed, so the caller (re)adds the concert
-- to the admitter's registry, which lives in another slot (see
-- redis-queue-scripts.ts).
local c, u, tid, hash, now = ARGV[6], ARGV[7], ARGV[8], ARGV[9], tonumber(ARGV[10])
local refusal = takeCallLimit(13, u, now)
if refusal then return { 0, false, 0, refusal } end
drawIfDue(now, ARGV[12])
local uk = uKey(u)
local oldId = redis.call('GET', uk)
local old = nil
if oldId then old = load(oldId) end
if old then
  refresh(old, now)
  if old.st == 'waiting' or old.st == 'admitted' or old.st == 'lobby' then
    touch(old, now)
    promote(now)
    flushDirty()
    return { 0, snapshot(load(oldId)), 0, false }
  end
end
if redis.call('EXISTS', sKey(tid), tKey(hash)) > 0 then
  flushDirty()
  return redis.error_reply('ERR stagedoor queue: token id or token hash already in use')
end
if old and old.st ~= 'left' and old.st ~= 'revoked' then
  if leaveLine(oldId) then markDirty() end
  redis.call('ZREM', qKey('seen'), oldId)
  redis.call('ZREM', qKey('a'), oldId)
  redis.call('HSET', sKey(oldId), 'st', 'revoked')
  redis.call('DEL', tKey(old.h))
  redis.call('PEXPIRE', sKey(oldId), GRACE)
end
local state = 'waiting'
if lobbyOpen(now) then state = 'lobby' end
-- The new record, as load(tid) would read it back (admit updates it).
local r = { id = tid, u = u, c = c, h = hash, st = state, aexp = 0, iat = now }
redis.call('HSET', sKey(tid), 'u', u, 'c', c, 'h', hash, 'st', state, 'iat', now, 'aexp', 0)
redis.call('SET', tKey(hash), tid)
redis.call('SET', uk, tid)
-- The line moves first; a newcomer who then finds it empty and a place free
-- is admitted at once, as the next promotion would admit them, without
-- joining the line and leaving it again (nobody's position moves).
local _, free, empty = promote(now)
if state == 'lobby' then
  redis.call('ZADD', qKey('lobby'), 0, tid)
else
  local seq = redis.call('INCR', qKey('seq'))
  if empty and free > 0 then
    admit(r, seq, now)
  else
    redis.call('ZADD', qKey('w'), seq, tid)
    redis.call('ZADD', qKey('seen'), now, tid)
  end
end
local opened = 0
if redis.call('SET', qKey('reg'), '1', 'NX', 'PX', ARGV[11]) then opened = 1 end
flushDirty()
return { 1, snapshot(r), opened, false }
