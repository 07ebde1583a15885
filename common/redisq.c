#include "redisq.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"

enum {
    SCRIPT_ENQUEUE, SCRIPT_STATS, SCRIPT_CLAIM, SCRIPT_RESUME, SCRIPT_FINISH, SCRIPT_TAKEOVER,
    SCRIPT_REQUEUE, SCRIPT_DROP, SCRIPT_OVERVIEW, SCRIPT_COUNT
};

/* KEYS: queue, stats. ARGV: status ttl, idempotency ttl, max queued
 * records (0 = no limit), then per job: status key, envelope, status JSON,
 * records, idempotency key ('' = none), idempotency value. Many jobs in one
 * call: the envelopes go in with one LPUSH, in arrival order. Returns -1
 * when the queue is over its high-water mark (nothing written), else per
 * job '' (queued) or the value already stored under its idempotency key
 * (nothing written for it). The status is stored as the very JSON the API
 * answers, so a poll is one GET and no parsing. The shebang makes Redis
 * refuse the whole script up front when over maxmemory, so a job is never
 * half-written. */
static const char script_enqueue[] =
    "#!lua\n"
    "local maxq = tonumber(ARGV[3])\n"
    "if maxq > 0 and tonumber(redis.call('HGET', KEYS[2], 'queued_records') or '0') >= maxq then\n"
    "  return -1\n"
    "end\n"
    "local envs, total, res = {}, 0, {}\n"
    "for i = 4, #ARGV, 6 do\n"
    "  local r = ''\n"
    "  if ARGV[i + 4] ~= '' then\n"
    "    local prev = redis.call('GET', ARGV[i + 4])\n"
    "    if prev then r = prev\n"
    "    else redis.call('SET', ARGV[i + 4], ARGV[i + 5], 'EX', ARGV[2]) end\n"
    "  end\n"
    "  if r == '' then\n"
    "    redis.call('SET', ARGV[i], ARGV[i + 2], 'EX', ARGV[1])\n"
    "    envs[#envs + 1] = ARGV[i + 1]\n"
    "    total = total + tonumber(ARGV[i + 3])\n"
    "  end\n"
    "  res[#res + 1] = r\n"
    "end\n"
    "if #envs > 0 then\n"
    "  redis.call('LPUSH', KEYS[1], unpack(envs))\n"
    "  redis.call('HINCRBY', KEYS[2], 'queued_records', total)\n"
    "  redis.call('HINCRBY', KEYS[2], 'accepted_records', total)\n"
    "end\n"
    "return res\n";

/* KEYS: queue, stats, dead. The oldest job is at the tail; its enqueue time
 * sits at a fixed offset of the envelope (see envelope.h). */
static const char script_stats[] =
    "local s = redis.call('HMGET', KEYS[2], 'queued_records', 'inflight_records')\n"
    "local jobs = redis.call('LLEN', KEYS[1])\n"
    "local oldest = 0\n"
    "if jobs > 0 then\n"
    "  local v = redis.call('LINDEX', KEYS[1], -1)\n"
    "  if #v >= 15 then\n"
    "    for i = 8, 15 do oldest = oldest * 256 + string.byte(v, i) end\n"
    "  end\n"
    "end\n"
    "return {tonumber(s[1] or 0), tonumber(s[2] or 0), jobs,"
    " redis.call('LLEN', KEYS[3]), oldest}\n";

/* Shared by the flusher scripts. An envelope's record count and job id sit
 * at fixed offsets (envelope.h): count in bytes 3..6, id (str8 of 36) in
 * bytes 18..53. dead() moves a job to the dead-letter list with its error
 * and marks its status failed; G holds the globals each script sets. */
#define LUA_PRELUDE \
    "local G = {}\n" \
    "local function count(v)\n" \
    "  if #v < 15 then return 0 end\n" \
    "  return ((string.byte(v, 3) * 256 + string.byte(v, 4)) * 256 + string.byte(v, 5)) * 256" \
    " + string.byte(v, 6)\n" \
    "end\n" \
    "local function jobid(v)\n" \
    "  if #v < 53 or string.byte(v, 16) ~= 0xd9 or string.byte(v, 17) ~= 36 then return '' end\n" \
    "  return string.sub(v, 18, 53)\n" \
    "end\n" \
    "local function dead(id, v, err)\n" \
    "  redis.call('HSET', G.deadp .. id, 'envelope', v, 'error', err, 'failed_at', G.now," \
    " 'records', count(v))\n" \
    "  redis.call('LPUSH', G.deadlist, id)\n" \
    "  redis.call('HDEL', G.deliveries, id)\n" \
    "  local sk = G.jobp .. id\n" \
    "  local s = redis.call('GET', sk)\n" \
    "  if s and string.find(s, '\"status\":\"queued\"', 1, true) then\n" \
    "    s = string.gsub(s, '\"status\":\"queued\"', '\"status\":\"failed\"', 1)\n" \
    "    s = string.sub(s, 1, -2) .. ',\"failed_at\":\"' .. G.now .. '\",\"error\":' .." \
    " cjson.encode(err) .. '}'\n" \
    "    redis.call('SET', sk, s, 'KEEPTTL')\n" \
    "  end\n" \
    "end\n"

