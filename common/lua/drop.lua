#!lua
-- drop: forget a dead-lettered job (its status stays "failed").
-- KEYS: dead, deadenv, deadinfo, stats, the job's 0.1 dead-letter hash
-- ARGV: job id
-- Returns how many of its entries were removed (0: none).
local dead, deadenv, deadinfo, stats, legacy = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local id = ARGV[1]
local n = redis.call('LREM', dead, 1, id)
local v = redis.call('HGET', deadenv, id)
if v then
  redis.call('HINCRBY', stats, 'dead_bytes', -#v)
  n = n + redis.call('HDEL', deadenv, id)
end
redis.call('HDEL', deadinfo, id)
return n + redis.call('DEL', legacy)
