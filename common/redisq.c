#include "redisq.h"

#include <hiredis/hiredis.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"

enum { SCRIPT_ENQUEUE, SCRIPT_STATS, SCRIPT_CLAIM, SCRIPT_FINISH, SCRIPT_COUNT };

/* KEYS: queue, stats. ARGV: ttl, then per job: status key, envelope,
 * status JSON, records. Many jobs in one call: the envelopes go in with one
 * LPUSH, in arrival order. The status is stored as the very JSON the API
 * answers, so a poll is one GET and no parsing. The shebang makes Redis
 * refuse the whole script up front when over maxmemory, so a job is never
 * half-written. */
static const char script_enqueue[] =
    "#!lua\n"
    "local envs, total = {}, 0\n"
    "for i = 2, #ARGV, 4 do\n"
    "  redis.call('SET', ARGV[i], ARGV[i + 2], 'EX', ARGV[1])\n"
    "  envs[#envs + 1] = ARGV[i + 1]\n"
    "  total = total + tonumber(ARGV[i + 3])\n"
    "end\n"
    "redis.call('LPUSH', KEYS[1], unpack(envs))\n"
    "redis.call('HINCRBY', KEYS[2], 'queued_records', total)\n"
    "return #envs\n";

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

/* KEYS: queue, processing, stats. ARGV: max records, max jobs. */
static const char script_claim[] =
    "local out, total = {}, 0\n"
    "local maxr, maxj = tonumber(ARGV[1]), tonumber(ARGV[2])\n"
    "while #out < maxj do\n"
    "  local v = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')\n"
    "  if not v then break end\n"
    "  local n = 0\n"
    "  if #v >= 15 then\n"
    "    n = ((string.byte(v, 3) * 256 + string.byte(v, 4)) * 256 + string.byte(v, 5)) * 256"
    " + string.byte(v, 6)\n"
    "  end\n"
    "  if total > 0 and total + n > maxr then\n"
    "    redis.call('LMOVE', KEYS[2], KEYS[1], 'LEFT', 'RIGHT')\n"
    "    break\n"
    "  end\n"
    "  out[#out + 1] = v\n"
    "  total = total + n\n"
    "  if total >= maxr then break end\n"
    "end\n"
    "if total > 0 then\n"
    "  redis.call('HINCRBY', KEYS[3], 'queued_records', -total)\n"
    "  redis.call('HINCRBY', KEYS[3], 'inflight_records', total)\n"
    "end\n"
    "return out\n";

/* KEYS: processing, stats, dead. ARGV: job key prefix, ttl, records, then
 * per job: id, status JSON, envelope ('' unless failed). SET XX: a status
 * that expired is not brought back. */
static const char script_finish[] =
    "for i = 4, #ARGV, 3 do\n"
    "  redis.call('SET', ARGV[1] .. ARGV[i], ARGV[i + 1], 'XX', 'EX', ARGV[2])\n"
    "  if ARGV[i + 2] ~= '' then redis.call('LPUSH', KEYS[3], ARGV[i + 2]) end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if tonumber(ARGV[3]) > 0 then\n"
    "  redis.call('HINCRBY', KEYS[2], 'inflight_records', -tonumber(ARGV[3]))\n"
    "end\n"
    "return 1\n";

static const char *const scripts[SCRIPT_COUNT] = {script_enqueue, script_stats, script_claim,
                                                  script_finish};

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

