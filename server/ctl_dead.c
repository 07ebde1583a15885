/* spillwayctl dead: list, show, requeue and drop failed jobs, one by id or
 * all of them matching a filter (sink, SQLSTATE), across the shards. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "dead.h"
#include "envelope.h"
#include "jobid.h"
#include "queue.h"

typedef struct filter {
    const char *sink;       /* NULL: any */
    const char *sqlstate;   /* a prefix of the SQLSTATE ("23", "23505"), or NULL */
} filter;

/* One dead job, read and (when it can be) decoded. */
typedef struct dead {
    char id[64];
    sw_dead_job d;
    sw_envelope e;
    int decoded;
    char why[128];
} dead;

/* 1 read, 0 no such dead job, -1 Redis failed (said on stderr). */
static int dead_read(sw_redis *r, const char *id, dead *x)
{
    memset(x, 0, sizeof *x);
    snprintf(x->id, sizeof x->id, "%s", id);
    int found = sw_dead_get(r, id, &x->d);
    if (found < 0)
        fprintf(stderr, "spillwayctl: dead job %s: %s\n", id, r->errstr);
    if (found == 1)
        x->decoded = sw_envelope_decode(x->d.env, x->d.env_len, &x->e, x->why,
                                        sizeof x->why) == 0;
    return found;
}

static int matches(const filter *f, const dead *x)
{
    if (f->sink && (!x->decoded || strcmp(x->e.sink, f->sink) != 0))
        return 0;
    if (f->sqlstate) {
        size_t n = strlen(f->sqlstate);
        if (x->d.error_len < 9 + n || strncmp(x->d.error, "SQLSTATE ", 9) != 0 ||
            strncmp(x->d.error + 9, f->sqlstate, n) != 0)
            return 0;
    }
    return 1;
}

/* The record an error names, or -1: the flusher's own errors start
 * "record N" (after "corrupt envelope: " for some); PostgreSQL's never
 * name one, so only a one-record job's is known. A value quoted later in
 * the text is not taken for a number. */
static long named_record(const dead *x)
{
    const char *e = x->d.error;
    size_t n = x->d.error_len, skip = strlen("corrupt envelope: ");
    if (n > skip && strncmp(e, "corrupt envelope: ", skip) == 0) {
        e += skip;
        n -= skip;
    }
    if (n > 7 && strncmp(e, "record ", 7) == 0 && e[7] >= '0' && e[7] <= '9')
        return strtol(e + 7, NULL, 10);
    return x->decoded && x->e.nrecords == 1 ? 0 : -1;
}

static json_t *summary_json(const dead *x)
{
    json_t *o = json_object();
    json_object_set_new(o, "job_id", json_string(x->id));
    json_object_set_new(o, "failed_at", json_stringn(x->d.failed_at, x->d.failed_at_len));
    json_object_set_new(o, "error", json_stringn(x->d.error, x->d.error_len));
    if (x->decoded) {
        json_object_set_new(o, "sink", json_string(x->e.sink));
        json_object_set_new(o, "records", json_integer(x->e.nrecords));
    } else {
        json_object_set_new(o, "undecodable", json_string(x->why));
    }
    return o;
}

static void summary_text(const dead *x)
{
    if (x->decoded)
        printf("%s  %.*s  sink=%s records=%u  error=%.*s\n", x->id, (int)x->d.failed_at_len,
               x->d.failed_at, x->e.sink, x->e.nrecords, (int)x->d.error_len, x->d.error);
    else
        printf("%s  %.*s  (undecodable envelope: %s)  error=%.*s\n", x->id,
               (int)x->d.failed_at_len, x->d.failed_at, x->why, (int)x->d.error_len,
               x->d.error);
}

static json_t *value_json(const sw_value *v)
{
    switch (v->kind) {
    case SW_V_BOOL: return json_boolean(v->i);
    case SW_V_INT: return json_integer(v->i);
    case SW_V_FLOAT: return json_real(v->f);
    case SW_V_STR: {
        json_t *s = json_stringn(v->s, v->n);
        return s ? s : json_string("(not UTF-8)");
    }
    default: return json_null();
    }
}

/* The job's column names: the shape it was written under, as the server
 * recorded it ("name type,name type"), else col1..colN. */
static json_t *column_names(sw_redis *r, const sw_envelope *e)
{
    json_t *names = json_array();
    sw_buf shape = SW_BUF_INIT;
    if (e->shape != 0 && sw_queue_shape(r, e->shape, &shape) == 1) {
        for (const char *p = shape.data; p && *p;) {
            size_t n = strcspn(p, " ,");
            json_array_append_new(names, json_stringn(p, n));
            p = strchr(p, ',');
            p = p ? p + 1 : NULL;
        }
    }
    sw_buf_free(&shape);
    if (json_array_size(names) != e->ncolumns) {
        json_array_clear(names);
        for (uint32_t c = 0; c < e->ncolumns; c++)
            json_array_append_new(names, json_sprintf("col%u", c + 1));
    }
    return names;
}

