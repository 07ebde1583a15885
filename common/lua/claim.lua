#!lua flags=allow-oom
-- claim: move jobs from the queue's tail into a flusher's processing list.
-- KEYS: queue, stats, processing, inflight
-- ARGV: max_records, max_jobs, max_bytes, oversize ('1': the first job
--       moves even when it alone is over the limits, as the flusher's
--       batch is empty)
-- Jobs move oldest first and whole, until the next would pass max_records
-- or max_bytes, or max_jobs have moved. Returns the envelopes moved,
-- oldest first, or 0 when none moved because the next job does not fit
-- (the batch is full: flush it).
-- allow-oom: a claim frees queue memory, so draining goes on when Redis
-- is full.
local queue, stats, processing, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local max_records, max_jobs = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_bytes, oversize = tonumber(ARGV[3]), ARGV[4] == '1'

-- Jobs are read from the tail in growing chunks, each envelope once, and
-- then cut off the tail in one LTRIM: nothing is popped and pushed back,
-- and the queue is not touched after the command that may empty it
-- (prelude.lua: a cluster slot being migrated).
local len = redis.call('LLEN', queue)
local moved, records, bytes, step, seen, by = {}, 0, 0, 16, 0, {}
local full = false
while not full and #moved < max_jobs and seen < len do
  local want = math.min(step, max_jobs - #moved, len - seen)
  local part = redis.call('LRANGE', queue, -(seen + want), -(seen + 1))
  seen = seen + #part
  for i = #part, 1, -1 do
    local v = part[i]
    local n = env_count(v)
    if records + n > max_records or bytes + #v > max_bytes then
      if #moved == 0 and oversize then
        moved[1], records, bytes = v, n, #v
        tally_sink(by, v, n)
      end
      full = true
      break
    end
    moved[#moved + 1] = v
    records, bytes = records + n, bytes + #v
    tally_sink(by, v, n)
  end
  if #part < want then break end
  step = math.min(step * 4, 4096)
end
if #moved == 0 then
  if full then return 0 end
  return {}
end
redis.call('LTRIM', queue, 0, -(#moved + 1))
push_all('LPUSH', processing, moved)
if records > 0 then
  redis.call('HINCRBY', stats, 'queued_records', -records)
  redis.call('HINCRBY', stats, 'inflight_records', records)
  -- Per sink from the tally the loop kept; an emptied queue sets them all
  -- to 0 instead.
  if #moved == len then sink_counts_reset(stats) else add_sink_counts(stats, by, -1) end
  redis.call('INCRBY', inflight, records)
end
return moved
