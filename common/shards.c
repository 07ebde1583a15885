#include "shards.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "hash.h"
#include "jobid.h"
#include "log.h"

sw_redis_opts sw_shards_opts(const sw_redis_opts *o, int shards, int k, char prefix[64])
{
    sw_redis_opts so = *o;
    /* The config keeps prefixes short enough (SW_SHARD_PREFIX_MAX). */
    if (shards > 0 && sw_keys_shard_prefix(o->prefix, k, prefix) > 0)
        so.prefix = prefix;
    return so;
}

long sw_shards_share(long total, int shards)
{
    return shards > 1 ? (total + shards - 1) / shards : total;
}

sw_shards *sw_shards_new(const sw_redis_opts *o, int shards)
{
    sw_shards *s = calloc(1, sizeof *s);
    if (s == NULL)
        return NULL;
    s->sharded = shards > 0;
    s->n = shards > 0 ? shards : 1;
    for (int k = 0; k < s->n; k++) {
        char prefix[64];
        sw_redis_opts so = sw_shards_opts(o, shards, k, prefix);
        if ((shards > 0 && so.prefix != prefix) || (s->q[k] = sw_redis_new(&so)) == NULL) {
            sw_shards_free(s);
            return NULL;
        }
    }
    return s;
}

void sw_shards_free(sw_shards *s)
{
    if (s == NULL)
        return;
    for (int k = 0; k < s->n; k++)
        sw_redis_free(s->q[k]);
    free(s);
}

void sw_shards_count(sw_shards *s, _Atomic uint64_t *reconnects, _Atomic uint64_t *redirects)
{
    for (int k = 0; k < s->n; k++) {
        s->q[k]->reconnects = reconnects;
        s->q[k]->redirects = redirects;
    }
}

sw_redis *sw_shards_job(sw_shards *s, const char *id)
{
    if (!s->sharded)
        return s->q[0];
    int k = sw_jobid_shard(id);
    return k >= 0 && k < s->n ? s->q[k] : NULL;
}

int sw_shards_pick(uint64_t h, int n)
{
    if (n <= 1)
        return 0;
    /* splitmix64's finaliser: every input bit reaches the low bits. */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebULL;
    h ^= h >> 31;
    return (int)(h % (uint64_t)n);
}

int sw_shards_of_key(int n, const char *sink, const char *key)
{
    /* NUL apart, so ("a", "bc") and ("ab", "c") differ. */
    uint64_t h = sw_hash64(sink, strlen(sink) + 1) * 31 ^ sw_hash64(key, strlen(key));
    return sw_shards_pick(h, n);
}

int sw_shards_stats(sw_shards *s, sw_queue_stats *sum, sw_queue_stats *per, sw_redis **failed)
{
    memset(sum, 0, sizeof *sum);
    for (int k = 0; k < s->n; k++) {
        sw_queue_stats st;
        if (sw_queue_stats_get(s->q[k], &st) != 0) {
            *failed = s->q[k];
            return -1;
        }
        if (per)
            per[k] = st;
        sum->queued_records += st.queued_records;
        sum->inflight_records += st.inflight_records;
        sum->queued_jobs += st.queued_jobs;
        sum->dead_jobs += st.dead_jobs;
        if (st.oldest_enqueued_us != 0 && (sum->oldest_enqueued_us == 0 ||
                                           st.oldest_enqueued_us < sum->oldest_enqueued_us))
            sum->oldest_enqueued_us = st.oldest_enqueued_us;
    }
    return 0;
}

int sw_shards_sink_figures(sw_shards *s, const sw_config *cfg, sw_sink_figures *fig,
                           int64_t *oldest_us, sw_redis **failed)
{
    int known = 1, n = cfg->nsinks;
    sw_sink_figures *here = calloc((size_t)n + 1, sizeof *here);
    memset(fig, 0, (size_t)n * sizeof *fig);
    if (oldest_us)
        memset(oldest_us, 0, (size_t)n * sizeof *oldest_us);
    *failed = s->q[0];
    if (here == NULL) {
        s->q[0]->err = SW_REDIS_ENOMEM;
        snprintf(s->q[0]->errstr, sizeof s->q[0]->errstr, "sink figures: out of memory");
        return -1;
    }
    for (int k = 0; k < s->n && known >= 0; k++) {
        memset(here, 0, (size_t)n * sizeof *here);
        int rc = sw_queue_sink_figures(s->q[k], cfg, here);
        if (rc < 0 ||
            (oldest_us && sw_queue_sink_oldest(s->q[k], cfg, rc ? here : NULL, oldest_us) != 0)) {
            *failed = s->q[k];
            known = -1;
            break;
        }
        known &= rc;
        for (int j = 0; j < n; j++) {
            fig[j].depth += here[j].depth;
            fig[j].parked += here[j].parked;
            fig[j].lat_sum_ms += here[j].lat_sum_ms;
            for (int i = 0; i < SW_LAT_NBUCKETS; i++)
                fig[j].lat[i] += here[j].lat[i];
        }
    }
    free(here);
    return known;
}

