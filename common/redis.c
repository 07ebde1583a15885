#include "redis.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"

_Static_assert(SW_REPLY_STRING == REDIS_REPLY_STRING && SW_REPLY_ARRAY == REDIS_REPLY_ARRAY &&
                   SW_REPLY_INTEGER == REDIS_REPLY_INTEGER && SW_REPLY_NIL == REDIS_REPLY_NIL &&
                   SW_REPLY_STATUS == REDIS_REPLY_STATUS,
               "reply types follow hiredis");

const char *sw_redis_strerror(enum sw_redis_err e)
{
    switch (e) {
    case SW_REDIS_OK: return "ok";
    case SW_REDIS_ECONNECT: return "Redis is not reachable";
    case SW_REDIS_EIO: return "the connection to Redis failed or timed out mid-command";
    case SW_REDIS_EREFUSED: return "Redis refused the command";
    case SW_REDIS_EOOM: return "Redis is out of memory (maxmemory)";
    case SW_REDIS_EFULL: return "the queue is over its high-water mark";
    case SW_REDIS_EPROTO: return "Redis answered something unexpected";
    case SW_REDIS_ENOMEM: return "out of memory";
    case SW_REDIS_ENOACK: return "too few Redis replicas confirmed the write";
    }
    return "?";
}

int sw_redis_maybe_done(enum sw_redis_err e)
{
    return e == SW_REDIS_EIO || e == SW_REDIS_EPROTO || e == SW_REDIS_ENOACK;
}

enum sw_redis_err sw_redis_classify(const char *msg, int in_script)
{
    /* An error raised by a command inside a running script carries
     * " script: " (Redis 7) or "user_script" (a Lua error): the script ran
     * up to there, and may have written. Refusals before a shebang script
     * runs have neither. */
    if (in_script && (strstr(msg, "script:") || strstr(msg, "user_script")))
        return SW_REDIS_EPROTO;
    if (strncmp(msg, "OOM", 3) == 0)
        return SW_REDIS_EOOM;
    return SW_REDIS_EREFUSED;
}

/* Codes after which another connection may meet another server state
 * (a promoted master, a loaded dataset, restored credentials). */
static int drop_after(const char *code)
{
    static const char *const codes[] = {"READONLY", "LOADING", "MASTERDOWN", "NOAUTH",
                                        "WRONGPASS", "CLUSTERDOWN", NULL};
    for (int i = 0; codes[i]; i++) {
        if (strcmp(code, codes[i]) == 0)
            return 1;
    }
    return 0;
}

