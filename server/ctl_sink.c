/* spillwayctl sink: list the sinks with their intake state, pause and
 * resume a sink's intake (pause.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "pause.h"
#include "queue.h"

static int cmd_list(const sw_config *cfg, sw_redis *r, int json)
{
    sw_buf rec = SW_BUF_INIT;
    json_t *all = json_array();
    int rc = 1;
    /* Depths when every shard gives them; the pause state in any case. */
    long long *depth = calloc((size_t)cfg->nsinks + 1, sizeof *depth);
    sw_redis_opts ro = sw_config_redis(cfg);
    sw_shards *s = depth ? sw_shards_new(&ro, cfg->shards) : NULL;
    int known = s != NULL;
    for (int k = 0; s && k < s->n && known; k++)
        known = sw_queue_sink_depths(s->q[k], cfg, depth) == 1;
    if (depth == NULL) {
        fprintf(stderr, "spillwayctl: out of memory\n");
        goto out;
    }
    for (int k = 0; k < cfg->nsinks; k++) {
        const sw_sink *sk = &cfg->sinks[k];
        long long queued = depth[k];
        char num[32];
        snprintf(num, sizeof num, "%lld", queued);
        int paused = sw_pause_get(r, sk->name, &rec);
        if (paused < 0) {
            fprintf(stderr, "spillwayctl: %s (%s)\n", r->errstr,
                    sw_redis_hint(r->err, r->code, r->errstr));
            goto out;
        }
        json_t *p = paused ? json_loadb(rec.data, rec.len, 0, NULL) : NULL;
        json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:b}", "sink", sk->name, "table", sk->table,
                              "mode", sw_sink_mode_name(sk->mode), "queued_records",
                              known ? json_integer(queued) : json_null(), "intake_paused",
                              paused);
        if (p)
            json_object_set(o, "paused", p);
        if (!json)
            printf("%s  table=%s mode=%s queued=%s intake=%s%s%s%s%s\n", sk->name, sk->table,
                   sw_sink_mode_name(sk->mode), known ? num : "?", paused ? "paused" : "open",
                   p ? " since=" : "", p ? json_string_value(json_object_get(p, "since")) : "",
                   p && json_string_length(json_object_get(p, "note")) ? " note=" : "",
                   p && json_string_length(json_object_get(p, "note"))
                       ? json_string_value(json_object_get(p, "note")) : "");
        json_decref(p);
        json_array_append_new(all, o);
    }
    rc = json ? sw_ctl_print_json(json_pack("{s:O}", "sinks", all)) : 0;
out:
    sw_shards_free(s);
    free(depth);
    json_decref(all);
    sw_buf_free(&rec);
    return rc;
}

int sw_ctl_sink(const sw_config *cfg, int argc, char **argv, int json)
{
    const char *what = argc > 0 ? argv[0] : "list", *name = NULL, *note = "";
    if (strcmp(what, "list") != 0 && strcmp(what, "pause") != 0 && strcmp(what, "resume") != 0)
        return sw_ctl_usage("sink", "unknown subcommand \"%s\": list, pause or resume", what);
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--note") == 0 && i + 1 < argc && strcmp(what, "pause") == 0)
            note = argv[++i];
        else if (argv[i][0] != '-' && name == NULL && strcmp(what, "list") != 0)
            name = argv[i];
        else
            return sw_ctl_usage("sink", "unexpected argument \"%s\" to sink %s", argv[i], what);
    }
    if (strcmp(what, "list") != 0 && name == NULL)
        return sw_ctl_usage("sink", "sink %s wants a sink name", what);
    if (name && sw_config_sink(cfg, name, strlen(name)) == NULL)
        return sw_ctl_usage("sink", "\"%s\" is not a configured sink", name);
    if (json && strcmp(what, "list") != 0)
        return sw_ctl_usage("sink", "--json goes with sink list");
    if (strlen(note) > 500)
        return sw_ctl_usage("sink", "--note is at most 500 bytes");
    /* The pause state is under the configured prefix, not a shard's. */
    sw_redis_opts ro = sw_config_redis(cfg);
    sw_redis *r = sw_redis_new(&ro);
    int rc = 1;
    if (r == NULL) {
        fprintf(stderr, "spillwayctl: out of memory\n");
    } else if (strcmp(what, "list") == 0) {
        rc = cmd_list(cfg, r, json);
    } else if (strcmp(what, "pause") == 0) {
        if (sw_pause_set(r, name, note) != 0)
            fprintf(stderr, "spillwayctl: %s (%s)\n", r->errstr,
                    sw_redis_hint(r->err, r->code, r->errstr));
        else {
            printf("intake of %s paused: its POSTs answer 503 within a second; queued jobs still "
                   "flush (watch spillwayctl queue)\n", name);
            rc = 0;
        }
    } else {
        int was = sw_pause_clear(r, name);
        if (was < 0)
            fprintf(stderr, "spillwayctl: %s (%s)\n", r->errstr,
                    sw_redis_hint(r->err, r->code, r->errstr));
        else {
            printf("intake of %s %s\n", name, was ? "resumed" : "was not paused");
            rc = 0;
        }
    }
    sw_redis_free(r);
    return rc;
}
