#!lua flags=allow-oom
-- heartbeat: say this flusher lives, and list it in the registry.
-- KEYS: heartbeat, registry
-- ARGV: value ("host pid"), ttl_s, only_new ('1': only if none is set), id
-- Returns 1 set, 0 not set (one was there and only_new).
local heartbeat, registry = KEYS[1], KEYS[2]
local value, ttl, only_new, id = ARGV[1], ARGV[2], ARGV[3] == '1', ARGV[4]
local ok
if only_new then
  ok = redis.call('SET', heartbeat, value, 'EX', ttl, 'NX')
else
  ok = redis.call('SET', heartbeat, value, 'EX', ttl)
end
redis.call('SADD', registry, id)
if ok then return 1 end
return 0