/* dead show: the job, its error, and its records decoded, each an object
 * of column: value; the record the error names marked. */
static int show(sw_redis *r, const dead *x, int json)
{
    json_t *doc = summary_json(x), *recs = json_array();
    long named = named_record(x);
    if (x->decoded) {
        json_t *names = column_names(r, &x->e);
        sw_value vals[SW_ENVELOPE_MAX_COLUMNS];
        const unsigned char *cur = x->e.records;
        while (sw_envelope_next(&x->e, &cur, vals) == 0) {
            json_t *rec = json_object();
            for (uint32_t c = 0; c < x->e.ncolumns; c++) {
                if (vals[c].kind == SW_V_ABSENT)   /* a merge left it out */
                    continue;
                json_object_set_new(rec, json_string_value(json_array_get(names, c)),
                                    value_json(&vals[c]));
            }
            json_array_append_new(recs, rec);
        }
        json_decref(names);
    }
    const char *op = x->decoded && x->e.op == SW_OP_DELETE ? "delete" : "write";
    json_object_set_new(doc, "operation", json_string(op));
    json_object_set_new(doc, "record_named", named >= 0 ? json_integer(named) : json_null());
    json_object_set_new(doc, "data", recs);
    if (json)
        return sw_ctl_print_json(doc);
    printf("job_id     %s\nsink       %s\noperation  %s\nfailed_at  %.*s\nerror      %.*s\n"
           "records    %zu\n",
           x->id, x->decoded ? x->e.sink : "(undecodable envelope)", op, (int)x->d.failed_at_len,
           x->d.failed_at, (int)x->d.error_len, x->d.error, json_array_size(recs));
    size_t i;
    json_t *rec;
    json_array_foreach(recs, i, rec) {
        char *text = json_dumps(rec, JSON_COMPACT | JSON_PRESERVE_ORDER);
        printf("record %zu  %s%s\n", i, text ? text : "(out of memory)",
               (long)i == named ? "   <- the record the error names" : "");
        free(text);
    }
    json_decref(doc);
    return 0;
}

static int act(const sw_config *cfg, sw_redis *r, const char *what, const dead *x)
{
    int rc = strcmp(what, "requeue") == 0 ? sw_dead_requeue_job(r, x->id, cfg->status_ttl_s)
                                          : sw_dead_drop(r, x->id);
    if (rc < 0)
        fprintf(stderr, "spillwayctl: %s: %s\n", x->id, r->errstr);
    return rc;
}

#define PAGE 1000   /* ids read from Redis at a time */

/* The ids of shard r's dead jobs, newest first: for a list up to what it
 * may still show, for an action all of them (read before acting, as
 * acting moves the others' positions). Page by page: one LRANGE of a
 * long store would hold Redis. NULL after saying why. */
static char (*dead_ids(sw_redis *r, long want, size_t *n))[64]
{
    char (*ids)[64] = NULL;
    size_t cap = 0;
    *n = 0;
    for (long start = 0; (long)*n < want; start += PAGE) {
        void *page = NULL;
        if (sw_dead_ids_from(r, start, PAGE, &page) != 0) {
            fprintf(stderr, "spillwayctl: %s\n", r->errstr);
            free(ids);
            return NULL;
        }
        size_t got = sw_redis_reply_len(page);
        for (size_t i = 0; i < got && (long)*n < want; i++) {
            if (*n == cap) {
                size_t ncap = cap ? cap * 2 : PAGE;
                void *grown = realloc(ids, ncap * sizeof *ids);
                if (grown == NULL) {
                    fprintf(stderr, "spillwayctl: out of memory\n");
                    sw_redis_reply_free(page);
                    free(ids);
                    return NULL;
                }
                ids = grown;
                cap = ncap;
            }
            size_t len;
            const char *p = sw_redis_reply_item(page, i, &len);
            snprintf(ids[(*n)++], 64, "%.*s", (int)len, p);
        }
        sw_redis_reply_free(page);
        if (got < PAGE)
            break;
    }
    if (ids == NULL)
        ids = malloc(sizeof *ids);   /* none: still a list to free */
    return ids;
}

/* Every dead job matching `f`, shard by shard, newest first: listed (up
 * to `limit`) or acted on. An action that fails for one job (say, an
 * undecodable envelope on requeue) is reported and the rest go on. */