/* Newest failure first; failed_at is ISO 8601 UTC, so text order is time
 * order. */
static int newer_first(const void *a, const void *b)
{
    const char *x = json_string_value(json_object_get(*(json_t *const *)a, "failed_at"));
    const char *y = json_string_value(json_object_get(*(json_t *const *)b, "failed_at"));
    return strcmp(y ? y : "", x ? x : "");
}

/* The overview's figures summed over the shards; the gauges are also
 * given per shard (the counters only as totals). */
static const struct {
    const char *name;
    int gauge;
} summed[] = {{"depth", 1}, {"in_flight", 1}, {"accepted_records_total", 0},
              {"committed_records_total", 0}, {"dead_dropped_total", 0}, {"queued_jobs", 1},
              {"dead_jobs", 1}};
#define NSUMMED (sizeof summed / sizeof summed[0])

/* Merge shard k's overview `o` into `all`. 0, or -1 (bad shape or memory). */
static int merge(json_t *all, json_t *o, int k)
{
    json_t *shard = json_object();
    if (!json_is_object(o) || shard == NULL ||
        json_object_set_new(shard, "shard", json_integer(k)) != 0)
        goto fail;
    for (size_t i = 0; i < NSUMMED; i++) {
        json_t *v = json_object_get(o, summed[i].name);
        json_int_t n = json_is_integer(v) ? json_integer_value(v) : 0;
        json_int_t t = json_integer_value(json_object_get(all, summed[i].name));
        if (json_object_set_new(all, summed[i].name, json_integer(t + n)) != 0 ||
            (summed[i].gauge && json_object_set_new(shard, summed[i].name, json_integer(n))))
            goto fail;
    }
    json_int_t now = json_integer_value(json_object_get(o, "now_ms"));
    if (now > json_integer_value(json_object_get(all, "now_ms")))
        json_object_set_new(all, "now_ms", json_integer(now));
    json_int_t oldest = json_integer_value(json_object_get(o, "oldest_enqueued_ms"));
    json_int_t cur = json_integer_value(json_object_get(all, "oldest_enqueued_ms"));
    if (oldest > 0 && (cur == 0 || oldest < cur))
        json_object_set_new(all, "oldest_enqueued_ms", json_integer(oldest));
    json_object_set_new(shard, "oldest_enqueued_ms", json_integer(oldest));
    /* cjson encodes an empty table as {}: accept both for the lists. */
    size_t i;
    json_t *v;
    json_t *fl = json_object_get(o, "flushers");
    if (json_is_array(fl))
        json_array_foreach(fl, i, v) {
            if (json_is_object(v) && (json_object_set_new(v, "shard", json_integer(k)) != 0 ||
                                      json_array_append(json_object_get(all, "flushers"), v)))
                goto fail;
        }
    json_t *fa = json_object_get(o, "failed");
    if (json_is_array(fa))
        json_array_foreach(fa, i, v) {
            if (json_array_append(json_object_get(all, "failed"), v) != 0)
                goto fail;
        }
    return json_array_append_new(json_object_get(all, "shards"), shard);
fail:
    json_decref(shard);
    return -1;
}

int sw_shards_overview(sw_shards *s, int failed_limit, sw_buf *out, sw_redis **failed)
{
    if (!s->sharded) {
        if (sw_queue_overview(s->q[0], failed_limit, out) == 0)
            return 0;
        *failed = s->q[0];
        return -1;
    }
    int rc = -1;
    json_t *all = json_object();
    if (all == NULL)
        goto oom;
    for (size_t i = 0; i < NSUMMED; i++)
        json_object_set_new(all, summed[i].name, json_integer(0));
    json_object_set_new(all, "now_ms", json_integer(0));
    json_object_set_new(all, "oldest_enqueued_ms", json_integer(0));
    json_object_set_new(all, "flushers", json_array());
    json_object_set_new(all, "failed", json_array());
    json_object_set_new(all, "shards", json_array());
    for (int k = 0; k < s->n; k++) {
        if (sw_queue_overview(s->q[k], failed_limit, out) != 0) {
            *failed = s->q[k];
            goto out;
        }
        json_error_t jerr;
        json_t *o = json_loadb(out->data, out->len, 0, &jerr);
        int m = merge(all, o, k);
        json_decref(o);
        if (m != 0) {
            sw_redis_fail_proto(s->q[k], "overview", "not the object overview.lua makes");
            *failed = s->q[k];
            goto out;
        }
    }
    json_t *fa = json_object_get(all, "failed");
    size_t nf = json_array_size(fa);
    json_t **v = nf ? malloc(nf * sizeof *v) : NULL;
    if (nf && v == NULL)
        goto oom;
    for (size_t i = 0; i < nf; i++)
        v[i] = json_incref(json_array_get(fa, i));
    if (nf > 1)
        qsort(v, nf, sizeof *v, newer_first);
    json_array_clear(fa);
    int appended = 0;
    for (size_t i = 0; i < nf; i++) {
        if ((long)i < failed_limit)
            appended |= json_array_append(fa, v[i]);
        json_decref(v[i]);
    }
    free(v);
    if (appended != 0)
        goto oom;
    char *text = json_dumps(all, JSON_COMPACT);
    if (text == NULL)
        goto oom;
    sw_buf_reset(out);
    rc = sw_buf_puts(out, text);
    free(text);
    if (rc != 0)
        goto oom;
    goto out;
oom:
    s->q[0]->err = SW_REDIS_ENOMEM;
    snprintf(s->q[0]->errstr, sizeof s->q[0]->errstr, "overview: out of memory");
    *failed = s->q[0];
    rc = -1;
out:
    json_decref(all);
    return rc;
}

