#!lua
-- requeue: put a dead-lettered job back at the tail flushers take next,
-- with a fresh delivery count and a "queued" status.
-- KEYS: queue, stats, dead, deadenv, deadinfo, deliveries, the job's
--       <p>:job:<id>, the job's 0.1 dead-letter hash, its status bucket
-- ARGV: job id, status JSON, status_ttl_s, status field (the id's 16
--       bytes), compact status
-- The status goes back into the job's bucket while that lives (the
-- failed JSON beside it goes), else it is kept whole at <p>:job:<id>.
-- Returns 1 done, 0 no such dead job.
local queue, stats, dead, deadenv, deadinfo = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local deliveries, status, legacy, bucket = KEYS[6], KEYS[7], KEYS[8], KEYS[9]
local id, json, ttl, field, compact = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local v = redis.call('HGET', deadenv, id)
local old = false
if not v then
  v = redis.call('HGET', legacy, 'envelope')
  old = true
end
if not v then return 0 end
redis.call('RPUSH', queue, v)
redis.call('HINCRBY', stats, 'queued_records', env_count(v))
count_sinks(stats, {v}, 1)
redis.call('LREM', dead, 1, id)
if old then
  redis.call('DEL', legacy)
else
  redis.call('HDEL', deadenv, id)
  redis.call('HDEL', deadinfo, id)
  redis.call('HINCRBY', stats, 'dead_bytes', -#v)
end
redis.call('HDEL', deliveries, id)
if redis.call('EXISTS', bucket) == 1 then
  redis.call('HSET', bucket, field, compact)
  redis.call('EXPIRE', bucket, ttl, 'GT')
  redis.call('DEL', status)
else
  redis.call('SET', status, json, 'EX', ttl)
end
return 1