/* Flusher scripts take KEYS: queue, stats, dead list, deliveries hash,
 * processing list, in-flight counter (of this flusher), then their own;
 * ARGV: dead prefix, job prefix, now, max deliveries, then their own. */
#define LUA_FLUSHER_ARGS \
    "G.deadlist, G.deliveries = KEYS[3], KEYS[4]\n" \
    "G.deadp, G.jobp, G.now = ARGV[1], ARGV[2], ARGV[3]\n" \
    "local maxd = tonumber(ARGV[4])\n"

/* Move jobs from the queue tail into the processing list until they hold
 * at least ARGV[5] records (a job is never split), at most ARGV[6] jobs.
 * Each move is a delivery; a job delivered more than max times goes to the
 * dead-letter list instead. */
static const char script_claim[] =
    LUA_PRELUDE LUA_FLUSHER_ARGS
    "local out, total = {}, 0\n"
    "local maxr, maxj = tonumber(ARGV[5]), tonumber(ARGV[6])\n"
    "while #out < maxj do\n"
    "  local v = redis.call('LMOVE', KEYS[1], KEYS[5], 'RIGHT', 'LEFT')\n"
    "  if not v then break end\n"
    "  local n = count(v)\n"
    "  if total > 0 and total + n > maxr then\n"
    "    redis.call('LMOVE', KEYS[5], KEYS[1], 'LEFT', 'RIGHT')\n"
    "    break\n"
    "  end\n"
    "  local id = jobid(v)\n"
    "  local d = id ~= '' and redis.call('HINCRBY', KEYS[4], id, 1) or 0\n"
    "  if d > maxd then\n"
    "    redis.call('LPOP', KEYS[5])\n"
    "    redis.call('HINCRBY', KEYS[2], 'queued_records', -n)\n"
    "    dead(id, v, 'handed to a flusher ' .. (d - 1) .. ' times without finishing "
    "(max_deliveries)')\n"
    "  else\n"
    "    out[#out + 1] = v\n"
    "    total = total + n\n"
    "    if total >= maxr then break end\n"
    "  end\n"
    "end\n"
    "if total > 0 then\n"
    "  redis.call('HINCRBY', KEYS[2], 'queued_records', -total)\n"
    "  redis.call('HINCRBY', KEYS[2], 'inflight_records', total)\n"
    "  redis.call('INCRBY', KEYS[6], total)\n"
    "end\n"
    "return out\n";

/* A flusher takes up a processing list again (its own after a restart, or
 * an orphan it took over): that is another delivery of each job in it.
 * Returns the jobs left, oldest first. */
static const char script_resume[] =
    LUA_PRELUDE LUA_FLUSHER_ARGS
    "local items = redis.call('LRANGE', KEYS[5], 0, -1)\n"
    "local out = {}\n"
    "for i = #items, 1, -1 do\n"
    "  local v = items[i]\n"
    "  local id = jobid(v)\n"
    "  local d = id ~= '' and redis.call('HINCRBY', KEYS[4], id, 1) or 0\n"
    "  if d > maxd then\n"
    "    local n = count(v)\n"
    "    redis.call('LREM', KEYS[5], 1, v)\n"
    "    redis.call('DECRBY', KEYS[6], n)\n"
    "    redis.call('HINCRBY', KEYS[2], 'inflight_records', -n)\n"
    "    dead(id, v, 'handed to a flusher ' .. (d - 1) .. ' times without finishing "
    "(max_deliveries)')\n"
    "  else\n"
    "    out[#out + 1] = v\n"
    "  end\n"
    "end\n"
    "return out\n";

/* Close a batch. ARGV from 5: ttl, records committed, then per job: id,
 * status JSON, error ('' = committed), envelope ('' unless failed). SET XX: a status that
 * expired is not brought back. The in-flight count drops by what this
 * flusher's counter says it holds, read and cleared here, so a flusher
 * whose list was taken over while it stalled cannot subtract it twice. */
static const char script_finish[] =
    LUA_PRELUDE LUA_FLUSHER_ARGS
    "redis.call('HINCRBY', KEYS[2], 'committed_records', tonumber(ARGV[6]))\n"
    "for i = 7, #ARGV, 4 do\n"
    "  local id = ARGV[i]\n"
    "  redis.call('SET', G.jobp .. id, ARGV[i + 1], 'XX', 'EX', ARGV[5])\n"
    "  if ARGV[i + 2] ~= '' then\n"
    "    redis.call('HSET', G.deadp .. id, 'envelope', ARGV[i + 3], 'error', ARGV[i + 2],"
    " 'failed_at', G.now, 'records', count(ARGV[i + 3]))\n"
    "    redis.call('LPUSH', G.deadlist, id)\n"
    "  end\n"
    "  redis.call('HDEL', G.deliveries, id)\n"
    "end\n"
    "local n = tonumber(redis.call('GETDEL', KEYS[6]) or '0')\n"
    "redis.call('DEL', KEYS[5])\n"
    "if n ~= 0 then redis.call('HINCRBY', KEYS[2], 'inflight_records', -n) end\n"
    "return 1\n";