/* The count in <p>:layout into `held` ("" none). 0, or -1. */
static int read_layout(sw_redis *r, char *held, size_t heldlen)
{
    void *rep = sw_redis_callf(r, "layout", SW_REPLY_STRING_OR_NIL, 1, "GET %s",
                               r->keys.layout);
    if (rep == NULL)
        return -1;
    size_t len = 0;
    const char *v = sw_redis_reply_str(rep, &len);
    snprintf(held, heldlen, "%.*s", v ? (int)len : 0, v ? v : "");
    sw_redis_reply_free(rep);
    return 0;
}

/* 1 when the one queue's keys hold work or dead letters (jobs queued, a
 * flusher's processing list, failed jobs kept), 0 not, -1 error. */
static int one_queue_in_use(sw_redis *r)
{
    void *rep = sw_redis_callf(r, "layout", SW_REPLY_INTEGER, 1, "EXISTS %s %s %s",
                               r->keys.queue, r->keys.dead, r->keys.deadenv);
    if (rep == NULL)
        return -1;
    int used = sw_redis_reply_int(rep) > 0;
    sw_redis_reply_free(rep);
    if (used)
        return 1;
    char ids[64][64];
    int n = sw_queue_flusher_ids(r, ids, 64);
    for (int i = 0; i < n; i++) {
        sw_fkeys fk;
        sw_keys_flusher(&r->keys, ids[i], &fk);
        rep = sw_redis_callf(r, "layout", SW_REPLY_INTEGER, 1, "EXISTS %s", fk.processing);
        if (rep == NULL)
            return -1;
        used = sw_redis_reply_int(rep) > 0;
        sw_redis_reply_free(rep);
        if (used)
            return 1;
    }
    return n < 0 ? -1 : 0;
}

/* The guard's answer, with `held`, logged when it is MISMATCH. */
static enum sw_layout compare(sw_redis *r, int shards, const char *held)
{
    char want[16];
    snprintf(want, sizeof want, "%d", shards);
    /* "": deleted after our write; nothing holds another count. */
    if (held[0] == '\0' || strcmp(held, want) == 0)
        return SW_LAYOUT_OK;
    sw_log_error("redis holds another queue layout", "key=%s held=\"%s\" shards=%d "
                 "action=\"refusing to run: set [redis] shards = %s like the other daemons, "
                 "or drain every queue, requeue or drop its dead letters, stop every daemon "
                 "and DEL %s\"", r->keys.layout, held, shards, held, r->keys.layout);
    return SW_LAYOUT_MISMATCH;
}

enum sw_layout sw_shards_check_layout(sw_redis *r, int shards)
{
    char held[32];
    /* Read first: a Redis at maxmemory refuses SET even when the key is
     * there, and a flusher must start then, to drain. */
    if (read_layout(r, held, sizeof held) != 0)
        return SW_LAYOUT_ERROR;
    if (held[0] != '\0')
        return compare(r, shards, held);
    if (shards > 0) {
        /* No count yet, but the one queue in use (release 0.1 and the
         * releases before shards wrote none): that is layout 0. */
        int used = one_queue_in_use(r);
        if (used < 0)
            return SW_LAYOUT_ERROR;
        if (used)
            return compare(r, shards, "0");
    }
    char want[16];
    snprintf(want, sizeof want, "%d", shards);
    void *rep = sw_redis_callf(r, "layout", SW_REPLY_ANY, 0, "SET %s %s NX", r->keys.layout,
                               want);
    /* At maxmemory the count cannot be written (shards.h). Shards wait
     * until it can be. */
    if (rep == NULL)
        return shards == 0 && r->err == SW_REDIS_EOOM ? SW_LAYOUT_UNRECORDED : SW_LAYOUT_ERROR;
    /* SET NX answers OK, or nil when the key was there. */
    int type = sw_redis_reply_type(rep);
    sw_redis_reply_free(rep);
    if (type != SW_REPLY_STATUS && type != SW_REPLY_NIL) {
        sw_redis_fail_proto(r, "layout", "SET NX answered neither OK nor nil");
        return SW_LAYOUT_ERROR;
    }
    if (read_layout(r, held, sizeof held) != 0)
        return SW_LAYOUT_ERROR;
    return compare(r, shards, held);
}