static int all(const sw_config *cfg, sw_shards *s, const char *what, const filter *f,
               long limit, int json)
{
    int list = strcmp(what, "list") == 0, rc = 1;
    long shown = 0, done = 0, failed = 0;
    json_t *jobs = json_array();
    for (int k = 0; k < s->n && (!list || shown < limit); k++) {
        sw_redis *r = s->q[k];
        size_t n;
        /* A filtered list reads on until it has `limit` matches. */
        char (*ids)[64] = dead_ids(r, list && !f->sink && !f->sqlstate ? limit - shown
                                                                       : 100000000L, &n);
        if (ids == NULL)
            goto out;
        for (size_t i = 0; i < n && (!list || shown < limit); i++) {
            dead x;
            int found = dead_read(r, ids[i], &x);
            if (found < 0) {
                free(ids);
                goto out;
            }
            if (found == 1 && matches(f, &x)) {
                int one = 1;
                if (!list)
                    one = act(cfg, r, what, &x);
                else if (json)
                    json_array_append_new(jobs, summary_json(&x));
                else
                    summary_text(&x);
                shown++;
                done += one > 0;
                failed += one < 0;
            }
            sw_dead_job_free(&x.d);
        }
        free(ids);
    }
    rc = failed ? 1 : 0;
    if (list && json)
        rc = sw_ctl_print_json(json_pack("{s:O,s:I}", "jobs", jobs, "shown", (json_int_t)shown));
    else if (list)
        printf("%ld shown\n", shown);
    else
        printf("%ld %s%s\n", done, strcmp(what, "requeue") == 0 ? "requeued" : "dropped",
               failed ? "; some failed, see above" : "");
out:
    json_decref(jobs);
    return rc;
}

int sw_ctl_dead(const sw_config *cfg, int argc, char **argv, int json)
{
    const char *what = argc > 0 ? argv[0] : "list", *id = NULL;
    filter f = {NULL, NULL};
    long limit = 20;
    int every = 0;
    if (strcmp(what, "list") != 0 && strcmp(what, "show") != 0 && strcmp(what, "requeue") != 0 &&
        strcmp(what, "drop") != 0)
        return sw_ctl_usage("dead", "unknown subcommand \"%s\": list, show, requeue or drop",
                            what);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--limit") == 0 || strcmp(a, "--sink") == 0 ||
            strcmp(a, "--sqlstate") == 0) {
            if (v == NULL)
                return sw_ctl_usage("dead", "%s wants a value", a);
            i++;
            if (strcmp(a, "--limit") == 0) {
                char *end;
                limit = strtol(v, &end, 10);
                if (*end != '\0' || limit < 1)
                    return sw_ctl_usage("dead", "--limit wants a whole number of at least 1, "
                                        "not \"%s\"", v);
            } else if (strcmp(a, "--sink") == 0) {
                if (sw_config_sink(cfg, v, strlen(v)) == NULL)
                    return sw_ctl_usage("dead", "--sink \"%s\" is not a configured sink", v);
                f.sink = v;
            } else {
                if (strlen(v) < 1 || strlen(v) > 5 || strspn(v, "0123456789ABCDEFGHIJKLMNOP"
                                                           "QRSTUVWXYZ") != strlen(v))
                    return sw_ctl_usage("dead", "--sqlstate wants a SQLSTATE or its start "
                                        "(\"23\", \"23505\"), not \"%s\"", v);
                f.sqlstate = v;
            }
        } else if (strcmp(a, "--all") == 0 && strcmp(what, "list") != 0 &&
                   strcmp(what, "show") != 0) {
            every = 1;
        } else if (a[0] != '-' && id == NULL && strcmp(what, "list") != 0) {
            id = a;
        } else {
            return sw_ctl_usage("dead", "unexpected argument \"%s\" to dead %s", a, what);
        }
    }
    if (strcmp(what, "list") != 0 && (id != NULL) == every)
        return sw_ctl_usage("dead", "dead %s wants one JOB_ID%s", what,
                            strcmp(what, "show") == 0 ? "" : " or --all");
    if (id && (f.sink || f.sqlstate || limit != 20))
        return sw_ctl_usage("dead", "filters go with --all, not with a JOB_ID");
    if (limit != 20 && strcmp(what, "list") != 0)
        return sw_ctl_usage("dead", "--limit goes with dead list; dead %s --all acts on every "
                            "match", what);
    if (strcmp(what, "show") != 0 && strcmp(what, "list") != 0 && json)
        return sw_ctl_usage("dead", "--json goes with dead list and dead show");
    if (id && !sw_jobid_valid(id, strlen(id)))
        return sw_ctl_usage("dead", "\"%s\" is not a job id (a UUID as POST answered)", id);
    sw_shards *s = sw_ctl_connect_redis(cfg);
    if (s == NULL)
        return 1;
    int rc = 1;
    if (id == NULL) {
        rc = all(cfg, s, what, &f, limit, json);
    } else {
        /* One job: the shard its id names (none: not a job of ours). */
        sw_redis *r = sw_shards_job(s, id);
        dead x;
        int found = r ? dead_read(r, id, &x) : 0;
        if (found == 0)
            fprintf(stderr, "spillwayctl: no dead-lettered job %s\n", id);
        else if (found == 1 && strcmp(what, "show") == 0)
            rc = show(r, &x, json);
        else if (found == 1) {
            int one = act(cfg, r, what, &x);
            if (one == 1) {
                printf("1 %s\n", strcmp(what, "requeue") == 0 ? "requeued" : "dropped");
                rc = 0;
            } else if (one == 0) {
                fprintf(stderr, "spillwayctl: dead job %s went meanwhile (another operator?)\n",
                        id);
            }
        }
        if (found == 1)
            sw_dead_job_free(&x.d);
    }
    sw_shards_free(s);
    return rc;
}
