#include "redis.h"

#include <hiredis/hiredis.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "clock.h"
#include "cluster.h"
#include "redis_int.h"

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

const char *sw_redis_hint(enum sw_redis_err e, const char *code, const char *errstr)
{
    static const struct {
        const char *word, *hint;
    } by_word[] = {
        {"WRONGPASS", "Redis refused [redis] user and password: set them "
                      "(SPILLWAY_REDIS_USER, SPILLWAY_REDIS_PASSWORD) to what Redis' "
                      "requirepass or ACL expects"},
        {"NOAUTH", "Redis wants a password: set [redis] password (SPILLWAY_REDIS_PASSWORD)"},
        {"NOPERM", "the Redis user may not run a command Spillway needs: see docs/SECURITY.md "
                   "for the ACL"},
        {"READONLY", "this Redis is a replica: point [redis] at the master, or use sentinels"},
        {"LOADING", "Redis is loading its data after a restart and answers when done"},
        {"MASTERDOWN", "the replica lost its master: see Sentinel or the cluster"},
        {"MISCONF", "Redis cannot save to disk and refuses writes: check its disk and log"},
        {"CLUSTERDOWN", "the Redis Cluster is down or a slot has no master"},
        {"CROSSSLOT", "the keys span slots: give [redis] prefix a {hash tag}"},
    };
    const char *text = errstr ? errstr : "";
    for (size_t i = 0; i < sizeof by_word / sizeof by_word[0]; i++)
        if ((code && strcmp(code, by_word[i].word) == 0) || strstr(text, by_word[i].word))
            return by_word[i].hint;
    switch (e) {
    case SW_REDIS_ECONNECT: return "check that Redis runs and is reachable at [redis] host:port "
                                   "(or sentinels, cluster_nodes)";
    case SW_REDIS_EIO: return "Redis stopped answering mid-command: check its load and the "
                              "network, or raise [redis] timeout_ms";
    case SW_REDIS_EOOM: return "Redis is at maxmemory: raise it, drain the queue, or shorten "
                               "status_ttl_s";
    case SW_REDIS_ENOACK: return "fewer replicas than [redis] min_replica_acks confirmed the "
                                 "write: check the replicas";
    case SW_REDIS_EFULL: return "the queue is over max_queue_records: add flushers";
    default: return "see Redis' log";
    }
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

void sw_redis_set_err(sw_redis *r, enum sw_redis_err err, const char *what, const char *fmt, ...)
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

/* Let go of the connection an ASKed write went on. */
static void drop_ask_ctx(sw_redis *r)
{
    if (r->route && r->route->ask_ctx) {
        redisFree(r->route->ask_ctx);
        r->route->ask_ctx = NULL;
    }
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
                             o->sentinel_password) != 0)
            goto fail;
        snprintf(r->host, sizeof r->host, "(not yet resolved)");
        r->port = 0;
    }
    if (o->cluster_nodes && o->cluster_nodes[0] != '\0') {
        char why[200];
        r->route = calloc(1, sizeof *r->route);
        if (r->route == NULL)
            goto fail;
        r->route->nseeds = sw_endpoints_parse(o->cluster_nodes, r->route->seeds,
                                              SW_ENDPOINTS_MAX, why, sizeof why);
        if (r->route->nseeds < 0 || !sw_cluster_has_tag(o->prefix))
            goto fail;
        r->route->slot = sw_cluster_slot(o->prefix, strlen(o->prefix));
        snprintf(r->host, sizeof r->host, "(not yet located)");
        r->port = 0;
    }
    return r;
fail:
    sw_redis_free(r);
    return NULL;
}

void sw_redis_free(sw_redis *r)
{
    if (r == NULL)
        return;
    sw_redis_disconnect(r);
    drop_ask_ctx(r);
    free(r->sentinel);
    free(r->route);
    free(r);
}

