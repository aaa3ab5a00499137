-- Token buckets (see token-bucket.ts, whose takeToken this mirrors exactly),
-- taken inside the queue's scripts: a limited call's buckets are keys of its
-- concert's line (same hash tag), so authenticating the call and taking from
-- its buckets is one script, one round trip. Expects the prelude's qKey(part).
--
-- takeBucket: one bucket, a hash {u = units, at = ms} (absent means full).
-- Returns allowed (1/0) and the wait for the next token (ms; 0 when allowed).
-- A refusal writes nothing. The key expires when the bucket is full again
-- (plus a second for clock skew between instances), so idle buckets vanish.
local function takeBucket(key, now, capacity, refill, period)
  local units, at = capacity, now
  local saved = redis.call('HMGET', key, 'u', 'at')
  if saved[1] then
    units = tonumber(saved[1])
    at = tonumber(saved[2])
  end
  if now > at then
    units = math.min(capacity, units + (now - at) * refill)
    at = now
  end
  if units < period then
    return 0, math.ceil((period - units) / refill)
  end
  units = units - period
  redis.call('HSET', key, 'u', units, 'at', at)
  redis.call('PEXPIRE', key, math.ceil((capacity - units) / refill) + 1000)
  return 1, 0
end

-- takeCallLimit: the buckets of one call, described by ARGV[i..i+7] as
-- callLimitArgs (rate-limiter.ts) writes them: action, the user bucket's
-- capacity, refill and period, the address's id, capacity, refill and period;
-- empty strings where a bucket does not apply (an empty action: no limit).
-- `user` is the caller's user id, known to the script (from the token's record
-- or the issue's verified user). Both buckets are taken, so a flood spends
-- both. Returns nil when the call may go on, else {scope ('u' or 'a'), wait}
-- of the refusal with the longer wait.
local function takeCallLimit(i, user, now)
  local action = ARGV[i]
  if action == nil or action == '' then return nil end
  local refusal = nil
  local function take(scope, id, capacity, refill, period)
    if capacity == '' then return end
    local ok, wait = takeBucket(qKey('rl:' .. action .. ':' .. scope .. ':' .. id), now,
      tonumber(capacity), tonumber(refill), tonumber(period))
    if ok == 0 and (refusal == nil or wait > refusal[2]) then refusal = { scope, wait } end
  end
  take('u', user, ARGV[i + 1], ARGV[i + 2], ARGV[i + 3])
  take('a', ARGV[i + 4], ARGV[i + 5], ARGV[i + 6], ARGV[i + 7])
  return refusal
end
