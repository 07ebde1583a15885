#!lua flags=allow-oom
-- claim: move jobs into a flusher's processing list, oldest first: first
-- those parked for sinks whose flushing runs (again), then from the
-- queue's tail.
-- KEYS: queue, stats, processing, inflight, then per configured sink its
--       parked list (keys.h: <p>:parked:<sink>)
-- ARGV: max_records, max_jobs, max_bytes, oversize ('1': the first job
--       moves even when it alone is over the limits, as the flusher's
--       batch is empty), then per sink (KEYS' order) its name and '1'
--       when its flushing is paused, else '0'
-- Jobs move whole, until the next would pass max_records or max_bytes,
-- or max_jobs have moved. A queued job of a paused sink is parked instead
-- (at most PARK_MAX jobs, PARK_MAX_BYTES bytes a call): it leaves the
-- queue for the head of its sink's parked list and stays counted in
-- queued_records (waiting still), not in q:<sink> (the queue list's), but
-- in parked:<sink> and parked_records.
-- Order: claims park from the queue's tail, so every parked job of a sink
-- is older than each of its jobs still queued; so a sink's parked jobs
-- are taken, from the parked list's tail, before any of its queued ones,
-- and the queue is not read at all while a running sink still has parked
-- jobs left (the batch is then full). A view of the pause a second stale
-- therefore cannot reorder a sink's jobs.
-- Returns the envelopes moved, oldest first; or 0 when none moved because
-- the next job does not fit (the batch is full: flush it); or 1 when none
-- moved but some were parked (claim again).
-- allow-oom: a claim frees queue memory, so draining goes on when Redis
-- is full.
local queue, stats, processing, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local max_records, max_jobs = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_bytes, oversize = tonumber(ARGV[3]), ARGV[4] == '1'
local PARK_MAX, PARK_MAX_BYTES = 10000, 16 * 1048576

local moved, records, bytes, full = {}, 0, 0, false
-- Take envelope v (n records) into the batch if it fits: true when taken.
-- A job that does not fit ends the claim (full); the first one of an empty
-- batch is taken alone all the same, and ends it too.
local function take(v, n)
  if #moved < max_jobs and records + n <= max_records and bytes + #v <= max_bytes then
    moved[#moved + 1] = v
    records, bytes = records + n, bytes + #v
    return true
  end
  full = true
  if #moved == 0 and oversize then
    moved[1], records, bytes = v, n, #v
    return true
  end
  return false
end

-- The sinks: name -> {its parked list, paused, its length}.
local sinks, order = {}, {}
for i = 5, #KEYS do
  local a = 5 + (i - 5) * 2
  local s = {key = KEYS[i], paused = ARGV[a + 1] == '1', len = redis.call('LLEN', KEYS[i]),
             taken = 0, taken_records = 0, envs = {}, records = 0}
  sinks[ARGV[a]] = s
  order[#order + 1] = ARGV[a]
end

-- Parked jobs of running sinks first, oldest (the tail) first, read in
-- growing chunks and cut in one LTRIM (prelude.lua).
for _, name in ipairs(order) do
  local s = sinks[name]
  local seen, step = 0, 16
  while not s.paused and not full and seen < s.len do
    local want = math.min(step, s.len - seen, math.max(max_jobs - #moved, 1))
    local part = redis.call('LRANGE', s.key, -(seen + want), -(seen + 1))
    seen = seen + #part
    for i = #part, 1, -1 do
      local n = env_count(part[i])
      if take(part[i], n) then
        s.taken, s.taken_records = s.taken + 1, s.taken_records + n
      end
      if full then break end
    end
    if #part < want then break end
    step = math.min(step * 4, 4096)
  end
end

-- Then the queue, unless the batch is full (so a running sink's parked
-- jobs are all taken: its queued ones may follow).
local len = redis.call('LLEN', queue)
local from_queue, parked, parked_bytes, step, seen, by = 0, 0, 0, 16, 0, {}
while not full and #moved < max_jobs and seen < len and parked < PARK_MAX and
      parked_bytes < PARK_MAX_BYTES do
  local want = math.min(step, max_jobs - #moved, len - seen, PARK_MAX - parked)
  local part = redis.call('LRANGE', queue, -(seen + want), -(seen + 1))
  seen = seen + #part
  for i = #part, 1, -1 do
    local v = part[i]
    local n = env_count(v)
    local s = sinks[env_sink(v)]
    if s and s.paused then
      s.envs[#s.envs + 1] = v
      s.records = s.records + n
      parked, parked_bytes = parked + 1, parked_bytes + #v
      from_queue = from_queue + 1
      tally_sink(by, v, n)
      if parked_bytes >= PARK_MAX_BYTES then break end
    elseif take(v, n) then
      from_queue = from_queue + 1
      tally_sink(by, v, n)
      if full then break end
    else
      break
    end
  end
  if #part < want then break end
  step = math.min(step * 4, 4096)
end

-- What left the queue is its tail, together (a job that did not fit
-- stays: it is newer than all of them).
if from_queue > 0 then
  redis.call('LTRIM', queue, 0, -(from_queue + 1))
  -- Per sink from the tally; an emptied queue sets them all to 0 instead.
  if from_queue == len then sink_counts_reset(stats) else add_sink_counts(stats, by, -1) end
end
for _, name in ipairs(order) do
  local s = sinks[name]
  if s.taken > 0 then
    redis.call('LTRIM', s.key, 0, -(s.taken + 1))
    redis.call('HINCRBY', stats, 'parked:' .. name, -s.taken_records)
    redis.call('HINCRBY', stats, 'parked_records', -s.taken_records)
  end
  if #s.envs > 0 then
    push_all('LPUSH', s.key, s.envs)
    redis.call('HINCRBY', stats, 'parked:' .. name, s.records)
    redis.call('HINCRBY', stats, 'parked_records', s.records)
  end
end
if #moved > 0 then push_all('LPUSH', processing, moved) end
if records > 0 then
  redis.call('HINCRBY', stats, 'queued_records', -records)
  redis.call('HINCRBY', stats, 'inflight_records', records)
  redis.call('INCRBY', inflight, records)
end
if #moved == 0 then
  if full then return 0 end
  if parked > 0 then return 1 end
  return {}
end
return moved
