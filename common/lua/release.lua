#!lua flags=allow-oom
-- release: give a flusher's processing list back to the queue, at the
-- tail flushers take next and in its order, when the flusher stops with
-- work in hand (no delivery is counted: nothing went wrong).
-- KEYS: queue, stats, processing, inflight
-- ARGV: none
-- Returns the number of jobs given back.
local queue, stats, processing, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local n, records = 0, 0
while true do
  -- Newest first from the head onto the queue's tail: the oldest lands
  -- last, at the very tail, and is taken first again.
  local v = redis.call('LMOVE', processing, queue, 'LEFT', 'RIGHT')
  if not v then break end
  n, records = n + 1, records + env_count(v)
end
redis.call('DEL', inflight)
if records > 0 then
  redis.call('HINCRBY', stats, 'inflight_records', -records)
  redis.call('HINCRBY', stats, 'queued_records', records)
end
return n