/* Take over the processing list of a flusher whose heartbeat expired.
 * KEYS 7..10: its processing list, its in-flight counter, its heartbeat,
 * the flusher registry; ARGV[5]: its id. A dead flusher with nothing left
 * leaves the registry. 1 taken, 0 nothing to take (or it is alive), -1 we
 * still hold a batch. */
static const char script_takeover[] =
    "if redis.call('EXISTS', KEYS[9]) == 1 then return 0 end\n"
    "if redis.call('EXISTS', KEYS[7]) == 0 then\n"
    "  redis.call('SREM', KEYS[10], ARGV[5])\n"
    "  return 0\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[5]) == 1 then return -1 end\n"
    "redis.call('RENAME', KEYS[7], KEYS[5])\n"
    "local n = tonumber(redis.call('GETDEL', KEYS[8]) or '0')\n"
    "if n ~= 0 then redis.call('INCRBY', KEYS[6], n) end\n"
    "return 1\n";

/* Put a dead-lettered job back at the head of the line (the tail, which
 * flushers take next). KEYS: queue, stats, dead list, deliveries. ARGV:
 * dead prefix, job prefix, job id, queued status JSON, status ttl. 1 done,
 * 0 no such dead job. */
static const char script_requeue[] =
    LUA_PRELUDE
    "local k = ARGV[1] .. ARGV[3]\n"
    "local v = redis.call('HGET', k, 'envelope')\n"
    "if not v then return 0 end\n"
    "redis.call('RPUSH', KEYS[1], v)\n"
    "redis.call('HINCRBY', KEYS[2], 'queued_records', count(v))\n"
    "redis.call('LREM', KEYS[3], 1, ARGV[3])\n"
    "redis.call('DEL', k)\n"
    "redis.call('HDEL', KEYS[4], ARGV[3])\n"
    "redis.call('SET', ARGV[2] .. ARGV[3], ARGV[4], 'EX', ARGV[5])\n"
    "return 1\n";

/* Forget a dead-lettered job. KEYS: dead list. ARGV: dead prefix, id. */
static const char script_drop[] =
    "local n = redis.call('LREM', KEYS[1], 1, ARGV[2])\n"
    "return n + redis.call('DEL', ARGV[1] .. ARGV[2])\n";

/* Everything the dashboard shows, as one JSON object, from O(1) commands
 * and small ranges: totals, queue gauges, each registered flusher with its
 * heartbeat's remaining TTL and the records it holds, and the newest
 * failed jobs. KEYS: queue, stats, dead list, registry. ARGV: prefix,
 * dead prefix, how many failed jobs. */
static const char script_overview[] =
    "local s = redis.call('HMGET', KEYS[2], 'queued_records', 'inflight_records',"
    " 'accepted_records', 'committed_records')\n"
    "local t = redis.call('TIME')\n"
    "local out = {depth = tonumber(s[1] or 0), in_flight = tonumber(s[2] or 0),"
    " accepted_records_total = tonumber(s[3] or 0), committed_records_total = tonumber(s[4] or 0),"
    " queued_jobs = redis.call('LLEN', KEYS[1]), dead_jobs = redis.call('LLEN', KEYS[3]),"
    " now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000), oldest_enqueued_ms = 0,"
    " flushers = {}, failed = {}}\n"
    "local v = redis.call('LINDEX', KEYS[1], -1)\n"
    "if v and #v >= 15 then\n"
    "  local us = 0\n"
    "  for i = 8, 15 do us = us * 256 + string.byte(v, i) end\n"
    "  out.oldest_enqueued_ms = math.floor(us / 1000)\n"
    "end\n"
    "for _, id in ipairs(redis.call('SMEMBERS', KEYS[4])) do\n"
    "  local hb = ARGV[1] .. ':heartbeat:' .. id\n"
    "  out.flushers[#out.flushers + 1] = {id = id, heartbeat_ttl_ms = redis.call('PTTL', hb),"
    " holder = redis.call('GET', hb) or '',"
    " holding_records = tonumber(redis.call('GET', ARGV[1] .. ':inflight:' .. id) or 0)}\n"
    "end\n"
    "for _, id in ipairs(redis.call('LRANGE', KEYS[3], 0, tonumber(ARGV[3]) - 1)) do\n"
    "  local d = redis.call('HMGET', ARGV[2] .. id, 'error', 'failed_at', 'records')\n"
    "  out.failed[#out.failed + 1] = {job_id = id, error = d[1] or '', failed_at = d[2] or '',"
    " records = tonumber(d[3] or 0)}\n"
    "end\n"
    "return cjson.encode(out)\n";

static const char *const scripts[SCRIPT_COUNT] = {script_enqueue, script_stats, script_claim,
                                                  script_resume, script_finish,
                                                  script_takeover, script_requeue, script_drop,
                                                  script_overview};

