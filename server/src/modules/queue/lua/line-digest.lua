-- line-digest: what a watcher needs to derive every position of one concert's
-- line without asking per token. A waiter's position is 1 + (its seq - head)
-- - (departed seqs between the head and it), where head is the first waiter's
-- arrival seq (the next seq to be given when nobody waits). ARGV[6..7] =
-- concert, the departure count the caller has seen (-1: none). Returns the
-- version, head, waiting count, average admission, the departure count now,
-- either (reset 0) the seqs that departed since, or (reset 1) every
-- departed seq above the head, when the log no longer covers the caller, and
-- whether admission is paused (1 or 0).
local c, after = ARGV[6], tonumber(ARGV[7])
local wKey = qKey('w')
local head = tonumber(redis.call('ZRANGE', wKey, 0, 0, 'WITHSCORES')[2])
if not head then head = (tonumber(redis.call('GET', qKey('seq'))) or 0) + 1 end
local n = tonumber(redis.call('GET', qKey('dn'))) or 0
local reset, seqs = 1, nil
if after >= 0 and after <= n and n - after <= DEPARTURE_LOG then
  local oldest = tonumber(redis.call('ZRANGE', qKey('dl'), 0, 0, 'WITHSCORES')[2]) or (n + 1)
  if oldest <= after + 1 then
    reset = 0
    seqs = redis.call('ZRANGEBYSCORE', qKey('dl'), '(' .. after, '+inf')
  end
end
if reset == 1 then seqs = redis.call('ZRANGEBYSCORE', qKey('ds'), '(' .. head, '+inf') end
local version = tonumber(redis.call('GET', qKey('ver'))) or 0
local avg = tonumber(redis.call('GET', qKey('avg'))) or TTL
local paused = 0
if PAUSED then paused = 1 end
return { version, head, redis.call('ZCARD', wKey), avg, n, reset, seqs, paused }
