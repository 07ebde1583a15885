#include "dead.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "jobid.h"
#include "keys.h"
#include "status.h"

int sw_dead_ids(sw_redis *r, long limit, void **reply)
{
    return sw_dead_ids_from(r, 0, limit, reply);
}

int sw_dead_ids_from(sw_redis *r, long start, long count, void **reply)
{
    void *rep = sw_redis_callf(r, "dead", SW_REPLY_ARRAY, 1, "LRANGE %s %ld %ld", r->keys.dead,
                               start, start + count - 1);
    if (rep == NULL)
        return -1;
    if (sw_redis_check_elements(r, rep, SW_REPLY_STRING, "dead") != 0) {
        sw_redis_reply_free(rep);
        return -1;
    }
    *reply = rep;
    return 0;
}

void sw_dead_job_free(sw_dead_job *d)
{
    if (d == NULL)
        return;
    sw_redis_reply_free(d->reply);
    sw_buf_free(&d->info);
    memset(d, 0, sizeof *d);
}

/* deadinfo's JSON: pull "error" and "failed_at" into d->info, NUL apart. */
static int parse_info(sw_dead_job *d, const char *json, size_t n)
{
    json_error_t jerr;
    json_t *o = json_loadb(json, n, 0, &jerr);
    const char *e = o ? json_string_value(json_object_get(o, "error")) : NULL;
    const char *at = o ? json_string_value(json_object_get(o, "failed_at")) : NULL;
    int rc = -1;
    e = e ? e : "";
    at = at ? at : "";
    sw_buf_reset(&d->info);
    if (sw_buf_append(&d->info, e, strlen(e) + 1) == 0 &&
        sw_buf_append(&d->info, at, strlen(at) + 1) == 0) {
        d->error = d->info.data;
        d->error_len = strlen(e);
        d->failed_at = d->info.data + d->error_len + 1;
        d->failed_at_len = strlen(at);
        rc = 0;
    }
    json_decref(o);
    return rc;
}

int sw_dead_get(sw_redis *r, const char *job_id, sw_dead_job *out)
{
    char legacy[SW_KEY_MAX];
    memset(out, 0, sizeof *out);
    /* Both layouts in one round trip: a script is not needed to read. */
    void *rep = sw_redis_callf(r, "dead", SW_REPLY_ARRAY, 1, "HMGET %s %s", r->keys.deadenv,
                               job_id);
    if (rep == NULL)
        return -1;
    size_t n;
    const char *env = sw_redis_reply_len(rep) == 1 ? sw_redis_reply_item(rep, 0, &n) : NULL;
    if (env) {
        void *info = sw_redis_callf(r, "dead", SW_REPLY_STRING_OR_NIL, 1, "HGET %s %s",
                                    r->keys.deadinfo, job_id);
        if (info == NULL) {
            sw_redis_reply_free(rep);
            return -1;
        }
        size_t il = 0;
        const char *is = sw_redis_reply_str(info, &il);
        int ok = parse_info(out, is ? is : "{}", is ? il : 2);
        sw_redis_reply_free(info);
        if (ok != 0) {
            sw_redis_reply_free(rep);
            sw_dead_job_free(out);
            return -1;
        }
        out->env = env;
        out->env_len = n;
        out->reply = rep;
        return 1;
    }
    sw_redis_reply_free(rep);
    sw_keys_dead_legacy(&r->keys, job_id, legacy);
    rep = sw_redis_callf(r, "dead", SW_REPLY_ARRAY, 1, "HMGET %s error failed_at envelope",
                         legacy);
    if (rep == NULL)
        return -1;
    if (sw_redis_reply_len(rep) != 3 ||
        sw_redis_check_elements(r, rep, SW_REPLY_STRING_OR_NIL, "dead") != 0) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "dead", "not three fields");
        sw_redis_reply_free(rep);
        return -1;
    }
    out->env = sw_redis_reply_item(rep, 2, &out->env_len);
    if (out->env == NULL) {
        sw_redis_reply_free(rep);
        return 0;
    }
    out->error = sw_redis_reply_item(rep, 0, &out->error_len);
    out->failed_at = sw_redis_reply_item(rep, 1, &out->failed_at_len);
    if (out->error == NULL)
        out->error = "";
    if (out->failed_at == NULL)
        out->failed_at = "";
    out->reply = rep;
    return 1;
}