_Static_assert(SCRIPT_COUNT <= sizeof ((sw_redis *)0)->sha / sizeof ((sw_redis *)0)->sha[0],
               "sw_redis.sha has no room for every script");

static void set_err(sw_redis *r, enum sw_redis_err err, const char *what, const char *detail)
{
    r->err = err;
    snprintf(r->errstr, sizeof r->errstr, "%s: %s", what, detail ? detail : "");
}

static void disconnect(sw_redis *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    for (int i = 0; i < SCRIPT_COUNT; i++)
        r->sha[i][0] = '\0';
}

sw_redis *sw_redis_new(const sw_redis_opts *o)
{
    sw_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    const char *prefix = o->prefix;
    snprintf(r->host, sizeof r->host, "%s", o->host);
    r->port = o->port;
    r->timeout_ms = o->timeout_ms;
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    snprintf(r->user, sizeof r->user, "%s", o->user ? o->user : "");
    snprintf(r->password, sizeof r->password, "%s", o->password ? o->password : "");
    snprintf(r->k_queue, sizeof r->k_queue, "%s:queue", prefix);
    snprintf(r->k_stats, sizeof r->k_stats, "%s:stats", prefix);
    snprintf(r->k_dead, sizeof r->k_dead, "%s:dead", prefix);
    snprintf(r->k_job, sizeof r->k_job, "%s:job:", prefix);
    snprintf(r->k_deadp, sizeof r->k_deadp, "%s:dead:", prefix);
    snprintf(r->k_deliveries, sizeof r->k_deliveries, "%s:deliveries", prefix);
    snprintf(r->k_flushers, sizeof r->k_flushers, "%s:flushers", prefix);
    return r;
}

void sw_redis_free(sw_redis *r)
{
    if (r == NULL)
        return;
    disconnect(r);
    free(r);
}

int sw_redis_connect(sw_redis *r)
{
    if (r->ctx)
        return 0;
    /* While Redis is down, try at most every 100 ms, so a burst of
     * requests answers 503 at once instead of each waiting to connect. */
    int64_t now = sw_clock_mono_ms();
    if (now < r->next_connect_ms) {
        r->err = SW_REDIS_EIO;
        return -1;
    }
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    if (c == NULL || c->err) {
        set_err(r, SW_REDIS_EIO, "connect", c ? c->errstr : "out of memory");
        if (c)
            redisFree(c);
        r->next_connect_ms = now + 100;
        return -1;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        set_err(r, SW_REDIS_EIO, "set timeout", c->errstr);
        redisFree(c);
        return -1;
    }
    redisEnableKeepAlive(c);
    if (r->password[0] != '\0') {
        /* Arguments go as separate bulk strings, so a password may hold
         * any bytes; the reply never echoes it. */
        redisReply *rep = r->user[0] ? redisCommand(c, "AUTH %s %s", r->user, r->password)
                                     : redisCommand(c, "AUTH %s", r->password);
        if (rep == NULL || rep->type == REDIS_REPLY_ERROR) {
            set_err(r, SW_REDIS_EIO, "auth", rep ? rep->str : c->errstr);
            if (rep)
                freeReplyObject(rep);
            redisFree(c);
            r->next_connect_ms = now + 100;
            return -1;
        }
        freeReplyObject(rep);
    }
    r->ctx = c;
    r->err = SW_REDIS_OK;
    if (r->connected_once && r->reconnects)
        atomic_fetch_add_explicit(r->reconnects, 1, memory_order_relaxed);
    r->connected_once = 1;
    return 0;
}

/* Check a reply; on an I/O error drop the connection so the next call
 * reconnects. Returns the reply or NULL with err set. */
