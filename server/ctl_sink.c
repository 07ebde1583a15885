/* spillwayctl sink: list the sinks with their state, pause and resume a
 * sink's intake or flushing (pause.h), purge its parked jobs (park.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "ctl.h"
#include "park.h"
#include "pause.h"
#include "queue.h"

static void redis_error(const sw_redis *r)
{
    fprintf(stderr, "spillwayctl: %s (%s)\n", r->errstr, sw_redis_hint(r->err, r->code, r->errstr));
}

/* A sink's pause record as JSON (NULL: not paused), or -1 on error. */
static int pause_record(sw_redis *r, enum sw_pause_what what, const char *sink, json_t **rec)
{
    sw_buf b = SW_BUF_INIT;
    int rc = sw_pause_get(r, what, sink, &b);
    *rec = rc == 1 ? json_loadb(b.data, b.len, 0, NULL) : NULL;
    if (rc == 1 && *rec == NULL)
        *rec = json_object();   /* paused, with a record not ours to read */
    sw_buf_free(&b);
    return rc < 0 ? -1 : 0;
}

static const char *field(json_t *rec, const char *name)
{
    const char *s = json_string_value(json_object_get(rec, name));
    return s ? s : "";
}

static int cmd_list(const sw_config *cfg, sw_redis *r, int json)
{
    json_t *all = json_array();
    int rc = 1;
    /* Depths when every shard gives them; the pause state in any case. */
    sw_sink_figures *fig = calloc((size_t)cfg->nsinks + 1, sizeof *fig);
    int64_t *oldest = calloc((size_t)cfg->nsinks + 1, sizeof *oldest);
    sw_redis_opts ro = sw_config_redis(cfg);
    sw_shards *s = fig && oldest ? sw_shards_new(&ro, cfg->shards) : NULL;
    sw_redis *failed;
    int got = s ? sw_shards_sink_figures(s, cfg, fig, oldest, &failed) : -1;
    int known = got == 1, parked_known = got >= 0;
    int64_t now_us = sw_clock_now_us();
    if (fig == NULL || oldest == NULL || all == NULL) {
        fprintf(stderr, "spillwayctl: out of memory\n");
        goto out;
    }
    for (int k = 0; k < cfg->nsinks; k++) {
        const sw_sink *sk = &cfg->sinks[k];
        json_t *in, *fl;
        if (pause_record(r, SW_PAUSE_INTAKE, sk->name, &in) != 0 ||
            pause_record(r, SW_PAUSE_FLUSH, sk->name, &fl) != 0) {
            redis_error(r);
            goto out;
        }
        double age = oldest[k] > 0 && now_us > oldest[k] ? (double)(now_us - oldest[k]) / 1e6
                                                         : 0;
        json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:o,s:b,s:b}", "sink", sk->name, "table",
                              sk->table, "mode", sw_sink_mode_name(sk->mode), "queued_records",
                              known ? json_integer(fig[k].depth) : json_null(), "parked_records",
                              parked_known ? json_integer(fig[k].parked) : json_null(),
                              "oldest_age_seconds", parked_known ? json_real(age) : json_null(),
                              "intake_paused", in != NULL, "flush_paused", fl != NULL);
        if (in)
            json_object_set(o, "intake", in);
        if (fl)
            json_object_set(o, "flush", fl);
        if (!json) {
            char q[32] = "?", p[32] = "?", a[32] = "?";
            if (known)
                snprintf(q, sizeof q, "%lld", fig[k].depth);
            if (parked_known) {
                snprintf(p, sizeof p, "%lld", fig[k].parked);
                snprintf(a, sizeof a, "%.1fs", age);
            }
            printf("%s  table=%s mode=%s queued=%s parked=%s oldest=%s intake=%s flushing=%s",
                   sk->name, sk->table, sw_sink_mode_name(sk->mode), q, p, a,
                   in ? "paused" : "open", fl ? "paused" : "running");
            for (int i = 0; i < 2; i++) {
                json_t *rec = i ? fl : in;
                if (rec && field(rec, "since")[0])
                    printf(" %s_since=%s", i ? "flush" : "intake", field(rec, "since"));
                if (rec && field(rec, "note")[0])
                    printf(" %s_note=\"%s\"", i ? "flush" : "intake", field(rec, "note"));
            }
            printf("\n");
        }
        json_decref(in);
        json_decref(fl);
        json_array_append_new(all, o);
    }
    rc = json ? sw_ctl_print_json(json_pack("{s:O}", "sinks", all)) : 0;
out:
    sw_shards_free(s);
    free(fig);
    free(oldest);
    json_decref(all);
    return rc;
}

static int cmd_pause(sw_redis *r, const char *name, int intake, int flush, const char *note)
{
    if ((intake && sw_pause_set(r, SW_PAUSE_INTAKE, name, note) != 0) ||
        (flush && sw_pause_set(r, SW_PAUSE_FLUSH, name, note) != 0)) {
        redis_error(r);
        return 1;
    }
    if (intake)
        printf("intake of %s paused: its POSTs answer 503 within a second%s\n", name,
               flush ? "" : "; queued jobs still flush (watch spillwayctl queue)");
    if (flush)
        printf("flushing of %s paused: within a second flushers set its jobs aside (parked) "
               "as they reach them; other sinks flush on (watch spillwayctl sink list)\n", name);
    return 0;
}

