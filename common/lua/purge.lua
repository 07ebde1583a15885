#!lua flags=allow-oom
-- purge: on an operator's word, drop the oldest jobs parked for a sink
-- whose flushing is paused. Each one's status turns "failed" with the
-- reason given, and its records leave the counts; purged jobs are not
-- dead-lettered (purged means gone).
-- KEYS: stats, deliveries, the sink's parked list, waiters, done, then
--       per job its status bucket and its <p>:job:<id> (keys.h)
-- ARGV: sink, status_ttl_s, then per job, oldest first: list id (what
--       env_id reads), envelope length, status field (the id's 16 bytes),
--       its failed status JSON
-- The jobs must be exactly the list's tail, in order: otherwise nothing
-- is written and {0, position} is returned (read the list again).
-- Returns {1, records purged}.
local stats, deliveries, parked, waiters, done = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local sink, ttl = ARGV[1], ARGV[2]
local n = (#KEYS - 5) / 2
local W = 4
if n < 1 or redis.call('LLEN', parked) < n then return {0, 0} end
-- The tail, newest of the n first: job k (oldest first) is tail[n - k + 1].
local tail = redis.call('LRANGE', parked, -n, -1)
local records, ids, live = 0, {}, {}
for k = 1, n do
  local v, a = tail[n - k + 1], 2 + (k - 1) * W
  if env_id(v) ~= ARGV[a + 1] or #v ~= tonumber(ARGV[a + 2]) then return {0, k} end
  records = records + env_count(v)
  if ARGV[a + 1] ~= '' then ids[#ids + 1] = ARGV[a + 1] end
end
local hit = waited_for(waiters, ids)
for k = 1, n do
  local a = 2 + (k - 1) * W
  local bucket, job = KEYS[4 + 2 * k], KEYS[5 + 2 * k]
  if live[bucket] == nil then live[bucket] = redis.call('EXISTS', bucket) == 1 and {} end
  if live[bucket] then
    local fields = live[bucket]
    fields[#fields + 1] = ARGV[a + 3]
    fields[#fields + 1] = 'f'
    redis.call('SET', job, ARGV[a + 4], 'EX', ttl)
  else
    redis.call('SET', job, ARGV[a + 4], 'XX', 'EX', ttl)
  end
end
write_buckets(live, ttl)
forget_deliveries(deliveries, ids)
redis.call('LTRIM', parked, 0, -(n + 1))
redis.call('HINCRBY', stats, 'queued_records', -records)
redis.call('HINCRBY', stats, 'parked_records', -records)
redis.call('HINCRBY', stats, 'parked:' .. sink, -records)
redis.call('HINCRBY', stats, 'purged_records', records)
tell_waiters(done, hit)
return {1, records}
