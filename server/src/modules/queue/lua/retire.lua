-- retire: closes a concert's line once its sale has ended. Evicts up to BATCH
-- waiters from the front (each keeps its record for the grace period, so it
-- learns why its token stopped working) and, once nobody waits, ends the
-- line's registration lease; the caller then takes the concert out of the
-- admitter's registry. Admissions run their course. A later issue registers
-- the concert again. ARGV[6..7] = concert, now.
-- Returns 1 once nobody waits (the concert may leave the registry), 0 while
-- waiters remain.
local wKey = qKey('w')
for _, tid in ipairs(redis.call('ZRANGE', qKey('lobby'), 0, BATCH - 1)) do
  redis.call('ZREM', qKey('lobby'), tid)
  local r = load(tid)
  if r then
    redis.call('HSET', sKey(tid), 'st', 'evicted')
    setTtl(r, GRACE)
  end
end
local popped = redis.call('ZPOPMIN', wKey, BATCH)
for i = 1, #popped, 2 do
  local tid = popped[i]
  markDirty()
  local r = load(tid)
  if r then
    evict(r)
  else
    redis.call('ZREM', qKey('seen'), tid)
  end
end
flushDirty()
if redis.call('ZCARD', wKey) > 0 or redis.call('ZCARD', qKey('lobby')) > 0 then return 0 end
redis.call('DEL', qKey('seen'), qKey('reg'), qKey('dl'), qKey('ds'))
return 1
