-- promote: one promotion step of a concert, after the opening draw if it is
-- due. ARGV[6..8] = concert, now, a fresh seed for the draw.
drawIfDue(tonumber(ARGV[7]), ARGV[8])
local n = promote(tonumber(ARGV[7]))
flushDirty()
return n
