#!lua flags=no-writes
-- ages: each sink's oldest waiting job, for its age.
-- KEYS: queue, then per sink its parked list (keys.h)
-- ARGV: how many jobs to read at the queue's oldest end, then the sinks'
--       names (KEYS' order)
-- Returns {bound, t1, t2, ...}: per sink the enqueue time (Unix us) of
-- its oldest job among those read and its oldest parked one (0: none
-- seen); bound: when the queue holds more jobs than were read, the
-- enqueue time of the newest one read (the sinks' jobs past it came
-- after it, so have waited less: at most its age), else 0.
local queue, limit = KEYS[1], tonumber(ARGV[1])
local at, out = {}, {0}
for i = 2, #ARGV do
  at[ARGV[i]] = i
  out[i] = 0
end
local part = redis.call('LRANGE', queue, -limit, -1)
for j = #part, 1, -1 do
  local i = at[env_sink(part[j])]
  if i and out[i] == 0 then out[i] = env_time(part[j]) end
end
if #part > 0 and #part == limit and redis.call('LLEN', queue) > limit then
  out[1] = env_time(part[1])
end
for i = 2, #ARGV do
  local v = redis.call('LINDEX', KEYS[i], -1)
  local t = v and env_time(v) or 0
  if t > 0 and (out[i] == 0 or t < out[i]) then out[i] = t end
end
return out
