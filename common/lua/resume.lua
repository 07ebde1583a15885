#!lua flags=allow-oom
-- resume: read a flusher's processing list, to take it up again.
-- KEYS: processing, deliveries
-- ARGV: mode: 'take' (after a restart or a takeover: count a delivery) or
--       'peek' (after a doubt in the same process: count nothing)
-- Returns {envelopes oldest first, deliveries of each}.
-- A job's deliveries count how often its batch was taken up again after
-- its flusher stopped or vanished. When the oldest job had already been
-- taken up twice, its holder was committing it alone (flusher/drain.c), so
-- only that job is counted again: the jobs behind it were not in play.
local processing, deliveries = KEYS[1], KEYS[2]
local take = ARGV[1] == 'take'
local items = redis.call('LRANGE', processing, 0, -1)
local out, counts = {}, {}
local n = #items
if n == 0 then return {out, counts} end
local oldest = env_id(items[n])
local solo = oldest ~= '' and tonumber(redis.call('HGET', deliveries, oldest) or '0') >= 2
for i = n, 1, -1 do
  local v = items[i]
  local id = env_id(v)
  local d = 0
  if id ~= '' then
    if take and (i == n or not solo) then
      d = redis.call('HINCRBY', deliveries, id, 1)
    else
      d = tonumber(redis.call('HGET', deliveries, id) or '0')
    end
  end
  out[#out + 1] = v
  counts[#counts + 1] = d
end
return {out, counts}
