#include "batch.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobid.h"

/* Records are decoded into arrays of SW_SINK_MAX_COLUMNS values. */
_Static_assert(SW_SINK_MAX_COLUMNS <= SW_ENVELOPE_MAX_COLUMNS, "envelope column bound");

sw_batch *sw_batch_new(const sw_config *cfg, sw_shape_lookup lookup, void *lookup_ctx)
{
    sw_batch *b = calloc(1, sizeof *b);
    if (b == NULL)
        return NULL;
    b->cfg = cfg;
    b->lookup = lookup;
    b->lookup_ctx = lookup_ctx;
    b->vals = calloc(SW_ENVELOPE_MAX_COLUMNS, sizeof *b->vals);
    if (b->vals == NULL) {
        sw_batch_free(b);
        return NULL;
    }
    return b;
}

static void release_job(sw_batch_job *j)
{
    free(j->error);
    j->error = NULL;
    if (j->map)
        j->map->refs--;
    j->map = NULL;
}

void sw_batch_reset(sw_batch *b)
{
    for (int i = 0; i < b->njobs; i++)
        release_job(&b->jobs[i]);
    b->njobs = 0;
    b->nrecords = 0;
    b->nbytes = 0;
    b->first_claim_ms = 0;
}

void sw_batch_drop_front(sw_batch *b, int n)
{
    if (n >= b->njobs) {
        sw_batch_reset(b);
        return;
    }
    for (int i = 0; i < n; i++) {
        b->nrecords -= b->jobs[i].counted;
        b->nbytes -= b->jobs[i].len;
        release_job(&b->jobs[i]);
    }
    memmove(b->jobs, b->jobs + n, (size_t)(b->njobs - n) * sizeof *b->jobs);
    b->njobs -= n;
}

void sw_batch_free(sw_batch *b)
{
    if (b == NULL)
        return;
    sw_batch_reset(b);
    free(b->jobs);
    free(b->vals);
    for (int i = 0; i < b->nmaps; i++)
        free(b->maps[i]);
    free(b->maps);
    sw_buf_free(&b->text);
    free(b);
}

static void vset(sw_batch_job *j, const char *fmt, va_list ap)
{
    char msg[512];
    vsnprintf(msg, sizeof msg, fmt, ap);
    free(j->error);
    /* strdup failing leaves the job failed without words; the flusher
     * then reports a fixed reason. */
    j->error = strdup(msg);
    j->error_loggable = -1;
    j->state = SW_JOB_FAILED;
}

void sw_batch_pg_error(sw_batch *b, int i, int prefail, const char *sqlstate, const char *msg,
                       const char *detail)
{
    sw_batch_job *j = &b->jobs[i];
    int head = snprintf(NULL, 0, "SQLSTATE %s: %s", sqlstate, msg);
    sw_batch_set_error(b, i, "SQLSTATE %s: %s%s%s", sqlstate, msg, detail[0] ? " " : "", detail);
    if (j->error && detail[0])
        j->error_loggable = head < (int)strlen(j->error) ? head : (int)strlen(j->error);
    if (prefail)
        j->prefailed = 1;
}

void sw_batch_fail(sw_batch *b, int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(&b->jobs[i], fmt, ap);
    va_end(ap);
    b->jobs[i].prefailed = 1;
}

void sw_batch_set_error(sw_batch *b, int i, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vset(&b->jobs[i], fmt, ap);
    va_end(ap);
}

/* The map for jobs written under `fp` to sink k: from the cache, or built
 * from the shape's column list. NULL with *rc = -2 when the lookup cannot
 * answer now, -1 when out of memory. */
static sw_batch_map *map_for(sw_batch *b, int k, uint64_t fp, int *rc)
{
    const sw_sink *s = &b->cfg->sinks[k];
    for (int i = 0; i < b->nmaps; i++) {
        if (b->maps[i]->map.fingerprint == fp && b->maps[i]->sink_idx == k)
            return b->maps[i];
    }
    int found = b->lookup ? b->lookup(b->lookup_ctx, fp, &b->text) : 0;
    if (found < 0) {
        *rc = -2;
        return NULL;
    }
    /* A batch meets a handful of shapes at most. Past the bound, a map no
     * job uses gives way; the cache only passes it while the batch's own
     * jobs use more. */
    if (b->nmaps >= SW_BATCH_MAX_SHAPES) {
        for (int i = 0; i < b->nmaps; i++) {
            if (b->maps[i]->refs == 0) {
                free(b->maps[i]);
                b->maps[i] = b->maps[--b->nmaps];
                break;
            }
        }
    }
    if (b->nmaps == b->capmaps) {
        int cap = b->capmaps ? b->capmaps * 2 : 8;
        sw_batch_map **m = realloc(b->maps, (size_t)cap * sizeof *m);
        if (m == NULL) {
            *rc = -1;
            return NULL;
        }
        b->maps = m;
        b->capmaps = cap;
    }
    sw_batch_map *m = calloc(1, sizeof *m);
    if (m == NULL) {
        *rc = -1;
        return NULL;
    }
    m->sink_idx = k;
    if (found) {
        sw_shape_map_build(&m->map, fp, b->text.data, s);
    } else {
        m->map.fingerprint = fp;
        snprintf(m->map.reason, sizeof m->map.reason,
                 "sink \"%s\" changed since the job was queued, and its old definition is "
                 "not recorded in Redis (<prefix>:shapes)", s->name);
    }
    b->maps[b->nmaps++] = m;
    return m;
}

