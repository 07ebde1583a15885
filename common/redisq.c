#include "redisq.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"

enum { SCRIPT_ENQUEUE, SCRIPT_STATS, SCRIPT_CLAIM, SCRIPT_FINISH, SCRIPT_COUNT };

/* KEYS: queue, job, stats. ARGV: envelope, sink, records, enqueued_at, ttl. */
static const char script_enqueue[] =
    "redis.call('LPUSH', KEYS[1], ARGV[1])\n"
    "redis.call('HSET', KEYS[2], 'status', 'queued', 'sink', ARGV[2], 'records', ARGV[3],"
    " 'enqueued_at', ARGV[4])\n"
    "redis.call('EXPIRE', KEYS[2], ARGV[5])\n"
    "redis.call('HINCRBY', KEYS[3], 'queued_records', ARGV[3])\n"
    "return 1\n";

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

/* KEYS: processing, stats, dead. ARGV: job key prefix, now, ttl, records,
 * then per job: id, error ('' = committed), envelope ('' unless failed). */
static const char script_finish[] =
    "for i = 5, #ARGV, 3 do\n"
    "  local k = ARGV[1] .. ARGV[i]\n"
    "  local exists = redis.call('EXISTS', k) == 1\n"
    "  if ARGV[i + 1] == '' then\n"
    "    if exists then\n"
    "      redis.call('HSET', k, 'status', 'committed', 'committed_at', ARGV[2])\n"
    "      redis.call('EXPIRE', k, ARGV[3])\n"
    "    end\n"
    "  else\n"
    "    if exists then\n"
    "      redis.call('HSET', k, 'status', 'failed', 'error', ARGV[i + 1], 'failed_at', ARGV[2])\n"
    "      redis.call('EXPIRE', k, ARGV[3])\n"
    "    end\n"
    "    redis.call('LPUSH', KEYS[3], ARGV[i + 2])\n"
    "  end\n"
    "end\n"
    "redis.call('DEL', KEYS[1])\n"
    "if tonumber(ARGV[4]) > 0 then\n"
    "  redis.call('HINCRBY', KEYS[2], 'inflight_records', -tonumber(ARGV[4]))\n"
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
 * (Redis restarted or SCRIPT FLUSH). argv[0..2] are filled in here. */
static redisReply *eval(sw_redis *r, int which, int argc, const char **argv, size_t *lens,
                        const char *what)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (sw_redis_connect(r) != 0)
            return NULL;
        if (r->sha[which][0] == '\0' && load_script(r, which) != 0)
            return NULL;
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
        return checked(r, rep, what);
    }
    set_err(r, SW_REDIS_EREPLY, what, "script vanished twice");
    return NULL;
}

