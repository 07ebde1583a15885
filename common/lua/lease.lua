#!lua flags=allow-oom
-- lease: hold, or let go of, a queue shard's lease (keys.h).
-- KEYS: lease
-- ARGV: flusher id, ttl_ms, hold ('1': take it when free and renew it
--       when ours; '0': delete it when ours)
-- Returns 1 when the lease is ours (hold) or was (let go), else 0.
-- Leases share the shards out; nothing rests on them being exclusive
-- (two flushers on one shard is the many-flushers case: the ledger and
-- the processing lists keep it exactly once).
local lease = KEYS[1]
local id, ttl, hold = ARGV[1], ARGV[2], ARGV[3] == '1'
local holder = redis.call('GET', lease)
if hold then
  if holder and holder ~= id then return 0 end
  redis.call('SET', lease, id, 'PX', ttl)
  return 1
end
if holder ~= id then return 0 end
redis.call('DEL', lease)
return 1