int sw_redis_set_timeout(sw_redis *r, void *ctx, int ms)
{
    redisContext *c = ctx;
    struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
    if (redisSetTimeout(c, tv) == REDIS_OK)
        return 0;
    sw_redis_set_err(r, SW_REDIS_ECONNECT, "set timeout", "%s", c->errstr);
    return -1;
}

void *sw_redis_open_node(sw_redis *r, const char *host, int port, int connect_ms,
                         int command_ms)
{
    struct timeval ctv = {connect_ms / 1000, (connect_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, ctv);
    if (c == NULL || c->err) {
        sw_redis_set_err(r, SW_REDIS_ECONNECT, "connect", "%s:%d: %s", host, port,
                         c ? c->errstr : "out of memory");
        goto fail;
    }
    if (sw_redis_set_timeout(r, c, command_ms) != 0)
        goto fail;
    redisEnableKeepAlive(c);
    if (r->password[0] != '\0') {
        /* Arguments go as separate bulk strings, so a password may hold
         * any bytes; the reply never echoes it. */
        redisReply *rep = r->user[0] ? redisCommand(c, "AUTH %s %s", r->user, r->password)
                                     : redisCommand(c, "AUTH %s", r->password);
        if (rep == NULL || rep->type != REDIS_REPLY_STATUS) {
            sw_redis_set_err(r, SW_REDIS_ECONNECT, "auth", "%s:%d: %s", host, port,
                             rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                             : rep ? "unexpected reply" : c->errstr);
            if (rep)
                freeReplyObject(rep);
            goto fail;
        }
        freeReplyObject(rep);
    }
    return c;
fail:
    if (c)
        redisFree(c);
    return NULL;
}

int sw_redis_left_ms(const sw_redis *r, int64_t deadline)
{
    int64_t left = deadline - sw_clock_mono_ms();
    return left <= 0 ? 0 : left < r->timeout_ms ? (int)left : r->timeout_ms;
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
    /* Finding the master (asking Sentinels, or cluster nodes) and
     * connecting to it take timeout_ms in all, however many are asked. */
    int64_t deadline = now + r->timeout_ms;
    redisContext *c = NULL;
    if (r->sentinel) {
        c = sw_redis_via_sentinel(r, deadline);
    } else {
        if (r->route) {
            /* Every new connection learns the slot's owner afresh, unless
             * a MOVED just named it. */
            if (!r->route->moved && sw_redis_locate(r, deadline) != 0)
                goto fail;
            r->route->moved = 0;
            snprintf(r->host, sizeof r->host, "%s", r->route->owner.host);
            r->port = r->route->owner.port;
        }
        /* However long the search took, the master gets a fair try. */
        int ms = sw_redis_left_ms(r, deadline);
        c = sw_redis_open_node(r, r->host, r->port, ms > 50 ? ms : 50, r->timeout_ms);
    }
    if (c == NULL)
        goto fail;
    r->ctx = c;
    r->err = SW_REDIS_OK;
    if (r->connects > 0 && r->reconnects)
        atomic_fetch_add_explicit(r->reconnects, 1, memory_order_relaxed);
    r->connects++;
    return 0;
fail:
    /* From when the attempt ended: a slow walk is not repeated at once. */
    r->next_connect_ms = sw_clock_mono_ms() + 100;
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
    if (r->route)
        r->route->asked = 0;
    if (rep == NULL) {
        sw_redis_set_err(r, SW_REDIS_EIO, what, "%s", c && c->err ? c->errstr : "no reply");
        sw_redis_disconnect(r);
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        enum sw_redis_err e = sw_redis_classify(rep->str, in_script);
        sw_redis_set_err(r, e, what, "%s", rep->str);
        snprintf(r->code, sizeof r->code, "%.*s", (int)strcspn(rep->str, " "), rep->str);
        int moved = 0;
        if (r->route) {
            /* Nothing ran: the cluster sends us elsewhere. A MOVED names
             * the slot's owner from now on (one we cannot read sends us
             * back to CLUSTER SLOTS); an ASK, where to send this one
             * command. An empty host is the node that answered. */
            int slot = -1;
            sw_endpoint to;
            enum sw_redirect k = sw_cluster_redirect(rep->str, &slot, &to);
            if (k != SW_REDIRECT_NONE && to.host[0] == '\0')
                snprintf(to.host, sizeof to.host, "%s", r->host);
            r->route->asked = k == SW_REDIRECT_ASK && slot == r->route->slot;
            if (r->route->asked)
                r->route->ask_to = to;
            if (k == SW_REDIRECT_MOVED && slot == r->route->slot) {
                r->route->owner = to;
                moved = 1;
            } else if (strcmp(r->code, "MOVED") == 0) {
                r->route->owner.port = 0;
                moved = -1;
            }
            if (r->redirects && (moved || r->route->asked || strcmp(r->code, "TRYAGAIN") == 0))
                atomic_fetch_add_explicit(&r->redirects[r->route->asked ? SW_REDIRECT_ASK
                                                        : moved ? SW_REDIRECT_MOVED : 0],
                                          1, memory_order_relaxed);
        }
        freeReplyObject(rep);
        if (e == SW_REDIS_EPROTO || drop_after(r->code) || moved)
            sw_redis_disconnect(r);
        if (moved > 0)
            r->route->moved = 1;
        return NULL;
    }
    int ok = want == SW_REPLY_ANY || (int)want == rep->type ||
             (want == SW_REPLY_STRING_OR_NIL &&
              (rep->type == REDIS_REPLY_STRING || rep->type == REDIS_REPLY_NIL));
    if (!ok) {
        sw_redis_set_err(r, SW_REDIS_EPROTO, what,
                         "reply of type %d where %d was expected", rep->type,
                         (int)want);
        freeReplyObject(rep);
        sw_redis_disconnect(r);
        return NULL;
    }
    return rep;
}

void sw_redis_fail_proto(sw_redis *r, const char *what, const char *detail)
{
    sw_redis_set_err(r, SW_REDIS_EPROTO, what, "%s", detail);
    sw_redis_disconnect(r);
}

/* One command: a format line with its arguments, or an argument vector. */
typedef struct call {
    const char *fmt;
    va_list *ap;
    int argc;
    const char **argv;
    const size_t *lens;
} call;

/* Send `k` on `c` and read its one reply. */
static redisReply *send_on(redisContext *c, const call *k)
{
    if (k->fmt == NULL)
        return redisCommandArgv(c, k->argc, k->argv, k->lens);
    va_list ap;
    va_copy(ap, *k->ap);
    redisReply *rep = redisvCommand(c, k->fmt, ap);
    va_end(ap);
    return rep;
}

/* MOVED redirections one call follows at most; ASK and TRYAGAIN are
 * followed until the call's deadline instead (each ASK ends in a reply,
 * or in a TRYAGAIN that pauses). */
#define MAX_HOPS 5

/* After a failed call, in cluster mode: was it sent elsewhere or asked to
 * wait (nothing ran), and may it try again? MOVED: the connection is
 * already dropped and the next goes to the named owner. TRYAGAIN: a slot
 * is half-migrated under this command's keys; a short pause. 1 = again. */
static int follow(sw_redis *r, int *hops, int64_t deadline)
{
    if (r->route == NULL || r->err != SW_REDIS_EREFUSED)
        return 0;
    if (strcmp(r->code, "MOVED") == 0)
        return r->route->moved && ++*hops <= MAX_HOPS;
    if (strcmp(r->code, "TRYAGAIN") == 0) {
        int64_t left = deadline - sw_clock_mono_ms();
        if (left <= 0)
            return 0;
        sw_clock_sleep_ms(left < 20 ? left : 20);
        return 1;
    }
    return 0;
}

/* ASK: the slot is moving, and this command's keys are at the importing
 * node already. Send it there once, after ASKING, on a connection of its
 * own: for every other command the slot is still the old owner's. */
static redisReply *ask_once(sw_redis *r, const call *k, enum sw_reply_type want,
                            const char *what, int in_script, int writes, int64_t deadline)
{
    sw_endpoint to = r->route->ask_to;
    int ms = sw_redis_left_ms(r, deadline);
    r->route->asked = 0;
    redisContext *c = sw_redis_open_node(r, to.host, to.port, ms > 0 ? ms : 1, r->timeout_ms);
    if (c == NULL)
        return NULL;
    redisReply *ok = redisCommand(c, "ASKING");
    if (ok == NULL || ok->type != REDIS_REPLY_STATUS) {
        sw_redis_set_err(r, SW_REDIS_ECONNECT, "asking", "%s:%d: %s", to.host, to.port,
                         ok && ok->type == REDIS_REPLY_ERROR ? ok->str : ok ? "unexpected reply"
                         : c->errstr);
        if (ok)
            freeReplyObject(ok);
        redisFree(c);
        return NULL;
    }
    freeReplyObject(ok);
    void *home = r->ctx;
    r->ctx = c;
    redisReply *rep = judge(r, send_on(c, k), want, what, in_script);
    if (rep && writes && r->min_replica_acks > 0 && r->ctx == c) {
        /* The write went to the importing node: only a WAIT on this
         * connection counts it, so it is kept for
         * sw_redis_wait_replicas() (until the next call begins). */
        r->route->ask_ctx = c;
    } else if (r->ctx) {
        redisFree(r->ctx);
    }
    r->ctx = home;
    if (r->route->moved)
        sw_redis_disconnect(r);
    return rep;
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
    if (r->route) {
        r->route->asked = 0;
        drop_ask_ctx(r);
    }
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
    va_list ap;
    va_start(ap, fmt);
    call k = {fmt, &ap, 0, NULL, NULL};
    redisReply *rep = NULL;
    int64_t deadline = sw_clock_mono_ms() + r->timeout_ms;
    int hops = 0, io_retry = reads;
    begin(r, reads);
    for (;;) {
        int fresh = r->ctx == NULL;
        if (sw_redis_connect(r) != 0)
            break;
        rep = judge(r, send_on(r->ctx, &k), want, what, 0);
        if (rep == NULL && r->route && r->route->asked && sw_clock_mono_ms() < deadline)
            rep = ask_once(r, &k, want, what, 0, !reads, deadline);
        if (rep != NULL)
            break;
        if (follow(r, &hops, deadline))
            continue;
        if (!reads || fresh || r->err != SW_REDIS_EIO || io_retry-- <= 0)
            break;
    }
    va_end(ap);
    return rep;
}

static int load_script(sw_redis *r, enum sw_script s)
{
    size_t len;
    const char *text = sw_script_text(s, &len);
    if (text == NULL) {
        sw_redis_set_err(r, SW_REDIS_ENOMEM, "script load",
                         "script %s not built", sw_script_name(s));
        return -1;
    }
    const char *argv[] = {"SCRIPT", "LOAD", text};
    size_t lens[] = {6, 4, len};
    call k = {NULL, NULL, 3, argv, lens};
    redisReply *rep = judge(r, send_on(r->ctx, &k), SW_REPLY_STRING, "script load", 0);
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
        sw_redis_set_err(r, SW_REDIS_ENOMEM, what, "out of memory");
        return NULL;
    }
    /* The builder kept the first three slots for these. */
    int argc = a->n + SW_REDIS_ARGS_HEAD;
    const char **argv = a->v;
    size_t *lens = a->len;
    snprintf(nkeys, sizeof nkeys, "%d", a->nkeys);
    argv[2] = nkeys;
    lens[2] = strlen(nkeys);
    call k = {NULL, NULL, argc, argv, lens};
    int64_t deadline = sw_clock_mono_ms() + r->timeout_ms;
    int io_retry = reads, noscript = 0, hops = 0;
    for (;;) {
        int fresh = r->ctx == NULL;
        if (sw_redis_connect(r) != 0)
            goto out;
        if (r->sha[s][0] == '\0' && load_script(r, s) != 0) {
            /* Loading writes nothing: after a broken old connection, once
             * more on a new one; after a MOVED, at the new owner. And the
             * script itself was not sent, so a failure here is never
             * "maybe done". */
            if (r->err == SW_REDIS_EIO && !fresh && io_retry-- > 0)
                continue;
            if (follow(r, &hops, deadline))
                continue;
            if (sw_redis_maybe_done(r->err))
                r->err = SW_REDIS_ECONNECT;
            goto out;
        }
        argv[0] = "EVALSHA";
        lens[0] = 7;
        argv[1] = r->sha[s];
        lens[1] = 40;
        rep = send_on(r->ctx, &k);
        if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOSCRIPT", 8) == 0) {
            /* Redis restarted or its scripts were flushed: the script did
             * not run. Load it again. */
            freeReplyObject(rep);
            rep = NULL;
            r->sha[s][0] = '\0';
            if (++noscript < 4)
                continue;
            sw_redis_set_err(r, SW_REDIS_EREFUSED, what,
                             "the script vanished from Redis four times (NOSCRIPT)");
            snprintf(r->code, sizeof r->code, "NOSCRIPT");
            goto out;
        }
        rep = judge(r, rep, want, what, 1);
        if (rep == NULL && r->route && r->route->asked && sw_clock_mono_ms() < deadline) {
            /* The importing node may not know the script: send its text. */
            size_t len;
            argv[0] = "EVAL";
            lens[0] = 4;
            argv[1] = sw_script_text(s, &len);
            lens[1] = len;
            rep = ask_once(r, &k, want, what, 1, !reads, deadline);
        }
        if (rep != NULL)
            goto out;
        if (follow(r, &hops, deadline))
            continue;
        if (!reads || fresh || r->err != SW_REDIS_EIO || io_retry-- <= 0)
            goto out;
    }
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

