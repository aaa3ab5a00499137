-- complete: ends an admission after a payment. ARGV[6..7] = token id, now.
local tid, now = ARGV[6], tonumber(ARGV[7])
local r = load(tid)
if not r then return 0 end
refresh(r, now)
if r.st ~= 'admitted' then
  flushDirty()
  return 0
end
if redis.call('ZREM', qKey('a'), tid) == 1 then fold(now - (r.aexp - TTL)) end
redis.call('HSET', sKey(tid), 'st', 'completed')
promote(now)
flushDirty()
return 1
