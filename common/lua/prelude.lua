-- Shared by every script, after its shebang line and the envelope offsets
-- (ENV_HEAD, ENV_COUNT, ENV_TIME, ENV_ID, ENV_ID_LEN), which the C side
-- writes from envelope.h so that both read envelopes at the same bytes.
--
-- A rule every script keeps: no command touches a key after an earlier
-- command of the same script may have emptied (so deleted) it. While a
-- Redis Cluster slot migrates, the source node refuses, in the middle of
-- a script, any command on a key of that slot it does not hold, and the
-- script stops there with its earlier writes made. (A script runs at all
-- only when every key it declares is present; test_cluster.py runs each
-- emptying path on a migrating slot.)

-- An envelope's record count: 0 when it is too short to hold one.
local function env_count(v)
  if #v < ENV_HEAD then return 0 end
  local a, b, c, d = string.byte(v, ENV_COUNT, ENV_COUNT + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- An envelope's enqueue time in Unix microseconds, or 0.
local function env_time(v)
  if #v < ENV_HEAD then return 0 end
  local t = 0
  for i = ENV_TIME, ENV_TIME + 7 do t = t * 256 + string.byte(v, i) end
  return t
end

-- An envelope's job id, or '' when it has none where one belongs.
local function env_id(v)
  if #v < ENV_ID + ENV_ID_LEN - 1 or string.byte(v, ENV_ID - 2) ~= 0xd9
     or string.byte(v, ENV_ID - 1) ~= ENV_ID_LEN then
    return ''
  end
  return string.sub(v, ENV_ID, ENV_ID + ENV_ID_LEN - 1)
end

-- unpack() is bounded by Lua's stack: push long lists in slices.
local function push_all(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end
