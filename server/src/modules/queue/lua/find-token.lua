-- The token lookup, shared by lookup.lua and lookup-peek.lua (it comes
-- between the prelude and their bodies).
local function findToken(hash, now, doTouch)
  local tid = redis.call('GET', tKey(hash))
  if not tid then return nil end
  local r = load(tid)
  if not r then return nil end
  refresh(r, now)
  if doTouch then touch(r, now) end
  flushDirty()
  return r
end