int sw_batch_add(sw_batch *b, const char *data, size_t len, long deliveries, int64_t now_ms)
{
    if (b->njobs == b->cap) {
        int cap = b->cap ? b->cap * 2 : 256;
        sw_batch_job *j = realloc(b->jobs, (size_t)cap * sizeof *j);
        if (j == NULL)
            return -1;
        b->jobs = j;
        b->cap = cap;
    }
    sw_batch_job *j = &b->jobs[b->njobs];
    char why[256];
    memset(j, 0, sizeof *j);
    j->data = data;
    j->len = len;
    j->sink_idx = -1;
    j->deliveries = deliveries;
    j->list_id_len = sw_envelope_list_id(data, len, j->list_id);
    j->counted = sw_envelope_script_count(data, len);
    int decoded = sw_envelope_decode(data, len, &j->env, why, sizeof why) == 0;
    if (decoded) {
        for (int k = 0; k < b->cfg->nsinks; k++) {
            if (strcmp(b->cfg->sinks[k].name, j->env.sink) == 0)
                j->sink_idx = k;
        }
    }
    const sw_sink *s = j->sink_idx >= 0 ? &b->cfg->sinks[j->sink_idx] : NULL;
    int rc = 0;
    if (s && j->env.version >= 2 && j->env.shape != s->shape) {
        j->map = map_for(b, j->sink_idx, j->env.shape, &rc);
        if (rc != 0)
            return rc;
        j->map->refs++;
    }
    b->njobs++;
    b->nrecords += j->counted;
    b->nbytes += len;
    if (b->first_claim_ms == 0)
        b->first_claim_ms = now_ms;
    int i = b->njobs - 1;
    if (!decoded) {
        sw_batch_fail(b, i, "corrupt envelope: %s", why);
        /* Without a readable id it still needs one of its own, or two such
         * jobs would overwrite each other's dead-letter entry. */
        if (!sw_jobid_valid(j->env.job_id, strlen(j->env.job_id)))
            sw_jobid_new(j->env.job_id);
    } else if (s == NULL) {
        sw_batch_fail(b, i, "sink \"%s\" is no longer configured", j->env.sink);
    } else if (j->env.op == SW_OP_DELETE && s->deletes <= 0) {
        sw_batch_fail(b, i, "sink \"%s\" takes no deletes any more (deletes = off, or mode "
                      "%s without it)", s->name, sw_sink_mode_name(s->mode));
    } else if (j->map && !j->map->map.usable) {
        sw_batch_fail(b, i, "%s", j->map->map.reason);
    } else if (j->map) {
        if (sw_shape_map_check(&j->map->map, s, &j->env, b->vals, why, sizeof why) != 0)
            sw_batch_fail(b, i, "%s", why);
    } else if (s->ncolumns != (int)j->env.ncolumns) {
        /* A version 1 envelope has no shape: positional, if it fits. */
        sw_batch_fail(b, i, "sink \"%s\" changed its columns since the job was queued "
                      "(%u then, %d now)", j->env.sink, j->env.ncolumns, s->ncolumns);
    }
    return 0;
}

int sw_batch_next_record(sw_batch *b, int i, const unsigned char **cursor, sw_value *vals)
{
    sw_batch_job *j = &b->jobs[i];
    const sw_sink *s = &b->cfg->sinks[j->sink_idx];
    if (*cursor == NULL)
        *cursor = j->env.records;
    if (*cursor >= j->env.end)
        return 0;
    if (j->map == NULL)
        return sw_envelope_next(&j->env, cursor, vals) == 0 ? 1 : -1;
    if (sw_envelope_next(&j->env, cursor, b->vals) != 0)
        return -1;
    sw_shape_map_apply(&j->map->map, s, b->vals, vals);
    return 1;
}
