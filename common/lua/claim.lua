#!lua flags=allow-oom
-- claim: move jobs from the queue's tail into a flusher's processing list.
-- KEYS: queue, stats, processing, inflight, then per sink whose flushing
--       is paused its parked list (keys.h: <p>:parked:<sink>)
-- ARGV: max_records, max_jobs, max_bytes, oversize ('1': the first job
--       moves even when it alone is over the limits, as the flusher's
--       batch is empty), then the paused sinks' names (KEYS' order)
-- Jobs move oldest first and whole, until the next would pass max_records
-- or max_bytes, or max_jobs have moved. A job of a paused sink is parked
-- instead (at most PARK_MAX a call): it leaves the queue for its sink's
-- parked list, in order, and stays counted in queued_records (waiting
-- still) but not in q:<sink> (the list's own): parked:<sink> and
-- parked_records count it. Returns the envelopes moved, oldest first; or
-- 0 when none moved because the next job does not fit (the batch is full:
-- flush it); or 1 when none moved but some were parked (claim again).
-- allow-oom: a claim frees queue memory, so draining goes on when Redis
-- is full.
local queue, stats, processing, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local max_records, max_jobs = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_bytes, oversize = tonumber(ARGV[3]), ARGV[4] == '1'
local PARK_MAX = 10000
-- sink -> {its parked list, envelopes to park, their records}
local paused = {}
for i = 5, #ARGV do paused[ARGV[i]] = {key = KEYS[i], envs = {}, records = 0} end

-- Jobs are read from the tail in growing chunks, each envelope once, and
-- then cut off the tail in one LTRIM: nothing is popped and pushed back,
-- and the queue is not touched after the command that may empty it
-- (prelude.lua: a cluster slot being migrated).
local len = redis.call('LLEN', queue)
local moved, records, bytes, step, seen, by = {}, 0, 0, 16, 0, {}
local full, parked = false, 0
while not full and #moved < max_jobs and seen < len and parked < PARK_MAX do
  local want = math.min(step, max_jobs - #moved, len - seen, PARK_MAX - parked)
  local part = redis.call('LRANGE', queue, -(seen + want), -(seen + 1))
  seen = seen + #part
  for i = #part, 1, -1 do
    local v = part[i]
    local n = env_count(v)
    local p = next(paused) and paused[env_sink(v)]
    if p then
      p.envs[#p.envs + 1] = v
      p.records = p.records + n
      parked = parked + 1
      tally_sink(by, v, n)
    elseif records + n > max_records or bytes + #v > max_bytes then
      if #moved == 0 and oversize then
        moved[1], records, bytes = v, n, #v
        tally_sink(by, v, n)
      end
      full = true
      break
    else
      moved[#moved + 1] = v
      records, bytes = records + n, bytes + #v
      tally_sink(by, v, n)
    end
  end
  if #part < want then break end
  step = math.min(step * 4, 4096)
end
-- What leaves the queue is its tail: the jobs moved and parked, together
-- (the job that did not fit, if any, stays: it is newer than all of them).
local taken = #moved + parked
if taken == 0 then
  if full then return 0 end
  return {}
end
redis.call('LTRIM', queue, 0, -(taken + 1))
if #moved > 0 then push_all('LPUSH', processing, moved) end
-- Per sink from the tally the loop kept; an emptied queue sets them all
-- to 0 instead.
if taken == len then sink_counts_reset(stats) else add_sink_counts(stats, by, -1) end
for s, p in pairs(paused) do
  if #p.envs > 0 then
    push_all('LPUSH', p.key, p.envs)
    redis.call('HINCRBY', stats, 'parked:' .. s, p.records)
    redis.call('HINCRBY', stats, 'parked_records', p.records)
  end
end
if records > 0 then
  redis.call('HINCRBY', stats, 'queued_records', -records)
  redis.call('HINCRBY', stats, 'inflight_records', records)
  redis.call('INCRBY', inflight, records)
end
if #moved == 0 then
  if full then return 0 end
  return 1
end
return moved
