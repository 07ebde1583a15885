-- Shared by every script, after its shebang line and the envelope offsets
-- (ENV_HEAD, ENV_COUNT, ENV_TIME, ENV_ID, ENV_ID_LEN, ENV_SINK*, ENV_SEQ:
-- 1-based positions), which the C side
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

-- An envelope's sink name, or '' (version 1 has no shape before it,
-- version 3 a sequence and an operation more).
local function env_sink(v)
  local at = ENV_SINK
  if string.byte(v, 1) == 1 then at = ENV_SINK_V1 end
  if string.byte(v, 1) == 3 then at = ENV_SINK_V3 end
  local b = string.byte(v, at)
  if b and b >= 0xa0 and b <= 0xbf then return string.sub(v, at + 1, at + b - 0xa0) end
  if b == 0xd9 then return string.sub(v, at + 2, at + 1 + (string.byte(v, at + 1) or 0)) end
  return ''
end

-- Records queued per sink: the stats hash's q:<sink> fields, moved by
-- `sign` for each envelope of `envs` (one HINCRBY per sink met). They are
-- exact once the queue was seen empty with them counting: jobs queued
-- before (by a release that did not count) would leave them off for good,
-- so whenever the queue is empty they are set to 0 and the sink_counts
-- field says they can be trusted (sink_counts_reset).
-- tally_sink adds envelope v's `n` records to by[sink]; add_sink_counts
-- moves each q:<sink> of `by` by `sign` times its tally.
local function tally_sink(by, v, n)
  local s = env_sink(v)
  by[s] = (by[s] or 0) + n
end

local function add_sink_counts(stats, by, sign)
  for s, n in pairs(by) do
    if n ~= 0 then redis.call('HINCRBY', stats, 'q:' .. s, sign * n) end
  end
end

local function count_sinks(stats, envs, sign)
  local by = {}
  for i = 1, #envs do tally_sink(by, envs[i], env_count(envs[i])) end
  add_sink_counts(stats, by, sign)
end

-- The queue is empty: every q:<sink> is 0, and from now on exact.
local function sink_counts_reset(stats)
  local zero = {'sink_counts', 1}
  for _, f in ipairs(redis.call('HKEYS', stats)) do
    if string.sub(f, 1, 2) == 'q:' then
      zero[#zero + 1] = f
      zero[#zero + 1] = 0
    end
  end
  redis.call('HSET', stats, unpack(zero))
end

-- unpack() is bounded by Lua's stack: push long lists in slices.
local function push_all(cmd, key, list)
  for i = 1, #list, 1000 do
    redis.call(cmd, key, unpack(list, i, math.min(i + 999, #list)))
  end
end

-- Forget the delivery counts (<p>:deliveries) of the jobs `ids` leaving
-- for good. Counts exist only for jobs taken up again: mostly none. Only
-- those present go, and when that is all of them the hash goes in one
-- command: a sliced HDEL could empty it and then touch it again.
local function forget_deliveries(deliveries, ids)
  if #ids == 0 or redis.call('EXISTS', deliveries) == 0 then return end
  local present, seen = {}, {}
  for i = 1, #ids, 1000 do
    local last = math.min(i + 999, #ids)
    local got = redis.call('HMGET', deliveries, unpack(ids, i, last))
    for j = 1, #got do
      local id = ids[i + j - 1]
      if got[j] and not seen[id] then
        seen[id] = true
        present[#present + 1] = id
      end
    end
  end
  if #present > 0 and #present == redis.call('HLEN', deliveries) then
    redis.call('DEL', deliveries)
  elseif #present > 0 then
    push_all('HDEL', deliveries, present)
  end
end

-- Which of the jobs `ids` somebody waits for: GET /v1/jobs/{id}?wait=N
-- registers them in `waiters` with its deadline (waits.h). Read before a
-- script writes anything, so an error here leaves nothing half done.
local function waited_for(waiters, ids)
  local hit = {}
  if #ids == 0 or redis.call('EXISTS', waiters) == 0 then return hit end
  for i = 1, #ids, 1000 do
    local last = math.min(i + 999, #ids)
    local scores = redis.call('ZMSCORE', waiters, unpack(ids, i, last))
    for j = 1, #scores do
      if scores[j] then hit[#hit + 1] = ids[i + j - 1] end
    end
  end
  return hit
end

-- Tell the servers those jobs finished: one entry of their ids on the
-- `done` stream, which every server reads. The stream keeps the last
-- thousand entries (readers need only the last seconds').
local function tell_waiters(done, hit)
  if #hit > 0 then
    redis.call('XADD', done, 'MAXLEN', '~', 1000, '*', 'ids', table.concat(hit, ','))
  end
end

-- Statuses gathered by bucket (`live`: bucket -> {field, value, ...}, or
-- false for a bucket that expired): one HSET per bucket, not per job, and
-- the bucket kept at least `ttl` seconds more.
local function write_buckets(live, ttl)
  for b, fields in pairs(live) do
    if fields and #fields > 0 then
      push_all('HSET', b, fields)
      redis.call('EXPIRE', b, ttl, 'GT')
    end
  end
end
