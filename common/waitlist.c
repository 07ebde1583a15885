#include "waitlist.h"

#include <stdio.h>
#include <string.h>

int sw_waitlist_mark(sw_redis *r, const char *job_id, int64_t until_ms)
{
    void *rep = sw_redis_callf(r, "wait", SW_REPLY_INTEGER, 0, "ZADD %s GT %lld %s",
                               r->keys.waiters, (long long)until_ms, job_id);
    if (rep == NULL)
        return -1;
    sw_redis_reply_free(rep);
    return 0;
}

int sw_waitlist_sweep(sw_redis *r, int64_t now_ms)
{
    void *rep = sw_redis_callf(r, "wait", SW_REPLY_INTEGER, 0,
                               "ZREMRANGEBYSCORE %s -inf (%lld", r->keys.waiters,
                               (long long)now_ms);
    if (rep == NULL)
        return -1;
    sw_redis_reply_free(rep);
    return 0;
}

/* One stream entry, [id, [field, value, ...]]: its "ids" split on ','. */
static int entry(sw_redis *r, const void *e, char last[64], sw_waitlist_fn fn, void *ctx)
{
    size_t n;
    const char *eid = sw_redis_reply_len(e) == 2 ? sw_redis_reply_item(e, 0, &n) : NULL;
    const void *fields = eid ? sw_redis_reply_at(e, 1) : NULL;
    if (eid == NULL || n >= 64 || sw_redis_reply_type(fields) != SW_REPLY_ARRAY ||
        sw_redis_check_elements(r, fields, SW_REPLY_STRING, "done") != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "done", "an entry not [id, [field, value...]]");
        return -1;
    }
    memcpy(last, eid, n);
    last[n] = '\0';
    for (size_t i = 0; i + 1 < sw_redis_reply_len(fields); i += 2) {
        size_t fl, vl;
        const char *f = sw_redis_reply_item(fields, i, &fl);
        const char *v = sw_redis_reply_item(fields, i + 1, &vl);
        if (fl != 3 || memcmp(f, "ids", 3) != 0)
            continue;
        for (const char *p = v, *end = v + vl; p < end;) {
            const char *comma = memchr(p, ',', (size_t)(end - p));
            const char *stop = comma ? comma : end;
            if (stop > p)
                fn(ctx, p, (size_t)(stop - p));
            p = stop + 1;
        }
    }
    return 0;
}

int sw_waitlist_read(sw_redis *r, char last[64], int block_ms, sw_waitlist_fn fn, void *ctx)
{
    void *rep = sw_redis_callf(r, "done", SW_REPLY_ANY, 1, "XREAD COUNT 100 BLOCK %d STREAMS %s %s",
                               block_ms, r->keys.done, last);
    if (rep == NULL)
        return -1;
    int got = 0;
    if (sw_redis_reply_type(rep) == SW_REPLY_NIL)
        goto out;
    /* [[stream, [entry, ...]]] */
    const void *s = sw_redis_reply_type(rep) == SW_REPLY_ARRAY && sw_redis_reply_len(rep) == 1
                        ? sw_redis_reply_at(rep, 0) : NULL;
    const void *entries = s && sw_redis_reply_type(s) == SW_REPLY_ARRAY &&
                                  sw_redis_reply_len(s) == 2
                              ? sw_redis_reply_at(s, 1) : NULL;
    if (entries == NULL || sw_redis_reply_type(entries) != SW_REPLY_ARRAY) {
        sw_redis_fail_proto(r, "done", "not [[stream, [entries]]]");
        got = -1;
        goto out;
    }
    for (size_t i = 0; i < sw_redis_reply_len(entries) && got >= 0; i++) {
        const void *e = sw_redis_reply_at(entries, i);
        if (sw_redis_reply_type(e) != SW_REPLY_ARRAY || entry(r, e, last, fn, ctx) != 0) {
            if (r->err != SW_REDIS_EPROTO)
                sw_redis_fail_proto(r, "done", "an entry not an array");
            got = -1;
        } else {
            got++;
        }
    }
out:
    sw_redis_reply_free(rep);
    return got;
}

int sw_waitlist_tail(sw_redis *r, char last[64])
{
    void *rep = sw_redis_callf(r, "done", SW_REPLY_ARRAY, 1, "XREVRANGE %s + - COUNT 1",
                               r->keys.done);
    if (rep == NULL)
        return -1;
    const void *e = sw_redis_reply_len(rep) == 1 ? sw_redis_reply_at(rep, 0) : NULL;
    size_t n = 0;
    const char *id = e && sw_redis_reply_type(e) == SW_REPLY_ARRAY && sw_redis_reply_len(e) == 2
                         ? sw_redis_reply_item(e, 0, &n) : NULL;
    if (sw_redis_reply_len(rep) > 1 || (e && (id == NULL || n == 0 || n >= 64))) {
        sw_redis_fail_proto(r, "done", "XREVRANGE not [[id, fields]]");
        sw_redis_reply_free(rep);
        return -1;
    }
    if (id) {
        memcpy(last, id, n);
        last[n] = '\0';
    } else {
        snprintf(last, 64, "0-0");
    }
    sw_redis_reply_free(rep);
    return 0;
}
