-- drain-admissions: takes the admissions logged since the last drain (see
-- logAdmission in the prelude), oldest first, at most ADMISSION_LOG of them.
-- Returns { admissions ever recorded, the entries }: each entry is handed to
-- exactly one caller, however many instances drain.
local key = qKey('al')
local entries = redis.call('LRANGE', key, 0, ADMISSION_LOG - 1)
if #entries > 0 then redis.call('LTRIM', key, #entries, -1) end
return { tonumber(redis.call('GET', qKey('an'))) or 0, entries }
