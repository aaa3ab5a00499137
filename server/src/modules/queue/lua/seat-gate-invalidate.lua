-- seat-gate-invalidate: marks a seat unknown before a change that frees it.
-- KEYS[1] = the seat's entry.
local current = tonumber(redis.call('HGET', KEYS[1], 'v')) or 0
local v = tonumber(ARGV[1])
if current > v then v = current end
redis.call('HSET', KEYS[1], 'v', v, 's', 'unknown', 'u', '0', 'o', '')
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
