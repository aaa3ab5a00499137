-- lookup: a token by hash. ARGV[6..8] = hash, now, touch ('1' or '0');
-- ARGV[9..16] = the call's rate limits (bucket.lua's takeCallLimit), taken
-- from a found token's user. Returns { snapshot or false, refusal or false }.
local now = tonumber(ARGV[7])
local r = findToken(ARGV[6], now, ARGV[8] == '1')
if not r then return { false, false } end
return { snapshot(r), takeCallLimit(9, r.u, now) or false }
