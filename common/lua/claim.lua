#!lua flags=allow-oom
-- claim: move jobs from the queue's tail into a flusher's processing list.
-- KEYS: queue, stats, processing, inflight
-- ARGV: max_records, max_jobs, max_bytes, oversize ('1': the first job
--       moves even when it alone is over the limits, as the flusher's
--       batch is empty)
-- Jobs move oldest first and whole, until the next would pass max_records
-- or max_bytes. Returns the envelopes moved, oldest first, or 0 when none
-- moved because the next job does not fit (the batch is full: flush it).
-- allow-oom: a claim frees queue memory, so draining goes on when Redis
-- is full.
local queue, stats, processing, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local max_records, max_jobs = tonumber(ARGV[1]), tonumber(ARGV[2])
local max_bytes, oversize = tonumber(ARGV[3]), ARGV[4] == '1'

local take, records, bytes, seen, step = 0, 0, 0, 0, 16
local full = false
while not full and take < max_jobs do
  local part = redis.call('LRANGE', queue, -(seen + step), -(seen + 1))
  if #part == 0 then break end
  for i = #part, 1, -1 do
    local v = part[i]
    local n = env_count(v)
    if records + n > max_records or bytes + #v > max_bytes then
      if take == 0 and oversize then take, records, bytes = 1, n, #v end
      full = true
      break
    end
    take, records, bytes = take + 1, records + n, bytes + #v
    if take >= max_jobs then full = true break end
  end
  seen = seen + #part
  if #part < step then break end
  step = math.min(step * 4, 4096)
end
if take == 0 then
  if full then return 0 end
  return {}
end
local moved = redis.call('RPOP', queue, take)
push_all('LPUSH', processing, moved)
if records > 0 then
  redis.call('HINCRBY', stats, 'queued_records', -records)
  redis.call('HINCRBY', stats, 'inflight_records', records)
  redis.call('INCRBY', inflight, records)
end
return moved
