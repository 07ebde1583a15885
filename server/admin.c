/* The dashboard's actions, POST /v1/admin/...: pause and resume a sink's
 * intake or flushing, purge its parked jobs, requeue and drop a dead job. Only a token with the +admin scope
 * runs them (route() checks it), and each is logged with the token's id
 * and the client. */
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "api.h"
#include "dead.h"
#include "jobid.h"
#include "log.h"
#include "park.h"
#include "pause.h"

/* Jobs one purge request takes at most (send it again for more). */
#define PURGE_MAX_JOBS 10000

/* Log an action done: what, on what, by which token (the id spillwayctl
 * token list shows), from where. */
static void logged(sw_http_exchange *x, const char *action, const char *target)
{
    const sw_auth_entry *grant = x->note2;
    char id[13] = "-";
    for (int k = 0; grant && k < 6; k++)
        snprintf(id + 2 * k, 3, "%02x", grant->hash[k]);
    sw_log_info("admin action", "action=%s target=%s token=%s client=%s", action, target, id,
                x->client[0] ? x->client : "-");
}

static void done_json(sw_http_exchange *x, sw_buf *o, const char *action, const char *key,
                      const char *target)
{
    sw_buf_reset(o);
    if (sw_buf_printf(o, "{\"action\":\"%s\",\"%s\":", action, key) != 0 ||
        sw_buf_json_str(o, target, strlen(target)) != 0 || sw_buf_puts(o, "}") != 0) {
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    logged(x, action, target);
    sw_api_json(x, 200, NULL, o);
}

/* The body's string member `name` into out (at most 500 bytes): 0, or
 * -1 (a body not a JSON object, a member not a string, too long). An
 * empty body or no member leave out "". */
static int body_string(const sw_http_exchange *x, const char *name, char out[512])
{
    out[0] = '\0';
    if (x->body_len == 0)
        return 0;
    json_t *b = json_loadb(x->body, x->body_len, 0, NULL);
    const char *n = json_string_value(json_object_get(b, name));
    int rc = b == NULL || !json_is_object(b) || (json_object_get(b, name) && n == NULL) ||
             (n && strlen(n) > 500) ? -1 : 0;
    if (rc == 0)
        snprintf(out, 512, "%s", n ? n : "");
    json_decref(b);
    return rc;
}

static void purge(sw_worker *w, sw_http_exchange *x, sw_redis *r, const sw_config *cfg,
                  const sw_sink *sink)
{
    char confirm[512];
    if (body_string(x, "confirm", confirm) != 0 || strcmp(confirm, sink->name) != 0) {
        sw_api_problem(x, 400, "confirm", "Confirmation needed",
                       "purging cannot be undone: send {\"confirm\": \"<the sink's name>\"}",
                       NULL);
        return;
    }
    sw_purge_result res;
    sw_redis *failed;
    /* Bounded per request: a worker thread runs it. */
    int rc = sw_park_purge_sink(r, w->shards, cfg, sink->name, "purged by an operator "
                                "(dashboard)", PURGE_MAX_JOBS, &res, &failed);
    if (rc == 0) {
        sw_api_problem(x, 409, "flushing-not-paused", "Flushing not paused",
                       "pause the sink's flushing first (POST /v1/admin/sinks/{sink}/"
                       "pause-flush): its jobs are then parked, and only parked jobs are purged",
                       NULL);
        return;
    }
    if (rc < 0) {
        if (res.records > 0)
            sw_log_warn("purge cut short", "sink=%s purged_records=%lld error=\"%s\"",
                        sink->name, res.records, failed->errstr);
        if (failed->err == SW_REDIS_EREFUSED && strstr(failed->errstr, "kept changing"))
            sw_api_problem(x, 409, "purge-conflict", "Purge interrupted", failed->errstr, NULL);
        else
            sw_api_redis_unavailable(x, failed);
        return;
    }
    sw_buf *o = &w->out;
    sw_buf_reset(o);
    int bad = sw_buf_puts(o, "{\"action\":\"purge\",\"sink\":");
    bad |= sw_buf_json_str(o, sink->name, strlen(sink->name));
    bad |= sw_buf_printf(o, ",\"purged_jobs\":%ld,\"purged_records\":%lld,"
                         "\"still_parked_jobs\":%ld", res.jobs, res.records, res.still_parked);
    bad |= res.still_queued >= 0 ? sw_buf_printf(o, ",\"still_queued_records\":%lld}",
                                                 res.still_queued)
                                 : sw_buf_puts(o, "}");
    if (bad) {
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    logged(x, "purge", sink->name);
    sw_log_info("sink purged", "sink=%s jobs=%ld records=%lld", sink->name, res.jobs,
                res.records);
    sw_api_json(x, 200, NULL, o);
}

/* The pause state is under the configured prefix, not a shard's: one
 * connection for the action (actions are rare). */
static void sink_action(sw_http *h, sw_worker *w, sw_http_exchange *x, const sw_sink *sink,
                        const char *verb)
{
    char note[512] = "";
    int pause = strncmp(verb, "pause", 5) == 0, is_purge = strcmp(verb, "purge") == 0;
    enum sw_pause_what what = strstr(verb, "-flush") ? SW_PAUSE_FLUSH : SW_PAUSE_INTAKE;
    if (pause && body_string(x, "note", note) != 0) {
        sw_api_problem(x, 400, "bad-request", "Bad request",
                       "the body is optional: {\"note\": \"why\"}, at most 500 bytes", NULL);
        return;
    }
    sw_redis_opts ro = sw_config_redis(h->cfg);
    sw_redis *r = sw_redis_new(&ro);
    if (r == NULL) {
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    if (is_purge) {
        purge(w, x, r, h->cfg, sink);
        sw_redis_free(r);
        return;
    }
    int rc = pause ? sw_pause_set(r, what, sink->name, note)
                   : sw_pause_clear(r, what, sink->name);
    if (rc < 0 && r->err == SW_REDIS_ENOMEM)
        sw_api_problem(x, 500, "internal", "Internal error", r->errstr, NULL);
    else if (rc < 0)
        sw_api_redis_unavailable(x, r);
    else
        done_json(x, &w->out, verb, "sink", sink->name);
    sw_redis_free(r);
}

static void dead_action(sw_http *h, sw_worker *w, sw_http_exchange *x, const char *id,
                        int requeue)
{
    /* An id naming a shard this deployment has not is no job of ours. */
    sw_redis *r = sw_shards_job(w->shards, id);
    int rc = r == NULL ? 0
             : requeue ? sw_dead_requeue_job(r, id, h->cfg->status_ttl_s) : sw_dead_drop(r, id);
    if (rc == 0) {
        sw_api_problem(x, 404, "no-such-dead-job", "No such dead job",
                       "no failed job with this id waits in the dead-letter store", NULL);
    } else if (rc < 0 && r->err == SW_REDIS_EPROTO && strstr(r->errstr, "undecodable")) {
        sw_api_problem(x, 409, "undecodable", "Cannot requeue", r->errstr, NULL);
    } else if (rc < 0) {
        sw_api_redis_unavailable(x, r);
    } else {
        done_json(x, &w->out, requeue ? "requeue" : "drop", "job_id", id);
    }
}

void sw_api_admin(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    const char *p = x->path + 10;   /* past "/v1/admin/" */
    char name[128];
    const char *slash = strchr(p, '/');
    const char *verb = NULL, *rest = NULL;
    if (strncmp(p, "sinks/", 6) == 0 || strncmp(p, "dead/", 5) == 0) {
        rest = p + (p[0] == 's' ? 6 : 5);
        slash = strchr(rest, '/');
        verb = slash ? slash + 1 : NULL;
    }
    size_t n = slash && rest ? (size_t)(slash - rest) : 0;
    if (verb == NULL || n == 0 || n >= sizeof name) {
        sw_api_problem(x, 404, "not-found", "Not found",
                       "actions: POST /v1/admin/sinks/{sink}/pause|resume|pause-flush|"
                       "resume-flush|purge, "
                       "/v1/admin/dead/{job_id}/requeue|drop", NULL);
        return;
    }
    memcpy(name, rest, n);
    name[n] = '\0';
    if (p[0] == 's') {
        const sw_sink *sink = sw_config_sink(h->cfg, name, n);
        static const char *const verbs[] = {"pause", "resume", "pause-flush", "resume-flush",
                                            "purge"};
        int known = 0;
        for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
            known |= strcmp(verb, verbs[i]) == 0;
        if (sink == NULL || !known) {
            sw_api_problem(x, 404, "not-found", "Not found",
                           sink ? "POST /v1/admin/sinks/{sink}/pause, /resume, /pause-flush, "
                                  "/resume-flush or /purge"
                                : "no sink of that name is configured", NULL);
            return;
        }
        sink_action(h, w, x, sink, verb);
        return;
    }
    if (!sw_jobid_valid(name, n) || (strcmp(verb, "requeue") != 0 && strcmp(verb, "drop") != 0)) {
        sw_api_problem(x, 404, "not-found", "Not found",
                       "POST /v1/admin/dead/{job_id}/requeue or /drop, with a job id", NULL);
        return;
    }
    dead_action(h, w, x, name, verb[0] == 'r');
}