sw_redis *sw_redis_new(const char *host, int port, int timeout_ms, const char *prefix)
{
    sw_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    snprintf(r->host, sizeof r->host, "%s", host);
    r->port = port;
    r->timeout_ms = timeout_ms;
    snprintf(r->prefix, sizeof r->prefix, "%s", prefix);
    snprintf(r->k_queue, sizeof r->k_queue, "%s:queue", prefix);
    snprintf(r->k_stats, sizeof r->k_stats, "%s:stats", prefix);
    snprintf(r->k_dead, sizeof r->k_dead, "%s:dead", prefix);
    snprintf(r->k_job, sizeof r->k_job, "%s:job:", prefix);
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
    r->ctx = c;
    r->err = SW_REDIS_OK;
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

int sw_redis_enqueue(sw_redis *r, int njobs, const sw_redis_job *jobs, int ttl_s)
{
    int argc = 6 + 4 * njobs, rc = -1;
    const char **argv = malloc((size_t)argc * sizeof *argv);
    size_t *lens = malloc((size_t)argc * sizeof *lens);
    char (*keys)[128] = malloc((size_t)njobs * sizeof *keys);
    char (*nrec)[24] = malloc((size_t)njobs * sizeof *nrec);
    char ttl[24];
    if (argv == NULL || lens == NULL || keys == NULL || nrec == NULL) {
        set_err(r, SW_REDIS_EREPLY, "enqueue", "out of memory");
        goto out;
    }
    argv[2] = "2";
    lens[2] = 1;
    argv[3] = r->k_queue;
    lens[3] = strlen(r->k_queue);
    argv[4] = r->k_stats;
    lens[4] = strlen(r->k_stats);
    lens[5] = (size_t)snprintf(ttl, sizeof ttl, "%d", ttl_s);
    argv[5] = ttl;
    for (int j = 0; j < njobs; j++) {
        const char **a = argv + 6 + 4 * j;
        size_t *l = lens + 6 + 4 * j;
        a[0] = keys[j];
        l[0] = (size_t)snprintf(keys[j], sizeof keys[j], "%s%s", r->k_job, jobs[j].job_id);
        a[1] = jobs[j].env;
        l[1] = jobs[j].env_len;
        a[2] = jobs[j].status;
        l[2] = jobs[j].status_len;
        a[3] = nrec[j];
        l[3] = (size_t)snprintf(nrec[j], sizeof nrec[j], "%ld", jobs[j].nrecords);
    }
    redisReply *rep = eval(r, SCRIPT_ENQUEUE, argc, argv, lens, "enqueue", 0);
    if (rep) {
        freeReplyObject(rep);
        rc = 0;
    }
out:
    free(argv);
    free(lens);
    free(keys);
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
    size_t lens[] = {0, 0, 1, strlen(r->k_queue), strlen(r->k_stats), strlen(r->k_dead)};
    redisReply *rep = eval(r, SCRIPT_STATS, 6, argv, lens, "stats", 1);
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

int sw_redis_claim(sw_redis *r, const char *proc_key, long max_records, long max_jobs,
                   void **reply)
{
    char maxr[24], maxj[24];
    snprintf(maxr, sizeof maxr, "%ld", max_records);
    snprintf(maxj, sizeof maxj, "%ld", max_jobs);
    const char *argv[] = {NULL, NULL, "3", r->k_queue, proc_key, r->k_stats, maxr, maxj};
    size_t lens[] = {0, 0, 1, strlen(r->k_queue), strlen(proc_key), strlen(r->k_stats),
                     strlen(maxr), strlen(maxj)};
    return array_reply(r, eval(r, SCRIPT_CLAIM, 8, argv, lens, "claim", 0), reply, "claim");
}

int sw_redis_processing(sw_redis *r, const char *proc_key, void **reply)
{
    redisReply *rep = read_cmd(r, "lrange", "LRANGE %s 0 -1", proc_key);
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

int sw_redis_finish(sw_redis *r, const char *proc_key, int njobs, const sw_redis_done *jobs,
                    long long nrecords, int ttl_s)
{
    int argc = 9 + 3 * njobs, rc = -1;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    size_t *lens = calloc((size_t)argc, sizeof *lens);
    char ttl[24], nrec[24];
    if (argv == NULL || lens == NULL) {
        set_err(r, SW_REDIS_EREPLY, "finish", "out of memory");
        goto out;
    }
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    snprintf(nrec, sizeof nrec, "%lld", nrecords);
    const char *fixed[] = {NULL, NULL, "3", proc_key, r->k_stats, r->k_dead, r->k_job, ttl, nrec};
    for (int i = 0; i < 9; i++) {
        argv[i] = fixed[i];
        lens[i] = fixed[i] ? strlen(fixed[i]) : 0;
    }
    for (int j = 0; j < njobs; j++) {
        int a = 9 + 3 * j;
        argv[a] = jobs[j].job_id;
        lens[a] = strlen(jobs[j].job_id);
        argv[a + 1] = jobs[j].status;
        lens[a + 1] = jobs[j].status_len;
        argv[a + 2] = jobs[j].dead_env ? jobs[j].dead_env : "";
        lens[a + 2] = jobs[j].dead_env ? jobs[j].dead_len : 0;
    }
    redisReply *rep = eval(r, SCRIPT_FINISH, argc, argv, lens, "finish", 0);
    if (rep) {
        freeReplyObject(rep);
        rc = 0;
    }
out:
    free(argv);
    free(lens);
    return rc;
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
