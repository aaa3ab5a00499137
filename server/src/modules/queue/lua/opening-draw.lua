-- opening-draw: the record of the concert's opening draw, or false while
-- none happened. ARGV[6] = concert. Returns { drawn at, seed, token ids in
-- drawn order }.
local draw = redis.call('HMGET', qKey('draw'), 'at', 'seed')
if not draw[1] then return false end
return { draw[1], draw[2], redis.call('LRANGE', qKey('dorder'), 0, -1) }
