-- leave: gives up a place or an admission. ARGV[6..7] = token id, now.
local tid, now = ARGV[6], tonumber(ARGV[7])
local r = load(tid)
if not r then return 0 end
refresh(r, now)
if r.st == 'left' or r.st == 'revoked' then
  flushDirty()
  return 0
end
if r.st == 'waiting' then
  leaveLine(tid)
  redis.call('ZREM', qKey('seen'), tid)
  markDirty()
elseif r.st == 'lobby' then
  redis.call('ZREM', qKey('lobby'), tid)
elseif r.st == 'admitted' then
  if redis.call('ZREM', qKey('a'), tid) == 1 then fold(now - (r.aexp - TTL)) end
end
redis.call('HSET', sKey(tid), 'st', 'left')
redis.call('DEL', tKey(r.h))
local uk = uKey(r.u)
if redis.call('GET', uk) == tid then redis.call('DEL', uk) end
redis.call('PEXPIRE', sKey(tid), GRACE)
promote(now)
flushDirty()
return 1