static redisReply *checked(sw_redis *r, redisReply *rep, const char *what)
{
    redisContext *c = r->ctx;
    if (rep == NULL) {
        set_err(r, SW_REDIS_EIO, what, c && c->err ? c->errstr : "no reply");
        disconnect(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        enum sw_redis_err e = strncmp(rep->str, "OOM", 3) == 0 ? SW_REDIS_EOOM : SW_REDIS_EREPLY;
        set_err(r, e, what, rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int load_script(sw_redis *r, int which)
{
    redisReply *rep = checked(r, redisCommand(r->ctx, "SCRIPT LOAD %s", scripts[which]),
                              "script load");
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_STRING || rep->len != 40) {
        set_err(r, SW_REDIS_EREPLY, "script load", "unexpected reply");
        freeReplyObject(rep);
        return -1;
    }
    memcpy(r->sha[which], rep->str, 41);
    freeReplyObject(rep);
    return 0;
}

/* EVALSHA with the script loaded on demand, and once more after NOSCRIPT
 * (Redis restarted or SCRIPT FLUSH). A read-only script (`reads`) is also
 * retried once on a fresh connection after an I/O error on an old one, so
 * the first request after a Redis restart does not fail; a writing script
 * is not, since its reply, not its effect, may be what was lost.
 * argv[0..1] are filled in here. */
static redisReply *eval(sw_redis *r, int which, int argc, const char **argv, size_t *lens,
                        const char *what, int reads)
{
    for (int attempt = 0; attempt < 3; attempt++) {
        int fresh = r->ctx == NULL;
        if (sw_redis_connect(r) != 0)
            return NULL;
        if (r->sha[which][0] == '\0' && load_script(r, which) != 0) {
            if (r->err == SW_REDIS_EIO && !fresh)
                continue;
            return NULL;
        }
        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = r->sha[which];
        lens[1] = 40;
        redisReply *rep = redisCommandArgv(r->ctx, argc, argv, lens);
        if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            freeReplyObject(rep);
            r->sha[which][0] = '\0';
            continue;
        }
        rep = checked(r, rep, what);
        if (rep || !reads || fresh || r->err != SW_REDIS_EIO)
            return rep;
    }
    set_err(r, SW_REDIS_EREPLY, what, "script vanished twice");
    return NULL;
}

/* eval() for arguments that are all C strings (argv[2] on). */
static redisReply *eval_str(sw_redis *r, int which, int argc, const char **argv,
                            const char *what, int reads)
{
    size_t lens[16];
    if (argc > 16) {
        set_err(r, SW_REDIS_EREPLY, what, "too many arguments");
        return NULL;
    }
    for (int i = 2; i < argc; i++)
        lens[i] = strlen(argv[i]);
    return eval(r, which, argc, argv, lens, what, reads);
}

/* A read-only command, retried once on a fresh connection like eval(). */
static redisReply *read_cmd(sw_redis *r, const char *what, const char *fmt, ...)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = r->ctx == NULL;
        if (sw_redis_connect(r) != 0)
            return NULL;
        va_list ap;
        va_start(ap, fmt);
        redisReply *rep = checked(r, redisvCommand(r->ctx, fmt, ap), what);
        va_end(ap);
        if (rep || fresh || r->err != SW_REDIS_EIO)
            return rep;
    }
    return NULL;
}

int sw_redis_ping(sw_redis *r)
{
    redisReply *rep = read_cmd(r, "ping", "PING");
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int sw_redis_enqueue(sw_redis *r, int njobs, sw_redis_job *jobs, int ttl_s, int idem_ttl_s,
                     long max_queued)
{
    int argc = 8 + 6 * njobs, rc = -1;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    char (*keys)[128] = malloc((size_t)njobs * sizeof *keys);
    char (*ikeys)[512] = malloc((size_t)njobs * sizeof *ikeys);
    char (*nrec)[24] = malloc((size_t)njobs * sizeof *nrec);
    char ttl[24], ittl[24], maxq[24];
    redisReply *rep = NULL;
    if (argv == NULL || lens == NULL || keys == NULL || ikeys == NULL || nrec == NULL) {
        set_err(r, SW_REDIS_EREPLY, "enqueue", "out of memory");
        goto out;
    }
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    snprintf(ittl, sizeof ittl, "%d", idem_ttl_s);
    snprintf(maxq, sizeof maxq, "%ld", max_queued);
    const char *fixed[] = {NULL, NULL, "2", r->k_queue, r->k_stats, ttl, ittl, maxq};
    for (int i = 2; i < 8; i++) {
        argv[i] = fixed[i];
        lens[i] = strlen(fixed[i]);
    }
    for (int j = 0; j < njobs; j++) {
        const char **a = argv + 8 + 6 * j;
        size_t *l = lens + 8 + 6 * j;
        sw_redis_job *job = &jobs[j];
        a[0] = keys[j];
        l[0] = (size_t)snprintf(keys[j], sizeof keys[j], "%s%s", r->k_job, job->job_id);
        a[1] = job->env;
        l[1] = job->env_len;
        a[2] = job->status;
        l[2] = job->status_len;
        a[3] = nrec[j];
        l[3] = (size_t)snprintf(nrec[j], sizeof nrec[j], "%ld", job->nrecords);
        a[4] = ikeys[j];
        l[4] = job->idem_key ? (size_t)snprintf(ikeys[j], sizeof ikeys[j], "%s:idem:%s:%s",
                                                r->prefix, job->sink, job->idem_key) : 0;
        a[5] = job->idem_value ? job->idem_value : "";
        l[5] = strlen(a[5]);
        job->prev[0] = '\0';
    }
    rep = eval(r, SCRIPT_ENQUEUE, argc, argv, lens, "enqueue", 0);
    if (rep == NULL)
        goto out;
    if (rep->type == REDIS_REPLY_INTEGER) {
        set_err(r, SW_REDIS_EFULL, "enqueue", "queue over its high-water mark");
        goto out;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != (size_t)njobs) {
        set_err(r, SW_REDIS_EREPLY, "enqueue", "unexpected reply");
        goto out;
    }
    for (int j = 0; j < njobs; j++) {
        const redisReply *e = rep->element[j];
        if (e->type == REDIS_REPLY_STRING)
            snprintf(jobs[j].prev, sizeof jobs[j].prev, "%.*s", (int)e->len, e->str);
    }
    rc = 0;
out:
    if (rep)
        freeReplyObject(rep);
    free(argv);
    free(lens);
    free(keys);
    free(ikeys);
    free(nrec);
    return rc;
}

int sw_redis_status(sw_redis *r, const char *job_id, sw_buf *out)
{
    redisReply *rep = read_cmd(r, "job", "GET %s%s", r->k_job, job_id);
    if (rep == NULL)
        return -1;
    int found = rep->type == REDIS_REPLY_STRING;
    sw_buf_reset(out);
    if (found && sw_buf_append(out, rep->str, rep->len) != 0) {
        set_err(r, SW_REDIS_EREPLY, "job", "out of memory");
        found = -1;
    }
    freeReplyObject(rep);
    return found;
}

int sw_redis_stats(sw_redis *r, sw_queue_stats *out)
{
    const char *argv[] = {NULL, NULL, "3", r->k_queue, r->k_stats, r->k_dead};
    redisReply *rep = eval_str(r, SCRIPT_STATS, 6, argv, "stats", 1);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 5) {
        set_err(r, SW_REDIS_EREPLY, "stats", "unexpected reply");
        freeReplyObject(rep);
        return -1;
    }
    out->queued_records = rep->element[0]->integer;
    out->inflight_records = rep->element[1]->integer;
    out->queued_jobs = rep->element[2]->integer;
    out->dead_jobs = rep->element[3]->integer;
    out->oldest_enqueued_us = rep->element[4]->integer;
    freeReplyObject(rep);
    return 0;
}

