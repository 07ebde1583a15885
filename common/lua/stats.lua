#!lua flags=no-writes
-- stats: the queue's gauges from O(1) commands.
-- KEYS: queue, stats, dead
-- ARGV: none
-- Returns {queued_records, inflight_records, queued_jobs, dead_jobs,
-- oldest_enqueued_us} (the oldest job is the queue's tail).
local queue, stats, dead = KEYS[1], KEYS[2], KEYS[3]
local s = redis.call('HMGET', stats, 'queued_records', 'inflight_records')
local jobs = redis.call('LLEN', queue)
local oldest = 0
if jobs > 0 then oldest = env_time(redis.call('LINDEX', queue, -1)) end
return {tonumber(s[1] or 0), tonumber(s[2] or 0), jobs, redis.call('LLEN', dead), oldest}
