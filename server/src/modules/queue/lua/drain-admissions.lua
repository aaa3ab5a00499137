-- drain-admissions: takes the admissions logged since the last drain (see
-- logAdmission in the prelude), oldest first, at most ADMISSION_LOG of them,
-- and gives each the highest arrival seq the line had admitted before it
-- (q:ah, kept here, off the admission path), so whoever drains can tell an
-- admission out of arrival order. Returns { the line's admission total
-- (q:an: drained or dropped so far), the entries as
-- "<seq>:<joined>:<admitted>:<highest before>" }: each entry is handed to
-- exactly one caller, however many instances drain.
local key, highKey, totalKey = qKey('al'), qKey('ah'), qKey('an')
local entries = redis.call('LRANGE', key, 0, ADMISSION_LOG - 1)
if #entries == 0 then return { tonumber(redis.call('GET', totalKey)) or 0, entries } end
local high = tonumber(redis.call('GET', highKey)) or 0
for i, entry in ipairs(entries) do
  entries[i] = entry .. ':' .. high
  local seq = tonumber(string.match(entry, '^(%d+):'))
  if seq > high then high = seq end
end
redis.call('LTRIM', key, #entries, -1)
redis.call('SET', highKey, high)
return { redis.call('INCRBY', totalKey, #entries), entries }
