#!lua flags=no-writes
-- ages: each sink's oldest waiting job, for its age.
-- KEYS: queue, then per sink its parked list (keys.h)
-- ARGV: how many jobs, and how many bytes, to read at most at the queue's
--       oldest end, then the sinks' names (KEYS' order)
-- Returns {bound, t1, t2, ...}: per sink the enqueue time (Unix us) of
-- its oldest job among those read and its oldest parked one (0: none
-- seen); bound: when the queue holds more jobs than were read, the
-- enqueue time of the newest one read (the sinks' jobs past it came
-- after it, so have waited less: at most its age), else 0.
local queue, limit, max_bytes = KEYS[1], tonumber(ARGV[1]), tonumber(ARGV[2])
local at, out = {}, {0}
for i = 3, #ARGV do
  at[ARGV[i]] = i - 1
  out[i - 1] = 0
end
local len = redis.call('LLEN', queue)
local seen, bytes, last, step = 0, 0, 0, 2
while seen < len and seen < limit and bytes < max_bytes do
  local want = math.min(step, limit - seen, len - seen)
  step = math.min(step * 2, 32)
  local part = redis.call('LRANGE', queue, -(seen + want), -(seen + 1))
  if #part == 0 then break end
  seen = seen + #part
  for j = #part, 1, -1 do
    local v = part[j]
    bytes = bytes + #v
    last = env_time(v)
    local i = at[env_sink(v)]
    if i and out[i] == 0 then out[i] = last end
  end
end
if seen < len then out[1] = last end
for i = 2, #KEYS do
  local v = redis.call('LINDEX', KEYS[i], -1)
  local t = v and env_time(v) or 0
  if t > 0 and (out[i] == 0 or t < out[i]) then out[i] = t end
end
return out
