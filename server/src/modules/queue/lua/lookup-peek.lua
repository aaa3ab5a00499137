-- lookup-peek: a lookup that also reads one seat's gate entry (KEYS[2], in
-- the token's concert's slot, built by redis-seat-gate.ts), so a hold is
-- authenticated, rate limited and gated in one round trip. ARGV as lookup.lua.
-- Returns { snapshot or false, seat entry, refusal or false }.
local seat = redis.call('HMGET', KEYS[2], 'v', 's', 'u', 'o')
local now = tonumber(ARGV[7])
local r = findToken(ARGV[6], now, ARGV[8] == '1')
if not r then return { false, seat, false } end
return { snapshot(r), seat, takeCallLimit(9, r.u, now) or false }
