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

-- Jobs are popped in growing chunks and each envelope is read once; the
-- part of the last chunk that does not fit goes back to the tail, in its
-- order.
local moved, records, bytes, step = {}, 0, 0, 16
local full = false
while not full and #moved < max_jobs do
  local part = redis.call('RPOP', queue, math.min(step, max_jobs - #moved))
  if not part then break end
  for i = 1, #part do
    local v = part[i]
    local n = env_count(v)
    if records + n > max_records or bytes + #v > max_bytes then
      local back = i
      if #moved == 0 and oversize then
        moved[1], records, bytes, back = v, n, #v, i + 1
      end
      local rest = {}
      for r = #part, back, -1 do rest[#rest + 1] = part[r] end
      if #rest > 0 then push_all('RPUSH', queue, rest) end
      full = true
      break
    end
    moved[#moved + 1] = v
    records, bytes = records + n, bytes + #v
  end
  if #part < step then break end
  step = math.min(step * 4, 4096)
end
if #moved == 0 then
  if full then return 0 end
  return {}
end
push_all('LPUSH', processing, moved)
if records > 0 then
  redis.call('HINCRBY', stats, 'queued_records', -records)
  redis.call('HINCRBY', stats, 'inflight_records', records)
  redis.call('INCRBY', inflight, records)
end
return moved
