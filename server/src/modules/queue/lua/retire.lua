-- retire: closes a concert's line once its sale has ended. Evicts up to BATCH
-- waiters from the front (each keeps its record for the grace period, so it
-- learns why its token stopped working) and, once nobody waits, takes the
-- concert out of the admitter's set. Admissions run their course. A later
-- issue adds the concert again. ARGV[6..7] = concert, now.
-- Returns 1 once the concert is out of the set, 0 while waiters remain.
local c = ARGV[6]
if redis.call('SISMEMBER', P .. 'concerts', c) == 0 then return 1 end
local wKey = qKey(c, 'w')
local popped = redis.call('ZPOPMIN', wKey, BATCH)
for i = 1, #popped, 2 do
  local tid = popped[i]
  markDirty(c)
  local r = load(tid)
  if r then
    evict(r)
  else
    redis.call('ZREM', qKey(c, 'seen'), tid)
  end
end
flushDirty()
if redis.call('ZCARD', wKey) > 0 then return 0 end
redis.call('DEL', qKey(c, 'seen'), qKey(c, 'dl'), qKey(c, 'ds'))
redis.call('SREM', P .. 'concerts', c)
return 1
