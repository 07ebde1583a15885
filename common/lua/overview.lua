#!lua flags=no-writes
-- overview: everything the dashboard shows, as one JSON object.
-- KEYS: queue, stats, dead, deadinfo, then per flusher: its heartbeat and
--       its inflight counter
-- ARGV: how many failed jobs, then the flusher ids (in KEYS' order)
-- Totals, queue gauges, each flusher with its heartbeat's remaining TTL
-- and the records it holds, and the newest failed jobs.
local queue, stats, dead, deadinfo = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local limit = tonumber(ARGV[1])
local s = redis.call('HMGET', stats, 'queued_records', 'inflight_records', 'accepted_records',
                     'committed_records', 'dead_dropped')
local t = redis.call('TIME')
local out = {depth = tonumber(s[1] or 0), in_flight = tonumber(s[2] or 0),
             accepted_records_total = tonumber(s[3] or 0),
             committed_records_total = tonumber(s[4] or 0),
             dead_dropped_total = tonumber(s[5] or 0),
             queued_jobs = redis.call('LLEN', queue), dead_jobs = redis.call('LLEN', dead),
             now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000),
             oldest_enqueued_ms = 0, flushers = {}, failed = {}}
local v = redis.call('LINDEX', queue, -1)
if v then out.oldest_enqueued_ms = math.floor(env_time(v) / 1000) end
for i = 2, #ARGV do
  local hb, infl = KEYS[5 + (i - 2) * 2], KEYS[6 + (i - 2) * 2]
  out.flushers[#out.flushers + 1] = {id = ARGV[i], heartbeat_ttl_ms = redis.call('PTTL', hb),
                                     holder = redis.call('GET', hb) or '',
                                     holding_records = tonumber(redis.call('GET', infl) or 0)}
end
-- (LRANGE 0 -1 would be every one: a limit of 0 reads none.)
for _, id in ipairs(limit > 0 and redis.call('LRANGE', dead, 0, limit - 1) or {}) do
  local info = redis.call('HGET', deadinfo, id)
  local d = info and cjson.decode(info) or {}
  out.failed[#out.failed + 1] = {job_id = id, error = d.error or '', failed_at = d.failed_at or '',
                                 records = tonumber(d.records or 0), sink = d.sink or ''}
end
return cjson.encode(out)
