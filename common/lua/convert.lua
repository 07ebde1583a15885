#!lua flags=allow-oom
-- convert: move a dead letter from the 0.1 layout (one hash per job) into
-- the bounded store, keeping its place in the dead list.
-- KEYS: the job's 0.1 dead-letter hash, deadenv, deadinfo, stats
-- ARGV: job id
-- Returns 1 moved, 0 nothing to move.
local legacy, deadenv, deadinfo, stats = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local id = ARGV[1]
local d = redis.call('HMGET', legacy, 'envelope', 'error', 'failed_at')
if not d[1] then return 0 end
redis.call('HSET', deadenv, id, d[1])
redis.call('HSET', deadinfo, id, cjson.encode({error = d[2] or '', failed_at = d[3] or '',
                                               records = env_count(d[1])}))
redis.call('HINCRBY', stats, 'dead_bytes', #d[1])
redis.call('DEL', legacy)
return 1