/* WAIT on the current connection for min_replica_acks. 0, or -1 with
 * err (ENOACK, or what befell the connection). */
static int wait_here(sw_redis *r)
{
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
        /* The writes went; whether they reached replicas is unknown. A
         * refusal (NOPERM: the ACL lacks +wait) is as unknown as a lost
         * reply; /readyz says so beforehand. */
        if (r->ctx == NULL && r->err == SW_REDIS_OK)
            sw_redis_set_err(r, SW_REDIS_ENOACK, "wait", "the connection was gone");
        else if (!sw_redis_maybe_done(r->err))
            r->err = SW_REDIS_ENOACK;
        return -1;
    }
    long long got = rep->integer;
    freeReplyObject(rep);
    if (got < r->min_replica_acks) {
        sw_redis_set_err(r, SW_REDIS_ENOACK, "wait",
                         "%lld of %d replicas ([redis] min_replica_acks) "
                         "confirmed the write within %d ms", got, r->min_replica_acks, wait_ms);
        return -1;
    }
    return 0;
}

int sw_redis_wait_replicas(sw_redis *r)
{
    if (r->min_replica_acks <= 0)
        return 0;
    int rc = 0;
    if (r->route && r->route->ask_ctx) {
        /* A write went to a migrating slot's importing node: its
         * replicas must confirm it, on that connection. */
        void *home = r->ctx;
        r->ctx = r->route->ask_ctx;
        r->route->ask_ctx = NULL;
        rc = wait_here(r);
        if (r->ctx)
            redisFree(r->ctx);
        r->ctx = home;
    }
    return rc == 0 ? wait_here(r) : rc;
}