int sw_redis_ping(sw_redis *r)
{
    if (sw_redis_connect(r) != 0)
        return -1;
    redisReply *rep = checked(r, redisCommand(r->ctx, "PING"), "ping");
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

int sw_redis_enqueue(sw_redis *r, const char *job_id, const char *sink, long nrecords,
                     int64_t enqueued_us, int ttl_s, const char *env, size_t len)
{
    char jobkey[160], nrec[24], ttl[24], when[32];
    snprintf(jobkey, sizeof jobkey, "%s%s", r->k_job, job_id);
    snprintf(nrec, sizeof nrec, "%ld", nrecords);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    sw_clock_format(enqueued_us, when);
    const char *argv[] = {NULL, NULL, "3", r->k_queue, jobkey, r->k_stats, env, sink, nrec,
                          when, ttl};
    size_t lens[] = {0, 0, 1, strlen(r->k_queue), strlen(jobkey), strlen(r->k_stats), len,
                     strlen(sink), strlen(nrec), strlen(when), strlen(ttl)};
    redisReply *rep = eval(r, SCRIPT_ENQUEUE, 11, argv, lens, "enqueue");
    if (rep == NULL)
        return -1;
    freeReplyObject(rep);
    return 0;
}

static void copy_field(char *dst, size_t dstlen, const redisReply *v)
{
    size_t n = v->len < dstlen - 1 ? v->len : dstlen - 1;
    memcpy(dst, v->str, n);
    dst[n] = '\0';
}

int sw_redis_job(sw_redis *r, const char *job_id, sw_job_status *out)
{
    if (sw_redis_connect(r) != 0)
        return -1;
    redisReply *rep = checked(r, redisCommand(r->ctx, "HGETALL %s%s", r->k_job, job_id), "job");
    if (rep == NULL)
        return -1;
    memset(out, 0, sizeof *out);
    int found = rep->type == REDIS_REPLY_ARRAY && rep->elements >= 2;
    for (size_t i = 0; found && i + 1 < rep->elements; i += 2) {
        const char *k = rep->element[i]->str;
        const redisReply *v = rep->element[i + 1];
        if (strcmp(k, "status") == 0) copy_field(out->status, sizeof out->status, v);
        else if (strcmp(k, "sink") == 0) copy_field(out->sink, sizeof out->sink, v);
        else if (strcmp(k, "records") == 0) out->records = strtoll(v->str, NULL, 10);
        else if (strcmp(k, "enqueued_at") == 0) copy_field(out->enqueued_at, sizeof out->enqueued_at, v);
        else if (strcmp(k, "committed_at") == 0) copy_field(out->committed_at, sizeof out->committed_at, v);
        else if (strcmp(k, "error") == 0) copy_field(out->error, sizeof out->error, v);
    }
    freeReplyObject(rep);
    return found;
}

int sw_redis_stats(sw_redis *r, sw_queue_stats *out)
{
    const char *argv[] = {NULL, NULL, "3", r->k_queue, r->k_stats, r->k_dead};
    size_t lens[] = {0, 0, 1, strlen(r->k_queue), strlen(r->k_stats), strlen(r->k_dead)};
    redisReply *rep = eval(r, SCRIPT_STATS, 6, argv, lens, "stats");
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
    return array_reply(r, eval(r, SCRIPT_CLAIM, 8, argv, lens, "claim"), reply, "claim");
}

int sw_redis_processing(sw_redis *r, const char *proc_key, void **reply)
{
    if (sw_redis_connect(r) != 0)
        return -1;
    redisReply *rep = checked(r, redisCommand(r->ctx, "LRANGE %s 0 -1", proc_key), "lrange");
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

int sw_redis_finish(sw_redis *r, const char *proc_key, int njobs, const char *const *ids,
                    const char *const *errors, const char *const *envs,
                    const size_t *env_lens, long long nrecords, int64_t now_us, int ttl_s)
{
    int argc = 10 + 3 * njobs, rc = -1;
    const char **argv = calloc((size_t)argc, sizeof *argv);
    size_t *lens = calloc((size_t)argc, sizeof *lens);
    char when[32], ttl[24], nrec[24];
    if (argv == NULL || lens == NULL) {
        set_err(r, SW_REDIS_EREPLY, "finish", "out of memory");
        goto out;
    }
    sw_clock_format(now_us, when);
    snprintf(ttl, sizeof ttl, "%d", ttl_s);
    snprintf(nrec, sizeof nrec, "%lld", nrecords);
    const char *fixed[] = {NULL, NULL, "3", proc_key, r->k_stats, r->k_dead, r->k_job, when,
                           ttl, nrec};
    for (int i = 0; i < 10; i++) {
        argv[i] = fixed[i];
        lens[i] = fixed[i] ? strlen(fixed[i]) : 0;
    }
    for (int j = 0; j < njobs; j++) {
        int a = 10 + 3 * j;
        argv[a] = ids[j];
        lens[a] = strlen(ids[j]);
        argv[a + 1] = errors[j] ? errors[j] : "";
        lens[a + 1] = strlen(argv[a + 1]);
        argv[a + 2] = errors[j] ? envs[j] : "";
        lens[a + 2] = errors[j] ? env_lens[j] : 0;
    }
    redisReply *rep = eval(r, SCRIPT_FINISH, argc, argv, lens, "finish");
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
