#!lua flags=allow-oom
-- release: give a flusher's processing list back, in its order, when the
-- flusher stops with work in hand (no delivery is counted: nothing went
-- wrong): to the queue's tail flushers take next, or, for a sink with
-- parked jobs, to its parked list's tail (these jobs are older than every
-- parked one, and are taken first again: claim.lua).
-- KEYS: queue, stats, processing, inflight, then per configured sink its
--       parked list
-- ARGV: the sinks' names (KEYS' order)
-- Returns the number of jobs given back.
local queue, stats, processing, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local parked = {}
for i = 5, #KEYS do
  if redis.call('LLEN', KEYS[i]) > 0 then parked[ARGV[i - 4]] = {key = KEYS[i], envs = {}} end
end
-- The whole list, newest first from the head: pushed in that order onto
-- a tail, the oldest lands last, at the very tail, and is taken first.
-- Read once and deleted once at the end (prelude.lua).
local n, records, back = redis.call('LLEN', processing), 0, {}
for i = 0, n - 1, 1000 do
  for _, v in ipairs(redis.call('LRANGE', processing, i, math.min(i + 999, n - 1))) do
    records = records + env_count(v)
    local p = parked[env_sink(v)]
    if p then p.envs[#p.envs + 1] = v else back[#back + 1] = v end
  end
end
if n == 0 then
  redis.call('DEL', inflight)
  return 0
end
push_all('RPUSH', queue, back)
count_sinks(stats, back, 1)
for s, p in pairs(parked) do
  if #p.envs > 0 then
    push_all('RPUSH', p.key, p.envs)
    local r = 0
    for _, v in ipairs(p.envs) do r = r + env_count(v) end
    redis.call('HINCRBY', stats, 'parked:' .. s, r)
    redis.call('HINCRBY', stats, 'parked_records', r)
  end
end
redis.call('DEL', processing)
redis.call('DEL', inflight)
if records > 0 then
  redis.call('HINCRBY', stats, 'inflight_records', -records)
  redis.call('HINCRBY', stats, 'queued_records', records)
end
return n
