#!lua flags=allow-oom
-- unpark: give a sink's parked jobs back to the queue once its flushing
-- runs again, at the tail flushers take next, the oldest at the very tail.
-- KEYS: queue, stats, the sink's parked list (keys.h)
-- ARGV: sink
-- Claim parks from the queue's tail, so every parked job is older than
-- each of the sink's jobs still queued: at the tail they keep the sink's
-- order. Returns the jobs given back.
local queue, stats, parked = KEYS[1], KEYS[2], KEYS[3]
local sink = ARGV[1]
local n = redis.call('LLEN', parked)
if n == 0 then
  -- Nothing parked: a count left over (never expected) must not make
  -- flushers call again every second.
  local left = tonumber(redis.call('HGET', stats, 'parked:' .. sink) or '0')
  if left ~= 0 then
    redis.call('HINCRBY', stats, 'parked_records', -left)
    redis.call('HDEL', stats, 'parked:' .. sink)
  end
  return 0
end
if redis.call('LLEN', queue) == 0 then sink_counts_reset(stats) end
-- The head holds the newest: slices from the head, each pushed onto the
-- tail in turn, leave the oldest last of all. The list is read by index
-- and deleted once at the end (prelude.lua).
local records = 0
for i = 0, n - 1, 1000 do
  local part = redis.call('LRANGE', parked, i, math.min(i + 999, n - 1))
  for j = 1, #part do records = records + env_count(part[j]) end
  redis.call('RPUSH', queue, unpack(part))
end
redis.call('DEL', parked)
local left = tonumber(redis.call('HGET', stats, 'parked:' .. sink) or '0')
redis.call('HINCRBY', stats, 'parked_records', -left)
redis.call('HDEL', stats, 'parked:' .. sink)
redis.call('HINCRBY', stats, 'q:' .. sink, records)
return n
