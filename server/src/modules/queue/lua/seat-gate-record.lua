-- seat-gate-record: writes one committed seat change, unless a newer one is
-- already there. KEYS = the seat's entry, the date's version hash, its log.
local v = tonumber(ARGV[2])
local current = tonumber(redis.call('HGET', KEYS[1], 'v'))
if current and current >= v then return 0 end
redis.call('HSET', KEYS[1], 'v', ARGV[2], 's', ARGV[3], 'u', ARGV[4], 'o', ARGV[5])
redis.call('PEXPIRE', KEYS[1], ARGV[6])
redis.call('HSETNX', KEYS[2], 'e', ARGV[7])
local n = redis.call('HINCRBY', KEYS[2], 'n', 1)
redis.call('ZADD', KEYS[3], n, n .. '|' .. ARGV[1] .. '|' .. ARGV[2] .. '|' .. ARGV[3] .. '|' .. ARGV[4])
local size = redis.call('ZCARD', KEYS[3])
local limit = tonumber(ARGV[8])
if size > limit then redis.call('ZREMRANGEBYRANK', KEYS[3], 0, size - limit - 1) end
redis.call('PEXPIRE', KEYS[2], ARGV[6])
redis.call('PEXPIRE', KEYS[3], ARGV[6])
return n
