-- take-limit: the rate-limit buckets of a call that no queue token
-- authenticates (opening a read-only session), kept under a scope named in
-- place of a concert. ARGV[6..13] = the call's limits (bucket.lua's
-- takeCallLimit); ARGV[14..15] = user, now. Returns the refusal, or false.
return takeCallLimit(6, ARGV[14], tonumber(ARGV[15])) or false