static int array_reply(sw_redis *r, redisReply *rep, void **reply, const char *what)
{
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY) {
        set_err(r, SW_REDIS_EREPLY, what, "unexpected reply");
        freeReplyObject(rep);
        return -1;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        if (rep->element[i]->type != REDIS_REPLY_STRING) {
            set_err(r, SW_REDIS_EREPLY, what, "non-string element");
            freeReplyObject(rep);
            return -1;
        }
    }
    *reply = rep;
    return 0;
}

/* KEYS and ARGV every flusher script starts with (see LUA_FLUSHER_ARGS);
 * the caller's arrays have room for its own after them. `bufs` holds the
 * key names built here. Returns the number of slots filled (2 + 6 + 4). */
typedef struct flusher_args {
    char proc[192], inflight[192], heartbeat[192];
    char now[32], maxd[24];
} flusher_args;

static void flusher_keys(const sw_redis *r, const char *fid, flusher_args *fa)
{
    snprintf(fa->proc, sizeof fa->proc, "%s:processing:%s", r->prefix, fid);
    snprintf(fa->inflight, sizeof fa->inflight, "%s:inflight:%s", r->prefix, fid);
    snprintf(fa->heartbeat, sizeof fa->heartbeat, "%s:heartbeat:%s", r->prefix, fid);
}

static int flusher_argv(const sw_redis *r, const char *fid, int nkeys, int maxd,
                        flusher_args *fa, const char **argv, size_t *lens)
{
    flusher_keys(r, fid, fa);
    sw_clock_format(sw_clock_now_us(), fa->now);
    snprintf(fa->maxd, sizeof fa->maxd, "%d", maxd);
    static const char *const numkeys[] = {"0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10"};
    const char *v[] = {NULL, NULL, numkeys[nkeys], r->k_queue, r->k_stats, r->k_dead,
                       r->k_deliveries, fa->proc, fa->inflight};
    for (int i = 0; i < 9; i++) {
        argv[i] = v[i];
        lens[i] = v[i] ? strlen(v[i]) : 0;
    }
    return 9;
}

static int flusher_argv_tail(const sw_redis *r, flusher_args *fa, int at, const char **argv,
                             size_t *lens)
{
    const char *v[] = {r->k_deadp, r->k_job, fa->now, fa->maxd};
    for (int i = 0; i < 4; i++) {
        argv[at + i] = v[i];
        lens[at + i] = strlen(v[i]);
    }
    return at + 4;
}

int sw_redis_claim(sw_redis *r, const char *fid, int max_deliveries, long max_records,
                   long max_jobs, void **reply)
{
    const char *argv[24];
    size_t lens[24];
    flusher_args fa;
    char maxr[24], maxj[24];
    int n = flusher_argv(r, fid, 6, max_deliveries, &fa, argv, lens);
    n = flusher_argv_tail(r, &fa, n, argv, lens);
    snprintf(maxr, sizeof maxr, "%ld", max_records);
    snprintf(maxj, sizeof maxj, "%ld", max_jobs);
    argv[n] = maxr;
    lens[n++] = strlen(maxr);
    argv[n] = maxj;
    lens[n++] = strlen(maxj);
    return array_reply(r, eval(r, SCRIPT_CLAIM, n, argv, lens, "claim", 0), reply, "claim");
}

int sw_redis_resume(sw_redis *r, const char *fid, int max_deliveries, void **reply)
{
    const char *argv[24];
    size_t lens[24];
    flusher_args fa;
    int n = flusher_argv(r, fid, 6, max_deliveries, &fa, argv, lens);
    n = flusher_argv_tail(r, &fa, n, argv, lens);
    return array_reply(r, eval(r, SCRIPT_RESUME, n, argv, lens, "resume", 0), reply, "resume");
}

