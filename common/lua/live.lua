#!lua flags=no-writes
-- live: which of the given flushers' heartbeats are alive.
-- KEYS: flushers' heartbeat keys (keys.h <p>:heartbeat:<fid>)
-- ARGV: none
-- Returns 1 or 0 per key, in KEYS' order.
local out = {}
for i = 1, #KEYS do out[i] = redis.call('EXISTS', KEYS[i]) end
return out
