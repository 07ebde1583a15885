#!lua flags=allow-oom
-- finish: close the oldest jobs of a flusher's processing list, whose
-- fate PostgreSQL has decided.
-- KEYS: stats, dead, deadenv, deadinfo, deliveries, processing, inflight,
--       waiters, done, then per job its status bucket and its
--       <p>:job:<id> (keys.h)
-- ARGV: now (RFC 3339), status_ttl_s, dead_max_jobs, dead_max_bytes,
--       then per job, oldest first: list id (what env_id reads from its
--       envelope), envelope length, dead-letter id, status field (the id's
--       16 bytes), compact status ('c...', 'f' failed, '' = leave it),
--       error ('' = committed), the whole status JSON of a failed job,
--       its records as env_count reads them; then pairs of a stats field
--       and an increment: the committed jobs' latencies (latency.h)
-- The jobs must be exactly the tail of the processing list, in order:
-- otherwise nothing is written and {0, position} is returned (the list is
-- not what the flusher believes: it re-reads it). A repeat after a lost
-- reply finds them gone and so counts nothing twice. Then: statuses,
-- where they still are (an expired one is not brought back): in the
-- job's bucket, a failed job's JSON beside it; a job queued by a release
-- before buckets has its JSON rewritten in place. Then dead letters, the list's
-- tail trimmed, in-flight counts lowered by exactly these jobs' records,
-- the committed total raised by the records of the committed ones (each
-- job is finished once, so each counts once, even when its rows were
-- written by an earlier attempt), and the dead-letter store cut back to
-- its bounds, oldest out first.
-- Returns {1, dead letters dropped by the bound}.
local stats, dead, deadenv, deadinfo = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local deliveries, processing, inflight = KEYS[5], KEYS[6], KEYS[7]
local waiters, done = KEYS[8], KEYS[9]
local now, ttl = ARGV[1], ARGV[2]
local max_dead, max_dead_bytes = tonumber(ARGV[3]), tonumber(ARGV[4])
local n = (#KEYS - 9) / 2
local W = 8

-- The list grows only at its head (claim) and shrinks only at its tail
-- (here), and no one else writes it (a takeover renames a list onto a
-- flusher that has none): so when its oldest job and its n-th oldest are
-- the first and last given, the n jobs between are the batch, in order.
local len = redis.call('LLEN', processing)
if len < n then return {0, len} end
local function same(k, v)
  local a = 4 + (k - 1) * W
  return v and env_id(v) == ARGV[a + 1] and #v == tonumber(ARGV[a + 2])
end
if not same(1, redis.call('LINDEX', processing, -1)) then return {0, 1} end
if not same(n, redis.call('LINDEX', processing, -n)) then return {0, n} end

-- Who waits for these jobs, read before anything is written.
local woken = {}
for k = 1, n do woken[k] = ARGV[4 + (k - 1) * W + 3] end
local hit = waited_for(waiters, woken)

-- A status in the layout of a release before buckets: rewritten in place.
local function old_status(key)
  local old = redis.call('GET', key)
  if not old then return end
  local ok, t = pcall(cjson.decode, old)
  if not ok or type(t) ~= 'table' then return end
  t.status, t.committed_at = 'committed', now
  redis.call('SET', key, cjson.encode(t), 'XX', 'EX', ttl)
end

local records, committed, ids, live = 0, 0, {}, {}
for k = 1, n do
  local a = 4 + (k - 1) * W
  local dead_id, field, status, err = ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6]
  local bucket, job = KEYS[8 + 2 * k], KEYS[9 + 2 * k]
  local count = tonumber(ARGV[a + 8])
  records = records + count
  if status ~= '' then
    if live[bucket] == nil then live[bucket] = redis.call('EXISTS', bucket) == 1 and {} end
    if live[bucket] then
      local fields = live[bucket]
      fields[#fields + 1] = field
      fields[#fields + 1] = status
      if err ~= '' then redis.call('SET', job, ARGV[a + 7], 'EX', ttl) end
    elseif err ~= '' then
      redis.call('SET', job, ARGV[a + 7], 'XX', 'EX', ttl)
    else
      old_status(job)
    end
  end
  if err == '' then committed = committed + count end
  if err ~= '' then
    -- Only a failed job's envelope is read: it goes to the dead letters.
    local v = redis.call('LINDEX', processing, -k)
    redis.call('HSET', deadenv, dead_id, v)
    local ok, st = pcall(cjson.decode, ARGV[a + 7])
    redis.call('HSET', deadinfo, dead_id,
               cjson.encode({error = err, failed_at = now, records = count,
                             sink = ok and type(st) == 'table' and st.sink or nil}))
    redis.call('LPUSH', dead, dead_id)
    redis.call('HINCRBY', stats, 'dead_bytes', #v)
  end
  if ARGV[a + 1] ~= '' then ids[#ids + 1] = ARGV[a + 1] end
end
write_buckets(live, ttl)
forget_deliveries(deliveries, ids)
redis.call('LTRIM', processing, 0, -(n + 1))
if records > 0 then
  if redis.call('DECRBY', inflight, records) <= 0 then redis.call('DEL', inflight) end
  redis.call('HINCRBY', stats, 'inflight_records', -records)
end
if committed > 0 then redis.call('HINCRBY', stats, 'committed_records', committed) end
for i = 4 + n * W + 1, #ARGV - 1, 2 do redis.call('HINCRBY', stats, ARGV[i], ARGV[i + 1]) end
tell_waiters(done, hit)

-- The store cut back to its bounds, oldest out first: what goes is read
-- first, then each key gets one command that removes it all, the last on
-- that key (prelude.lua). At most 1,000 go per call; the next call goes
-- on.
local bytes = tonumber(redis.call('HGET', stats, 'dead_bytes') or '0')
local len = redis.call('LLEN', dead)
-- An id listed twice (never expected) is freed once.
local npop, gone, seen, freed = 0, {}, {}, 0
if len > max_dead or (bytes > max_dead_bytes and len > 0) then
  local oldest = redis.call('LRANGE', dead, -math.min(len, 1000), -1)
  for i = #oldest, 1, -1 do
    if len - npop <= max_dead and (bytes - freed <= max_dead_bytes or len == npop) then
      break
    end
    npop = npop + 1
    local id = oldest[i]
    if not seen[id] then
      seen[id] = true
      gone[#gone + 1] = id
      freed = freed + redis.call('HSTRLEN', deadenv, id)
    end
  end
end
if npop > 0 then
  redis.call('RPOP', dead, npop)
  redis.call('HDEL', deadenv, unpack(gone))
  redis.call('HDEL', deadinfo, unpack(gone))
  redis.call('HINCRBY', stats, 'dead_bytes', -freed)
  redis.call('HINCRBY', stats, 'dead_dropped', npop)
end
return {1, npop}
