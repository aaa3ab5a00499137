-- touch-many: counts as activity for many waiters of one concert at once (the
-- watch streams' batched touches), in one ZADD. Only waiters still within
-- their idle window are touched (a place already lost is not given back;
-- the next promote evicts it), and GT never moves activity backwards, as
-- touch() does for one. ARGV[6..7] = concert, now; ARGV[8..] = token ids.
-- Returns how many were touched.
local key, now = qKey('seen'), tonumber(ARGV[7])
local cutoff = now - IDLE
local args = {}
for i = 8, #ARGV do
  local seen = tonumber(redis.call('ZSCORE', key, ARGV[i]))
  if seen and seen >= cutoff and seen < now then
    args[#args + 1] = now
    args[#args + 1] = ARGV[i]
  end
end
if #args == 0 then return 0 end
redis.call('ZADD', key, 'XX', 'GT', unpack(args))
return #args / 2