int sw_redis_processing(sw_redis *r, const char *fid, void **reply)
{
    flusher_args fa;
    flusher_keys(r, fid, &fa);
    redisReply *rep = read_cmd(r, "lrange", "LRANGE %s 0 -1", fa.proc);
    if (array_reply(r, rep, reply, "lrange") != 0)
        return -1;
    /* LRANGE lists newest first (claims push at the head); we want queue
     * order. */
    redisReply *a = *reply;
    for (size_t i = 0, j = a->elements ? a->elements - 1 : 0; i < j; i++, j--) {
        redisReply *t = a->element[i];
        a->element[i] = a->element[j];
        a->element[j] = t;
    }
    return 0;
}

int sw_redis_finish(sw_redis *r, const char *fid, int njobs, const sw_redis_done *jobs,
                    long long committed_records, int ttl_s)
{
    int argc = 15 + 4 * njobs, rc = -1;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    size_t *lens = calloc((size_t)argc, sizeof *lens);
    flusher_args fa;
    char ttl[24];
    if (argv == NULL || lens == NULL) {
        set_err(r, SW_REDIS_EREPLY, "finish", "out of memory");
        goto out;
    }
    int n = flusher_argv(r, fid, 6, 0, &fa, argv, lens);
    n = flusher_argv_tail(r, &fa, n, argv, lens);
    char crec[24];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    snprintf(crec, sizeof crec, "%lld", committed_records);
    argv[n] = ttl;
    lens[n++] = strlen(ttl);
    argv[n] = crec;
    lens[n++] = strlen(crec);
    for (int j = 0; j < njobs; j++) {
        argv[n] = jobs[j].job_id;
        lens[n++] = strlen(jobs[j].job_id);
        argv[n] = jobs[j].status;
        lens[n++] = jobs[j].status_len;
        argv[n] = jobs[j].error ? jobs[j].error : "";
        lens[n] = strlen(argv[n]);
        n++;
        argv[n] = jobs[j].error ? jobs[j].env : "";
        lens[n++] = jobs[j].error ? jobs[j].env_len : 0;
    }
    redisReply *rep = eval(r, SCRIPT_FINISH, n, argv, lens, "finish", 0);
    if (rep) {
        freeReplyObject(rep);
        rc = 0;
    }
out:
    free(argv);
    free(lens);
    return rc;
}

int sw_redis_takeover(sw_redis *r, const char *fid, const char *victim)
{
    const char *argv[24];
    size_t lens[24];
    flusher_args fa, va;
    int n = flusher_argv(r, fid, 10, 0, &fa, argv, lens);
    flusher_keys(r, victim, &va);
    const char *v[] = {va.proc, va.inflight, va.heartbeat, r->k_flushers};
    for (int i = 0; i < 4; i++) {
        argv[n] = v[i];
        lens[n++] = strlen(v[i]);
    }
    n = flusher_argv_tail(r, &fa, n, argv, lens);
    argv[n] = victim;
    lens[n++] = strlen(victim);
    redisReply *rep = eval(r, SCRIPT_TAKEOVER, n, argv, lens, "takeover", 0);
    if (rep == NULL)
        return -1;
    int rc = rep->type == REDIS_REPLY_INTEGER ? (int)rep->integer : 0;
    freeReplyObject(rep);
    return rc == -1 ? 2 : rc;
}

int sw_redis_heartbeat(sw_redis *r, const char *fid, const char *value, int ttl_s, int only_new)
{
    flusher_args fa;
    flusher_keys(r, fid, &fa);
    if (sw_redis_connect(r) != 0)
        return -1;
    /* The registry lets takeover and /v1/stats find flushers without
     * scanning the keyspace; both commands go in one round trip. */
    redisAppendCommand(r->ctx, only_new ? "SET %s %s EX %d NX" : "SET %s %s EX %d",
                       fa.heartbeat, value, ttl_s);
    redisAppendCommand(r->ctx, "SADD %s %s", r->k_flushers, fid);
    void *raw = NULL;
    redisReply *rep = checked(r, redisGetReply(r->ctx, &raw) == REDIS_OK ? raw : NULL,
                              "heartbeat");
    if (rep == NULL)
        return -1;
    int set = rep->type == REDIS_REPLY_STATUS;
    freeReplyObject(rep);
    raw = NULL;
    rep = checked(r, redisGetReply(r->ctx, &raw) == REDIS_OK ? raw : NULL, "heartbeat");
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return set;
}

int sw_redis_heartbeat_get(sw_redis *r, const char *fid, char *out, size_t outlen)
{
    flusher_args fa;
    flusher_keys(r, fid, &fa);
    redisReply *rep = read_cmd(r, "heartbeat", "GET %s", fa.heartbeat);
    if (rep == NULL)
        return -1;
    int found = rep->type == REDIS_REPLY_STRING;
    if (found)
        snprintf(out, outlen, "%.*s", (int)rep->len, rep->str);
    freeReplyObject(rep);
    return found;
}

