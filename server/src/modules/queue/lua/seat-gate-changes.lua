-- seat-gate-changes: the logged changes of several dates. KEYS come in pairs
-- (version hash, log) per date; ARGV[i] is the version after which that
-- date's changes are wanted. A caller the trimmed log no longer covers gets
-- no entries (it rebuilds).
local out = {}
for i = 1, #KEYS, 2 do
  local head = redis.call('HMGET', KEYS[i], 'e', 'n')
  local after = tonumber(ARGV[(i + 1) / 2])
  local entries = {}
  if head[1] and tonumber(head[2]) > after then
    local first = redis.call('ZRANGE', KEYS[i + 1], 0, 0, 'WITHSCORES')
    if first[2] and tonumber(first[2]) <= after + 1 then
      entries = redis.call('ZRANGEBYSCORE', KEYS[i + 1], '(' .. ARGV[(i + 1) / 2], '+inf')
    end
  end
  out[#out + 1] = { head[1] or '', head[2] or '0', entries }
end
return out
