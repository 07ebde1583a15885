#!lua
-- enqueue: append jobs to the queue, in arrival order, with their statuses.
-- KEYS: queue, stats, seq (the sequence counter), then per job its status
--       bucket (keys.h: <p>:st:*),
--       then for each job that carries an Idempotency-Key its key, and
--       with a token the key release 0.1 would have used (read only,
--       never written)
-- ARGV: status_ttl_s (the buckets' TTL), idempotency_ttl_s,
--       max_queued_records (0 = none), njobs, then per job: envelope,
--       status field (its id's 16 bytes), compact status, records,
--       idempotency key index into KEYS (0 = none), idempotency value, the
--       0.1 key's index into KEYS (0 = none)
-- A version 3 envelope (envelope.h) gets its sequence here: one past the
-- last one given, or the Redis clock in microseconds when that is larger,
-- so the numbers keep rising in acceptance order on this queue and stay
-- close to time across shards and failovers (a replica that lost the last
-- numbers still gives larger ones).
-- Returns -1 when the queue is over its high-water mark (nothing written),
-- else per job '' (queued) or the value already stored under its
-- idempotency key (nothing written for that job).
-- Everything is read before anything is written, so a refusal or an error
-- leaves Redis as it was; the shebang (no allow-oom) makes Redis refuse
-- the whole script up front when it is over maxmemory.
local queue, stats, seqkey = KEYS[1], KEYS[2], KEYS[3]
local status_ttl, idem_ttl = ARGV[1], ARGV[2]
local max_queued, njobs = tonumber(ARGV[3]), tonumber(ARGV[4])

if max_queued > 0 and tonumber(redis.call('HGET', stats, 'queued_records') or '0') >= max_queued then
  return -1
end
local res = {}
for j = 1, njobs do
  local a = 4 + (j - 1) * 7
  local ik, lk = tonumber(ARGV[a + 5]), tonumber(ARGV[a + 7])
  res[j] = ''
  if ik > 0 then
    res[j] = redis.call('GET', KEYS[ik]) or ''
    if res[j] == '' and lk > 0 then res[j] = redis.call('GET', KEYS[lk]) or '' end
  end
end
local seq, stamped = nil, false
for j = 1, njobs do
  if not seq and string.byte(ARGV[4 + (j - 1) * 7 + 1], 1) == 3 then
    local t = redis.call('TIME')
    seq = tonumber(redis.call('GET', seqkey) or '0')
    local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
    if now > seq then seq = now - 1 end
  end
end
local function stamp(v)
  if string.byte(v, 1) ~= 3 or #v < ENV_SEQ + 9 then return v end
  seq = seq + 1
  stamped = true
  local b, x = {}, seq
  for i = 8, 1, -1 do
    b[i] = x % 256
    x = math.floor(x / 256)
  end
  return string.sub(v, 1, ENV_SEQ) .. string.char(unpack(b)) .. string.sub(v, ENV_SEQ + 9)
end

-- A key may come twice in one call (racing repeats grouped together):
-- the first job takes it, the later ones answer as repeats of it.
local envs, total, taken, buckets = {}, 0, {}, {}
for j = 1, njobs do
  local a = 4 + (j - 1) * 7
  local ik = tonumber(ARGV[a + 5])
  if res[j] == '' and ik > 0 and taken[KEYS[ik]] then
    res[j] = taken[KEYS[ik]]
  elseif res[j] == '' then
    if ik > 0 then
      redis.call('SET', KEYS[ik], ARGV[a + 6], 'EX', idem_ttl)
      taken[KEYS[ik]] = ARGV[a + 6]
    end
    local b = buckets[KEYS[3 + j]]
    if not b then
      b = {}
      buckets[KEYS[3 + j]] = b
    end
    b[#b + 1] = ARGV[a + 2]
    b[#b + 1] = ARGV[a + 3]
    envs[#envs + 1] = stamp(ARGV[a + 1])
    total = total + tonumber(ARGV[a + 4])
  end
end
-- One HSET per bucket, not per job.
for b, fields in pairs(buckets) do
  push_all('HSET', b, fields)
  redis.call('EXPIRE', b, status_ttl)
end
if stamped then redis.call('SET', seqkey, string.format('%.0f', seq)) end
if #envs > 0 then
  if redis.call('LLEN', queue) == 0 then sink_counts_reset(stats) end
  push_all('LPUSH', queue, envs)
  redis.call('HINCRBY', stats, 'queued_records', total)
  redis.call('HINCRBY', stats, 'accepted_records', total)
  count_sinks(stats, envs, 1)
end
return res
