-- configure: sets the concert's sale settings that the scripts enforce (see
-- the prelude's CFG). ARGV[6..11] = concert, opens at (ms, 0 for none),
-- paused ('1' or '0'), max admitted, admission ms, hold ms (0: the server's).
-- Refuses (returns 0, changing nothing) to move the opening once the lobby
-- has been drawn; returns 1 otherwise. A change that lets admission continue
-- takes effect at the next promotion.
local opensAt = tonumber(ARGV[7])
if DRAWN and opensAt ~= OPENS_AT then return 0 end
redis.call('HSET', qKey('cfg'), 'open', opensAt, 'paused', ARGV[8], 'max', ARGV[9],
  'ttl', ARGV[10], 'hold', ARGV[11])
markDirty()
flushDirty()
return 1
