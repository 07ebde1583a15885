#!lua flags=no-writes
-- status: what GET /v1/jobs/{id} answers, in one round trip.
-- KEYS: the job's status bucket (keys.h: <p>:st:*), its <p>:job:<id>
-- ARGV: status field (the id's 16 bytes)
-- Returns {compact status or '', whole JSON or ''}: the JSON is read when
-- the bucket holds no entry for the job (a job of a release before
-- buckets) or marks it failed ("f").
local bucket, job = KEYS[1], KEYS[2]
local v = redis.call('HGET', bucket, ARGV[1])
if v and v ~= 'f' then return {v, ''} end
return {v or '', redis.call('GET', job) or ''}
