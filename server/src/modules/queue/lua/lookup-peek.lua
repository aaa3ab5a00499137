-- lookup-peek: a lookup that also reads one seat's gate entry (KEYS[2], in
-- the token's concert's slot, built by redis-seat-gate.ts), so a hold is
-- authenticated and gated in one round trip.
local seat = redis.call('HMGET', KEYS[2], 'v', 's', 'u', 'o')
local r = findToken(ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1')
if not r then return { false, seat } end
return { snapshot(r), seat }