__attribute__((format(printf, 4, 5)))
static void set_err(sw_redis *r, enum sw_redis_err err, const char *what, const char *fmt, ...)
{
    char detail[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    r->err = err;
    r->code[0] = '\0';
    snprintf(r->errstr, sizeof r->errstr, "%s: %s", what, detail);
}

void sw_redis_disconnect(sw_redis *r)
{
    if (r->ctx)
        redisFree(r->ctx);
    r->ctx = NULL;
    for (int i = 0; i < SW_SCRIPT_COUNT; i++)
        r->sha[i][0] = '\0';
}

sw_redis *sw_redis_new(const sw_redis_opts *o)
{
    sw_redis *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    snprintf(r->host, sizeof r->host, "%s", o->host);
    r->port = o->port;
    r->timeout_ms = o->timeout_ms;
    snprintf(r->user, sizeof r->user, "%s", o->user ? o->user : "");
    snprintf(r->password, sizeof r->password, "%s", o->password ? o->password : "");
    r->min_replica_acks = o->min_replica_acks;
    sw_keys_init(&r->keys, o->prefix);
    if (o->sentinels && o->sentinels[0] != '\0') {
        r->sentinel = malloc(sizeof *r->sentinel);
        if (r->sentinel == NULL ||
            sw_sentinel_init(r->sentinel, o->sentinels, o->master_name ? o->master_name : "",
                             o->timeout_ms, o->sentinel_password) != 0) {
            sw_redis_free(r);
            return NULL;
        }
        snprintf(r->host, sizeof r->host, "(not yet resolved)");
        r->port = 0;
    }
    return r;
}

void sw_redis_free(sw_redis *r)
{
    if (r == NULL)
        return;
    sw_redis_disconnect(r);
    free(r->sentinel);
    free(r);
}

/* A Sentinel may name a master that has just been demoted (its view lags
 * a failover): only a server that says it is a master is used. */
static int confirm_master(sw_redis *r, redisContext *c)
{
    redisReply *rep = redisCommand(c, "ROLE");
    int is = sw_sentinel_role_is_master(rep);
    if (is != 1)
        set_err(r, SW_REDIS_ECONNECT, "sentinel", "%s:%d, named master '%s' by Sentinel, %s",
                r->host, r->port, r->sentinel->master_name,
                rep == NULL ? c->errstr
                : rep->type == REDIS_REPLY_ERROR ? rep->str
                : is == 0 ? "is not a master (a failover is under way)"
                          : "answered ROLE with something unexpected");
    if (rep)
        freeReplyObject(rep);
    return is == 1 ? 0 : -1;
}

int sw_redis_connect(sw_redis *r)
{
    if (r->ctx)
        return 0;
    /* While Redis is down, try at most every 100 ms, so a burst of
     * requests answers 503 at once instead of each waiting to connect. */
    int64_t now = sw_clock_mono_ms();
    if (now < r->next_connect_ms) {
        r->err = SW_REDIS_ECONNECT;
        return -1;
    }
    struct timeval tv = {r->timeout_ms / 1000, (r->timeout_ms % 1000) * 1000};
    redisContext *c = NULL;
    if (r->sentinel) {
        sw_endpoint m;
        if (sw_sentinel_master(r->sentinel, &m) != 0) {
            set_err(r, SW_REDIS_ECONNECT, "sentinel", "no Sentinel named master '%s' (%s)",
                    r->sentinel->master_name, r->sentinel->errstr);
            goto fail;
        }
        snprintf(r->host, sizeof r->host, "%s", m.host);
        r->port = m.port;
    }
    c = redisConnectWithTimeout(r->host, r->port, tv);
    if (c == NULL || c->err) {
        set_err(r, SW_REDIS_ECONNECT, "connect", "%s:%d: %s", r->host, r->port,
                c ? c->errstr : "out of memory");
        goto fail;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        set_err(r, SW_REDIS_ECONNECT, "set timeout", "%s", c->errstr);
        goto fail;
    }
    redisEnableKeepAlive(c);
    if (r->password[0] != '\0') {
        /* Arguments go as separate bulk strings, so a password may hold
         * any bytes; the reply never echoes it. */
        redisReply *rep = r->user[0] ? redisCommand(c, "AUTH %s %s", r->user, r->password)
                                     : redisCommand(c, "AUTH %s", r->password);
        if (rep == NULL || rep->type != REDIS_REPLY_STATUS) {
            set_err(r, SW_REDIS_ECONNECT, "auth", "%s",
                    rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                    : rep ? "unexpected reply" : c->errstr);
            if (rep)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    if (r->sentinel && confirm_master(r, c) != 0)
        goto fail;
    r->ctx = c;
    r->err = SW_REDIS_OK;
    if (r->connects > 0 && r->reconnects)
        atomic_fetch_add_explicit(r->reconnects, 1, memory_order_relaxed);
    r->connects++;
    return 0;
fail:
    if (c)
        redisFree(c);
    r->next_connect_ms = now + 100;
    return -1;
}

/* Judge a reply: NULL (I/O error or timeout: the stream is in doubt), an
 * error answer, or a reply of the wrong type (the stream is in doubt).
 * Returns the reply when it is what the caller expects, else NULL with
 * err set, the connection dropped where it can no longer be trusted. */
static redisReply *judge(sw_redis *r, redisReply *rep, enum sw_reply_type want,
                         const char *what, int in_script)
{
    redisContext *c = r->ctx;
    if (rep == NULL) {
        set_err(r, SW_REDIS_EIO, what, "%s", c && c->err ? c->errstr : "no reply");
        sw_redis_disconnect(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        enum sw_redis_err e = sw_redis_classify(rep->str, in_script);
        set_err(r, e, what, "%s", rep->str);
        snprintf(r->code, sizeof r->code, "%.*s", (int)strcspn(rep->str, " "), rep->str);
        freeReplyObject(rep);
        if (e == SW_REDIS_EPROTO || drop_after(r->code))
            sw_redis_disconnect(r);
        return NULL;
    }
    int ok = want == SW_REPLY_ANY || (int)want == rep->type ||
             (want == SW_REPLY_STRING_OR_NIL &&
              (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL));
    if (!ok) {
        set_err(r, SW_REDIS_EPROTO, what, "reply of type %d where %d was expected", rep->type,
                (int)want);
        freeReplyObject(rep);
        sw_redis_disconnect(r);
        return NULL;
    }
    return rep;
}

void sw_redis_fail_proto(sw_redis *r, const char *what, const char *detail)
{
    set_err(r, SW_REDIS_EPROTO, what, "%s", detail);
    sw_redis_disconnect(r);
}

/* Send argv and read its one reply. */
static redisReply *send_argv(sw_redis *r, int argc, const char **argv, const size_t *lens)
{
    return redisCommandArgv(r->ctx, argc, argv, lens);
}

/* Before a call: its error starts afresh, and before a write, an idle
 * connection is checked. It owes us nothing: if the peer has closed it,
 * reset it, or sent bytes no command asked for, it is of no use, and is
 * replaced before anything is sent on it (the write is then surely not
 * sent, rather than lost). Reads skip the syscall: they are sent again on
 * a fresh connection after a failure on an old one. */
static void begin(sw_redis *r, int reads)
{
    r->err = SW_REDIS_OK;
    r->code[0] = '\0';
    if (reads || r->ctx == NULL)
        return;
    struct pollfd p = {((redisContext *)r->ctx)->fd, POLLIN, 0};
    if (poll(&p, 1, 0) != 0)
        sw_redis_disconnect(r);
}

int sw_redis_connect_for_write(sw_redis *r)
{
    begin(r, 0);
    return sw_redis_connect(r);
}

void *sw_redis_callf(sw_redis *r, const char *what, enum sw_reply_type want, int reads,
                     const char *fmt, ...)
{
    begin(r, reads);
    for (int attempt = 0; attempt < 2; attempt++) {
        int fresh = r->ctx == NULL;
        if (sw_redis_connect(r) != 0)
            return NULL;
        va_list ap;
        va_start(ap, fmt);
        redisReply *rep = judge(r, redisvCommand(r->ctx, fmt, ap), want, what, 0);
        va_end(ap);
        if (rep || !reads || fresh || r->err != SW_REDIS_EIO)
            return rep;
    }
    return NULL;
}

static int load_script(sw_redis *r, enum sw_script s)
{
    size_t len;
    const char *text = sw_script_text(s, &len);
    if (text == NULL) {
        set_err(r, SW_REDIS_ENOMEM, "script load", "script %s not built", sw_script_name(s));
        return -1;
    }
    const char *argv[] = {"SCRIPT", "LOAD", text};
    size_t lens[] = {6, 4, len};
    redisReply *rep = judge(r, send_argv(r, 3, argv, lens), SW_REPLY_STRING, "script load", 0);
    if (rep == NULL)
        return -1;
    if (rep->len != 40) {
        freeReplyObject(rep);
        sw_redis_fail_proto(r, "script load", "a sha1 of other than 40 characters");
        return -1;
    }
    memcpy(r->sha[s], rep->str, 41);
    freeReplyObject(rep);
    return 0;
}

void *sw_redis_eval(sw_redis *r, enum sw_script s, const char *what, enum sw_reply_type want,
                    sw_redis_args *a)
{
    /* Read-only scripts are the ones flagged no-writes. */
    int reads = s == SW_SCRIPT_STATS || s == SW_SCRIPT_OVERVIEW;
    char nkeys[16];
    redisReply *rep = NULL;
    begin(r, reads);
    if (a->oom) {
        set_err(r, SW_REDIS_ENOMEM, what, "out of memory");
        return NULL;
    }
    /* The builder kept the first three slots for these. */
    int argc = a->n + SW_REDIS_ARGS_HEAD;
    const char **argv = a->v;
    size_t *lens = a->len;
    snprintf(nkeys, sizeof nkeys, "%d", a->nkeys);
    argv[0] = "EVALSHA";
    lens[0] = 7;
    argv[2] = nkeys;
    lens[2] = strlen(nkeys);
    int io_retry = reads;
    for (int attempt = 0; attempt < 4; attempt++) {
        int fresh = r->ctx == NULL;
        if (sw_redis_connect(r) != 0)
            goto out;
        if (r->sha[s][0] == '\0' && load_script(r, s) != 0) {
            /* Loading writes nothing: after a broken old connection, once
             * more on a new one. And the script itself was not sent, so a
             * failure here is never "maybe done". */
            if (r->err == SW_REDIS_EIO && !fresh && io_retry-- > 0)
                continue;
            if (sw_redis_maybe_done(r->err))
                r->err = SW_REDIS_ECONNECT;
            goto out;
        }
        argv[1] = r->sha[s];
        lens[1] = 40;
        rep = send_argv(r, argc, argv, lens);
        if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            /* Redis restarted or its scripts were flushed: the script did
             * not run. Load it again. */
            freeReplyObject(rep);
            rep = NULL;
            r->sha[s][0] = '\0';
            continue;
        }
        rep = judge(r, rep, want, what, 1);
        if (rep || !reads || fresh || r->err != SW_REDIS_EIO || io_retry-- <= 0)
            goto out;
    }
    if (rep == NULL && r->err == SW_REDIS_OK)
        set_err(r, SW_REDIS_EREFUSED, what, "the script vanished from Redis four times (NOSCRIPT)");
out:
    return rep;
}

int sw_redis_reply_type(const void *reply)
{
    return ((const redisReply *)reply)->type;
}

long long sw_redis_reply_int(const void *reply)
{
    return ((const redisReply *)reply)->integer;
}

const char *sw_redis_reply_str(const void *reply, size_t *len)
{
    const redisReply *rep = reply;
    if (rep->type != REDIS_REPLY_STRING && rep->type != REDIS_REPLY_STATUS) {
        *len = 0;
        return NULL;
    }
    *len = rep->len;
    return rep->str;
}

size_t sw_redis_reply_len(const void *reply)
{
    const redisReply *rep = reply;
    return rep && rep->type == REDIS_REPLY_ARRAY ? rep->elements : 0;
}

const void *sw_redis_reply_at(const void *reply, size_t i)
{
    return ((const redisReply *)reply)->element[i];
}

const char *sw_redis_reply_item(const void *reply, size_t i, size_t *len)
{
    return sw_redis_reply_str(sw_redis_reply_at(reply, i), len);
}

void sw_redis_reply_free(void *reply)
{
    if (reply)
        freeReplyObject(reply);
}

int sw_redis_check_elements(sw_redis *r, const void *reply, enum sw_reply_type want,
                            const char *what)
{
    const redisReply *rep = reply;
    if (rep->type != REDIS_REPLY_ARRAY) {
        sw_redis_fail_proto(r, what, "not an array");
        return -1;
    }
    for (size_t i = 0; i < rep->elements; i++) {
        int t = rep->element[i]->type;
        int ok = (int)want == t || (want == SW_REPLY_STRING_OR_NIL &&
                                    (t == REDIS_REPLY_STRING || t == REDIS_REPLY_NIL));
        if (!ok) {
            sw_redis_fail_proto(r, what, "an element of an unexpected type");
            return -1;
        }
    }
    return 0;
}

/* Argument builder. Numbers live in blocks that never move. */
#define NUMS_PER_BLOCK 64
struct sw_redis_nums {
    struct sw_redis_nums *next;
    int used;
    char v[NUMS_PER_BLOCK][24];
};

void sw_redis_args_init(sw_redis_args *a)
{
    memset(a, 0, sizeof *a);
}

void sw_redis_args_free(sw_redis_args *a)
{
    if (a == NULL)
        return;
    free(a->v);
    free(a->len);
    while (a->nums) {
        struct sw_redis_nums *n = a->nums->next;
        free(a->nums);
        a->nums = n;
    }
    memset(a, 0, sizeof *a);
}

void sw_redis_args_bin(sw_redis_args *a, const void *p, size_t n)
{
    if (a->oom)
        return;
    if (a->n + SW_REDIS_ARGS_HEAD >= a->cap) {
        int cap = a->cap ? a->cap * 2 : 32;
        const char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (v)
            a->v = v;
        size_t *len = v ? realloc(a->len, (size_t)cap * sizeof *len) : NULL;
        if (len)
            a->len = len;
        if (v == NULL || len == NULL) {
            a->oom = 1;
            return;
        }
        a->cap = cap;
    }
    a->v[SW_REDIS_ARGS_HEAD + a->n] = p;
    a->len[SW_REDIS_ARGS_HEAD + a->n++] = n;
}

void sw_redis_args_str(sw_redis_args *a, const char *s)
{
    sw_redis_args_bin(a, s, strlen(s));
}

void sw_redis_args_int(sw_redis_args *a, long long v)
{
    if (a->oom)
        return;
    if (a->nums == NULL || a->nums->used == NUMS_PER_BLOCK) {
        struct sw_redis_nums *b = malloc(sizeof *b);
        if (b == NULL) {
            a->oom = 1;
            return;
        }
        b->used = 0;
        b->next = a->nums;
        a->nums = b;
    }
    char *s = a->nums->v[a->nums->used++];
    int n = snprintf(s, 24, "%lld", v);
    sw_redis_args_bin(a, s, (size_t)n);
}

void sw_redis_args_end_keys(sw_redis_args *a)
{
    a->nkeys = a->n;
}

int sw_redis_wait_replicas(sw_redis *r)
{
    if (r->min_replica_acks <= 0)
        return 0;
    int wait_ms = r->timeout_ms / 2 > 0 ? r->timeout_ms / 2 : 1;
    /* WAIT counts the writes of this connection: it goes on the one the
     * writes went on, or not at all. */
    redisReply *rep = NULL;
    r->err = SW_REDIS_OK;
    r->code[0] = '\0';
    if (r->ctx != NULL)
        rep = judge(r, redisCommand(r->ctx, "WAIT %d %d", r->min_replica_acks, wait_ms),
                    SW_REPLY_INTEGER, "wait", 0);
    if (rep == NULL) {
        /* The writes went; whether they reached replicas is unknown. */
        char was[sizeof r->errstr];
        snprintf(was, sizeof was, "%s",
                 r->err != SW_REDIS_OK ? r->errstr : "the connection was gone");
        if (!sw_redis_maybe_done(r->err))
            set_err(r, SW_REDIS_ENOACK, "wait", "%s", was);
        return -1;
    }
    long long got = rep->integer;
    freeReplyObject(rep);
    if (got < r->min_replica_acks) {
        set_err(r, SW_REDIS_ENOACK, "wait", "%lld of %d replicas ([redis] min_replica_acks) "
                "confirmed the write within %d ms", got, r->min_replica_acks, wait_ms);
        return -1;
    }
    return 0;
}

int sw_redis_writable(sw_redis *r)
{
    redisReply *rep = sw_redis_callf(r, "role", SW_REPLY_ARRAY, 1, "ROLE");
    if (rep == NULL)
        return r->err == SW_REDIS_EREFUSED && strcmp(r->code, "NOPERM") == 0 ? 0 : -1;
    int is = sw_sentinel_role_is_master(rep);
    freeReplyObject(rep);
    if (is < 0) {
        sw_redis_fail_proto(r, "role", "not a ROLE reply");
        return -1;
    }
    if (is == 0) {
        set_err(r, SW_REDIS_EREFUSED, "role", "%s:%d is a replica: writes would be refused",
                r->host, r->port);
        snprintf(r->code, sizeof r->code, "READONLY");
        /* Another connection may reach the master (after a failover). */
        sw_redis_disconnect(r);
        return -1;
    }
    return 0;
}

int sw_redis_ping(sw_redis *r)
{
    void *rep = sw_redis_callf(r, "ping", SW_REPLY_STATUS, 1, "PING");
    if (rep == NULL)
        return -1;
    sw_redis_reply_free(rep);
    return 0;
}

int sw_redis_read_persistence(sw_redis *r, sw_redis_persistence *d)
{
    memset(d, 0, sizeof *d);
    redisReply *rep = sw_redis_callf(r, "config get", SW_REPLY_ARRAY, 1,
                                     "CONFIG GET appendonly appendfsync maxmemory-policy");
    if (rep == NULL)
        return -1;
    if (rep->elements != 6 || sw_redis_check_elements(r, rep, SW_REPLY_STRING, "config get")) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "config get", "not three settings");
        freeReplyObject(rep);
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

/* The value of "name:" in INFO text, or -1. */
static long long info_field(const char *text, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > n && memcmp(p, name, n) == 0 && p[n] == ':')
            return strtoll(p + n + 1, NULL, 10);
        p = eol + 1;
    }
    return -1;
}

int sw_redis_read_memory(sw_redis *r, sw_redis_memory *m)
{
    redisReply *rep = sw_redis_callf(r, "info", SW_REPLY_STRING, 1, "INFO memory");
    if (rep == NULL)
        return -1;
    m->used = info_field(rep->str, rep->len, "used_memory");
    m->max = info_field(rep->str, rep->len, "maxmemory");
    freeReplyObject(rep);
    if (m->used < 0 || m->max < 0) {
        sw_redis_fail_proto(r, "info", "no used_memory or maxmemory in INFO memory");
        return -1;
    }
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
