-- One token bucket (see token-bucket.ts, whose takeToken this mirrors exactly).
-- KEYS[1]  the bucket: a hash {u = units, at = ms}; absent means full.
-- ARGV     now (ms), capacity (units of a full bucket), refill (units per ms),
--          period (units per token).
-- Returns {allowed (1/0), retry after (ms; 0 when allowed)}.
-- A refusal writes nothing. The key expires when the bucket is full again
-- (plus a second for clock skew between instances), so idle buckets vanish.
local now = tonumber(ARGV[1])
local capacity = tonumber(ARGV[2])
local refill = tonumber(ARGV[3])
local period = tonumber(ARGV[4])
local units, at = capacity, now
local saved = redis.call('HMGET', KEYS[1], 'u', 'at')
if saved[1] then
  units = tonumber(saved[1])
  at = tonumber(saved[2])
end
if now > at then
  units = math.min(capacity, units + (now - at) * refill)
  at = now
end
if units < period then
  return {0, math.ceil((period - units) / refill)}
end
units = units - period
redis.call('HSET', KEYS[1], 'u', units, 'at', at)
redis.call('PEXPIRE', KEYS[1], math.ceil((capacity - units) / refill) + 1000)
return {1, 0}
