#!lua flags=allow-oom
-- members: say this flusher lives (or leaves), and count the live ones.
-- KEYS: members
-- ARGV: flusher id, ttl_ms ('0': leave now)
-- Returns how many flushers live. A member's score is the Redis time (ms)
-- its membership lapses, so hosts' clocks do not matter.
local members = KEYS[1]
local id, ttl = ARGV[1], tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
-- Our own entry is written first, so the sweep of lapsed ones can empty
-- the set only when we leave, and then it is the last command on it
-- (prelude.lua).
if ttl > 0 then
  redis.call('ZADD', members, now + ttl, id)
  redis.call('ZREMRANGEBYSCORE', members, '-inf', now)
  redis.call('PEXPIRE', members, ttl)
  return redis.call('ZCARD', members)
end
local before = redis.call('ZCARD', members)
redis.call('ZADD', members, 'XX', 0, id)
return before - redis.call('ZREMRANGEBYSCORE', members, '-inf', now)
