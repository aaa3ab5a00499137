-- lookup: a token by hash. ARGV[6..8] = hash, now, touch ('1' or '0').
local r = findToken(ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1')
if not r then return false end
return snapshot(r)
