#!lua
-- requeue: put a dead-lettered job back at the tail flushers take next,
-- with a fresh delivery count and a "queued" status.
-- KEYS: queue, stats, dead, deadenv, deadinfo, deliveries, status key,
--       the job's 0.1 dead-letter hash
-- ARGV: job id, status JSON, status_ttl_s
-- Returns 1 done, 0 no such dead job.
local queue, stats, dead, deadenv, deadinfo = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deliveries, status, legacy = KEYS[6], KEYS[7], KEYS[8]
local id, json, ttl = ARGV[1], ARGV[2], ARGV[3]
local v = redis.call('HGET', deadenv, id)
local old = false
if not v then
  v = redis.call('HGET', legacy, 'envelope')
  old = true
end
if not v then return 0 end
redis.call('RPUSH', queue, v)
redis.call('HINCRBY', stats, 'queued_records', env_count(v))
redis.call('LREM', dead, 1, id)
if old then
  redis.call('DEL', legacy)
else
  redis.call('HDEL', deadenv, id)
  redis.call('HDEL', deadinfo, id)
  redis.call('HINCRBY', stats, 'dead_bytes', -#v)
end
redis.call('HDEL', deliveries, id)
redis.call('SET', status, json, 'EX', ttl)
return 1
