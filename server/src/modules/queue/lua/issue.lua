-- issue: the user's live token, or a new one at the back of the line.
-- ARGV[6..10] = concert, user, new token id, new token hash, now.
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
  if leaveLine(c, oldId) then markDirty(c) end
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