int sw_dead_requeue(sw_redis *r, const char *job_id, const char *status, const char *compact,
                    int ttl_s)
{
    char skey[SW_KEY_MAX], legacy[SW_KEY_MAX], bucket[SW_KEY_MAX];
    unsigned char field[16];
    sw_redis_args a;
    sw_keys_job(&r->keys, job_id, skey);
    sw_keys_dead_legacy(&r->keys, job_id, legacy);
    if (sw_keys_status(&r->keys, job_id, bucket, field) == 0) {
        snprintf(bucket, sizeof bucket, "%s:st:none", r->keys.prefix);
        memset(field, 0, sizeof field);
    }
    sw_redis_args_init(&a);
    const char *keys[] = {r->keys.queue, r->keys.stats, r->keys.dead, r->keys.deadenv,
                          r->keys.deadinfo, r->keys.deliveries, skey, legacy, bucket};
    for (int i = 0; i < 9; i++)
        sw_redis_args_str(&a, keys[i]);
    sw_redis_args_end_keys(&a);
    sw_redis_args_str(&a, job_id);
    sw_redis_args_str(&a, status);
    sw_redis_args_int(&a, ttl_s);
    sw_redis_args_bin(&a, (const char *)field, sizeof field);
    sw_redis_args_str(&a, compact);
    void *rep = sw_redis_eval(r, SW_SCRIPT_REQUEUE, "requeue", SW_REPLY_INTEGER, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    int done = sw_redis_reply_int(rep) == 1;
    sw_redis_reply_free(rep);
    return done;
}

int sw_dead_drop(sw_redis *r, const char *job_id)
{
    char legacy[SW_KEY_MAX];
    sw_redis_args a;
    sw_keys_dead_legacy(&r->keys, job_id, legacy);
    sw_redis_args_init(&a);
    const char *keys[] = {r->keys.dead, r->keys.deadenv, r->keys.deadinfo, r->keys.stats, legacy};
    for (int i = 0; i < 5; i++)
        sw_redis_args_str(&a, keys[i]);
    sw_redis_args_end_keys(&a);
    sw_redis_args_str(&a, job_id);
    void *rep = sw_redis_eval(r, SW_SCRIPT_DROP, "drop", SW_REPLY_INTEGER, &a);
    sw_redis_args_free(&a);
    if (rep == NULL)
        return -1;
    int done = sw_redis_reply_int(rep) > 0;
    sw_redis_reply_free(rep);
    return done;
}

long sw_dead_convert_legacy(sw_redis *r)
{
    void *ids = NULL, *mark;
    long moved = 0;
    /* One pass, once: <p>:stats dead_layout records that it was made. */
    mark = sw_redis_callf(r, "dead layout", SW_REPLY_STRING_OR_NIL, 1, "HGET %s dead_layout",
                          r->keys.stats);
    if (mark == NULL)
        return -1;
    size_t ml;
    const char *m = sw_redis_reply_str(mark, &ml);
    int done = m != NULL && ml == 1 && m[0] == '2';
    sw_redis_reply_free(mark);
    if (done)
        return 0;
    /* Page through the list: it may be long, and a 0.1 store unbounded. */
    for (long from = 0; moved >= 0; from += 1000) {
        ids = sw_redis_callf(r, "dead", SW_REPLY_ARRAY, 1, "LRANGE %s %ld %ld", r->keys.dead,
                             from, from + 999);
        if (ids == NULL || sw_redis_check_elements(r, ids, SW_REPLY_STRING, "dead") != 0) {
            sw_redis_reply_free(ids);
            return -1;
        }
        size_t count = sw_redis_reply_len(ids);
        for (size_t i = 0; i < count && moved >= 0; i++) {
            size_t n;
            char id[64], legacy[SW_KEY_MAX];
            const char *s = sw_redis_reply_item(ids, i, &n);
            snprintf(id, sizeof id, "%.*s", (int)(n < 63 ? n : 63), s);
            sw_keys_dead_legacy(&r->keys, id, legacy);
            sw_redis_args a;
            sw_redis_args_init(&a);
            const char *keys[] = {legacy, r->keys.deadenv, r->keys.deadinfo, r->keys.stats};
            for (int k = 0; k < 4; k++)
                sw_redis_args_str(&a, keys[k]);
            sw_redis_args_end_keys(&a);
            sw_redis_args_str(&a, id);
            void *rep = sw_redis_eval(r, SW_SCRIPT_CONVERT, "convert", SW_REPLY_INTEGER, &a);
            sw_redis_args_free(&a);
            if (rep == NULL) {
                moved = -1;
                break;
            }
            moved += sw_redis_reply_int(rep);
            sw_redis_reply_free(rep);
        }
        sw_redis_reply_free(ids);
        ids = NULL;
        if (count < 1000)
            break;
    }
    if (moved >= 0) {
        mark = sw_redis_callf(r, "dead layout", SW_REPLY_INTEGER, 0, "HSET %s dead_layout 2",
                              r->keys.stats);
        if (mark == NULL)
            return -1;
        sw_redis_reply_free(mark);
    }
    return moved;
}

int sw_dead_requeue_job(sw_redis *r, const char *job_id, int ttl_s)
{
    sw_dead_job d;
    int found = sw_dead_get(r, job_id, &d);
    if (found <= 0)
        return found;
    sw_envelope e;
    char why[128];
    int rc = -1;
    sw_buf status = SW_BUF_INIT, compact = SW_BUF_INIT;
    if (sw_envelope_decode(d.env, d.env_len, &e, why, sizeof why) != 0) {
        r->err = SW_REDIS_EPROTO;
        r->code[0] = '\0';
        snprintf(r->errstr, sizeof r->errstr, "%s: undecodable envelope (%s): drop it", job_id,
                 why);
        goto out;
    }
    /* Its status goes back to "queued": the JSON, and the compact form
     * (status.h). */
    sw_status st = {job_id, "queued", e.sink, e.nrecords,
                    (int64_t)sw_jobid_time_ms(job_id) * 1000, 0, NULL};
    if (sw_status_json(&status, &st) != 0 ||
        sw_status_compact(&compact, 'q', e.nrecords, e.sink, 0) != 0) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "requeue: out of memory");
        goto out;
    }
    rc = sw_dead_requeue(r, job_id, status.data, compact.data, ttl_s);
out:
    sw_buf_free(&status);
    sw_buf_free(&compact);
    sw_dead_job_free(&d);
    return rc;
}
