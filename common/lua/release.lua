#!lua flags=allow-oom
-- release: give a flusher's processing list back to the queue, at the
-- tail flushers take next and in its order, when the flusher stops with
-- work in hand (no delivery is counted: nothing went wrong).
-- KEYS: queue, stats, processing, inflight
-- ARGV: none
-- Returns the number of jobs given back.
local queue, stats, processing, inflight = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
-- Exactly as many moves as the list holds: the last one empties it, and
-- nothing touches it after (prelude.lua).
local n, records, moved = redis.call('LLEN', processing), 0, {}
for i = 1, n do
  -- Newest first from the head onto the queue's tail: the oldest lands
  -- last, at the very tail, and is taken first again.
  moved[i] = redis.call('LMOVE', processing, queue, 'LEFT', 'RIGHT')
  records = records + env_count(moved[i])
end
count_sinks(stats, moved, 1)
redis.call('DEL', inflight)
if records > 0 then
  redis.call('HINCRBY', stats, 'inflight_records', -records)
  redis.call('HINCRBY', stats, 'queued_records', records)
end
return n
