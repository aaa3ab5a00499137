-- snapshots: many tokens of one concert. ARGV[6..8] = concert, now, touch;
-- ARGV[9..] = token ids.
local c, now, doTouch = ARGV[6], tonumber(ARGV[7]), ARGV[8] == '1'
local found = {}
for i = 9, #ARGV do
  local r = load(ARGV[i])
  if r and r.c == c then
    refresh(r, now)
    if doTouch then touch(r, now) end
    found[i] = r
  end
end
flushDirty()
-- Snapshots are taken after every token was refreshed, so the positions in
-- one reply agree with each other.
local out = {}
for i = 9, #ARGV do
  if found[i] then out[#out + 1] = snapshot(found[i]) else out[#out + 1] = false end
end
return out