static int cmd_resume(sw_redis *r, const char *name, int intake, int flush)
{
    int was_in = intake ? sw_pause_clear(r, SW_PAUSE_INTAKE, name) : 0;
    int was_fl = was_in >= 0 && flush ? sw_pause_clear(r, SW_PAUSE_FLUSH, name) : 0;
    if (was_in < 0 || was_fl < 0) {
        redis_error(r);
        return 1;
    }
    if (intake)
        printf("intake of %s %s\n", name, was_in ? "resumed" : "was not paused");
    sw_buf rec = SW_BUF_INIT;
    if (!flush && sw_pause_get(r, SW_PAUSE_FLUSH, name, &rec) == 1)
        printf("flushing of %s is still paused (add --flush to resume it)\n", name);
    sw_buf_free(&rec);
    if (flush)
        printf("flushing of %s %s\n", name, was_fl ? "resumed: within a second its parked jobs "
               "flush, oldest first" : "was not paused");
    return 0;
}

static int cmd_purge(const sw_config *cfg, sw_redis *r, const char *name, int yes)
{
    sw_shards *s = sw_ctl_connect_redis(cfg);
    int rc = 1;
    if (s == NULL)
        return 1;
    if (!yes) {
        /* Say what would go, and go no further. */
        long jobs = 0;
        for (int k = 0; k < s->n; k++) {
            long n = sw_park_jobs(s->q[k], name);
            if (n < 0) {
                redis_error(s->q[k]);
                goto out;
            }
            jobs += n;
        }
        fprintf(stderr, "spillwayctl: %ld jobs of %s are parked; nothing purged: add --yes to "
                "purge them (their statuses turn failed; there is no undo)\n", jobs, name);
        goto out;
    }
    sw_purge_result res;
    sw_redis *failed;
    int done = sw_park_purge_sink(r, s, cfg, name, "purged by an operator (spillwayctl sink "
                                  "purge)", 0, &res, &failed);
    if (done == 0) {
        fprintf(stderr, "spillwayctl: the flushing of %s is not paused: pause it first "
                "(spillwayctl sink pause %s --flush), so its jobs are parked\n", name, name);
    } else if (done < 0) {
        redis_error(failed);
        if (res.jobs > 0 || res.records > 0)
            fprintf(stderr, "spillwayctl: %lld records were purged before the error\n",
                    res.records);
    } else {
        printf("purged %ld jobs (%lld records) of %s", res.jobs, res.records, name);
        if (res.still_parked > 0)
            printf("; %ld more jobs were parked meanwhile", res.still_parked);
        if (res.still_queued > 0)
            printf("; %lld of its records are still queued behind other sinks' jobs: they are "
                   "parked as flushers reach them, purge again then", res.still_queued);
        printf("\n");
        rc = 0;
    }
out:
    sw_shards_free(s);
    return rc;
}

int sw_ctl_sink(const sw_config *cfg, int argc, char **argv, int json)
{
    const char *what = argc > 0 ? argv[0] : "list", *name = NULL, *note = "";
    int intake = 0, flush = 0, yes = 0;
    int is_list = strcmp(what, "list") == 0, is_pause = strcmp(what, "pause") == 0;
    int is_resume = strcmp(what, "resume") == 0, is_purge = strcmp(what, "purge") == 0;
    if (!is_list && !is_pause && !is_resume && !is_purge)
        return sw_ctl_usage("sink", "unknown subcommand \"%s\": list, pause, resume or purge",
                            what);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--note") == 0 && i + 1 < argc && is_pause)
            note = argv[++i];
        else if (strcmp(argv[i], "--intake") == 0 && (is_pause || is_resume))
            intake = 1;
        else if (strcmp(argv[i], "--flush") == 0 && (is_pause || is_resume))
            flush = 1;
        else if (strcmp(argv[i], "--yes") == 0 && is_purge)
            yes = 1;
        else if (argv[i][0] != '-' && name == NULL && !is_list)
            name = argv[i];
        else
            return sw_ctl_usage("sink", "unexpected argument \"%s\" to sink %s", argv[i], what);
    }
    if (!is_list && name == NULL)
        return sw_ctl_usage("sink", "sink %s wants a sink name", what);
    if (name && sw_config_sink(cfg, name, strlen(name)) == NULL)
        return sw_ctl_usage("sink", "\"%s\" is not a configured sink", name);
    if (json && !is_list)
        return sw_ctl_usage("sink", "--json goes with sink list");
    if (strlen(note) > 500)
        return sw_ctl_usage("sink", "--note is at most 500 bytes");
    /* The intake unless told: pause and resume alike. */
    if (!intake && !flush)
        intake = 1;
    /* The pause state is under the configured prefix, not a shard's. */
    sw_redis_opts ro = sw_config_redis(cfg);
    sw_redis *r = sw_redis_new(&ro);
    int rc = 1;
    if (r == NULL)
        fprintf(stderr, "spillwayctl: out of memory\n");
    else if (is_list)
        rc = cmd_list(cfg, r, json);
    else if (is_pause)
        rc = cmd_pause(r, name, intake, flush, note);
    else if (is_resume)
        rc = cmd_resume(r, name, intake, flush);
    else
        rc = cmd_purge(cfg, r, name, yes);
    sw_redis_free(r);
    return rc;
}
