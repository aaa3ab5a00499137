-- promote: one promotion step of a concert. ARGV[6..7] = concert, now.
local n = promote(tonumber(ARGV[7]))
flushDirty()
return n
