#!lua flags=allow-oom
-- takeover: move the processing list of a flusher whose heartbeat expired
-- to this flusher, which holds none.
-- KEYS: victim heartbeat, victim processing, victim inflight, registry,
--       own processing, own inflight
-- ARGV: victim id
-- Returns 1 taken, 0 nothing to take (the victim is alive, or had nothing:
-- then it leaves the registry), -1 this flusher still holds a list.
local vheartbeat, vprocessing, vinflight = KEYS[1], KEYS[2], KEYS[3]
local registry, processing, inflight = KEYS[4], KEYS[5], KEYS[6]
local victim = ARGV[1]
if redis.call('EXISTS', vheartbeat) == 1 then return 0 end
if redis.call('EXISTS', vprocessing) == 0 then
  redis.call('SREM', registry, victim)
  redis.call('DEL', vinflight)
  return 0
end
if redis.call('EXISTS', processing) == 1 then return -1 end
redis.call('RENAME', vprocessing, processing)
local n = tonumber(redis.call('GET', vinflight) or '0')
redis.call('DEL', vinflight)
if n ~= 0 then redis.call('INCRBY', inflight, n) end
return 1