int sw_redis_flusher_ids(sw_redis *r, char (*ids)[64], int max)
{
    redisReply *rep = read_cmd(r, "flushers", "SMEMBERS %s", r->k_flushers);
    int n = 0;
    if (rep == NULL)
        return -1;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements && n < max; i++) {
        if (rep->element[i]->len < 64)
            snprintf(ids[n++], 64, "%s", rep->element[i]->str);
    }
    freeReplyObject(rep);
    return n;
}

int sw_redis_read_persistence(sw_redis *r, sw_redis_persistence *d)
{
    memset(d, 0, sizeof *d);
    redisReply *rep = read_cmd(r, "config get",
                               "CONFIG GET appendonly appendfsync maxmemory-policy");
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 6) {
        freeReplyObject(rep);
        set_err(r, SW_REDIS_EREPLY, "config get", "unexpected reply");
        return -1;
    }
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *k = rep->element[i]->str, *v = rep->element[i + 1]->str;
        if (strcmp(k, "appendonly") == 0)
            snprintf(d->appendonly, sizeof d->appendonly, "%s", v);
        else if (strcmp(k, "appendfsync") == 0)
            snprintf(d->appendfsync, sizeof d->appendfsync, "%s", v);
        else if (strcmp(k, "maxmemory-policy") == 0)
            snprintf(d->policy, sizeof d->policy, "%s", v);
    }
    freeReplyObject(rep);
    return 0;
}

const char *sw_redis_persistence_text(const sw_redis_persistence *d)
{
    if (strcmp(d->appendonly, "yes") != 0)
        return "AOF is off: a Redis restart or crash loses every 202 since the last snapshot";
    if (strcmp(d->appendfsync, "always") == 0)
        return "AOF fsync always: an acknowledged job survives a Redis or host crash";
    if (strcmp(d->appendfsync, "everysec") == 0)
        return "AOF fsync everysec: a host crash can lose about the last second of 202s";
    return "AOF without fsync: a host crash can lose the last ~30 s of 202s";
}

int sw_redis_persistence_evicts(const sw_redis_persistence *d)
{
    return strncmp(d->policy, "allkeys-", 8) == 0;
}

int sw_redis_overview(sw_redis *r, int failed_limit, sw_buf *out)
{
    char lim[24];
    snprintf(lim, sizeof lim, "%d", failed_limit);
    const char *argv[] = {NULL, NULL, "4", r->k_queue, r->k_stats, r->k_dead, r->k_flushers,
                          r->prefix, r->k_deadp, lim};
    redisReply *rep = eval_str(r, SCRIPT_OVERVIEW, 10, argv, "overview", 1);
    if (rep == NULL)
        return -1;
    int rc = -1;
    sw_buf_reset(out);
    if (rep->type != REDIS_REPLY_STRING)
        set_err(r, SW_REDIS_EREPLY, "overview", "unexpected reply");
    else if (sw_buf_append(out, rep->str, rep->len) != 0)
        set_err(r, SW_REDIS_EREPLY, "overview", "out of memory");
    else
        rc = 0;
    freeReplyObject(rep);
    return rc;
}

int sw_redis_dead_ids(sw_redis *r, long limit, void **reply)
{
    redisReply *rep = read_cmd(r, "dead", "LRANGE %s 0 %ld", r->k_dead, limit - 1);
    return array_reply(r, rep, reply, "dead");
}

int sw_redis_dead_get(sw_redis *r, const char *job_id, void **reply)
{
    redisReply *rep = read_cmd(r, "dead", "HMGET %s%s error failed_at envelope", r->k_deadp,
                               job_id);
    if (rep == NULL)
        return -1;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 3 ||
        rep->element[2]->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return 0;
    }
    *reply = rep;
    return 1;
}

int sw_redis_dead_requeue(sw_redis *r, const char *job_id, const char *status, int ttl_s)
{
    char ttl[24];
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    const char *argv[] = {NULL, NULL, "4", r->k_queue, r->k_stats, r->k_dead, r->k_deliveries,
                          r->k_deadp, r->k_job, job_id, status, ttl};
    redisReply *rep = eval_str(r, SCRIPT_REQUEUE, 12, argv, "requeue", 0);
    if (rep == NULL)
        return -1;
    int done = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return done;
}

int sw_redis_dead_drop(sw_redis *r, const char *job_id)
{
    const char *argv[] = {NULL, NULL, "1", r->k_dead, r->k_deadp, job_id};
    redisReply *rep = eval_str(r, SCRIPT_DROP, 6, argv, "drop", 0);
    if (rep == NULL)
        return -1;
    int done = rep->type == REDIS_REPLY_INTEGER && rep->integer > 0;
    freeReplyObject(rep);
    return done;
}

size_t sw_redis_reply_len(const void *reply)
{
    return reply ? ((const redisReply *)reply)->elements : 0;
}

const char *sw_redis_reply_item(const void *reply, size_t i, size_t *len)
{
    const redisReply *e = ((const redisReply *)reply)->element[i];
    *len = e->len;
    return e->str;
}

void sw_redis_reply_free(void *reply)
{
    if (reply)
        freeReplyObject(reply);
}
