/* A job's status: GET /v1/jobs/{id}, optionally waiting for it to finish
 * (?wait=N, waits.h), and POST /v1/jobs/lookup for many at once. */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "jobid.h"
#include "queue.h"
#include "status.h"
#include "waitlist.h"

/* Ids one lookup takes at most. */
#define LOOKUP_MAX_IDS 1000
/* The longest wait a client may ask for, in seconds. */
#define WAIT_MAX_S 30

const char sw_api_no_wait = 1;

/* Read job `id`'s status into `out` as the caller may see it: 1 found,
 * 0 unknown (never accepted, expired, or of a sink the caller's token may
 * not use: ids cannot be probed across sinks), -1 Redis failed (*failed
 * says which). */
static int read_status(sw_worker *w, const sw_auth_entry *grant, const char *id, sw_buf *out,
                       sw_redis **failed)
{
    sw_redis *r = sw_jobid_valid(id, strlen(id)) ? sw_shards_job(w->shards, id) : NULL;
    int found = r ? sw_queue_status(r, id, out) : 0;
    *failed = r;
    if (found > 0 && grant) {
        size_t n = 0;
        const char *sink = sw_status_sink(out->data, out->len, &n);
        found = sink != NULL && sw_auth_allows(grant, sink, n);
    }
    return found;
}

/* A status JSON (status.h) of a job no longer queued. */
static int finished(const sw_buf *status)
{
    static const char queued[] = "\"status\":\"queued\"";
    size_t n = sizeof queued - 1;
    for (size_t i = 0; i + n <= status->len; i++)
        if (memcmp(status->data + i, queued, n) == 0)
            return 0;
    return 1;
}

/* ?wait=N: -1 absent, the seconds, or -2 when not 0..WAIT_MAX_S. */
static int wait_param(const char *q)
{
    const char *p = sw_http_query_param(q, "wait");
    if (p == NULL)
        return -1;
    char *end;
    long v = isdigit((unsigned char)*p) ? strtol(p, &end, 10) : -1;
    if (v < 0 || (*end != '\0' && *end != '&') || v > WAIT_MAX_S)
        return -2;
    return (int)v;
}

/* Wait for queued job `id` (its status in w->out) to finish, up to
 * `secs`: a slot taken, the wait marked in Redis, then the status read
 * again, so a finish at any moment is seen. Leaves the final (or current)
 * status in w->out. 1 found, 0 unknown, -1 Redis failed. A wait that
 * cannot be had (no slot: *busy set; the mark refused) answers the state
 * read. */
static int wait_for(sw_http *h, sw_worker *w, const sw_auth_entry *grant, const char *id,
                    int secs, int *busy, sw_redis **failed)
{
    int slot;
    if (sw_waits_enter(h->waits, id, &slot) != 0) {
        *busy = 1;
        return 1;
    }
    int64_t deadline = sw_clock_mono_ms() + (int64_t)secs * 1000;
    sw_redis *r = sw_shards_job(w->shards, id);
    int found = 1;
    if (r && sw_waitlist_mark(r, id, sw_clock_now_us() / 1000 + (int64_t)secs * 1000) == 0) {
        found = read_status(w, grant, id, &w->out, failed);
        if (found == 1 && !finished(&w->out)) {
            (void)sw_waits_wait(h->waits, slot, deadline);
            found = read_status(w, grant, id, &w->out, failed);
        }
    }
    sw_waits_leave(h->waits, slot);
    return found;
}

void sw_api_get_job(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    const sw_auth_entry *grant = x->note2;
    char id[SW_JOBID_LEN + 1];
    int secs = wait_param(x->query), busy = 0;
    sw_redis *failed = NULL;
    if (secs == -2) {
        sw_api_problem(x, 400, "bad-wait", "Bad wait",
                       "wait is a whole number of seconds from 0 to 30", NULL);
        return;
    }
    /* Ids are made in lower case; the finish names them so. */
    snprintf(id, sizeof id, "%s", x->path + 9);
    for (char *c = id; *c; c++)
        *c = (char)tolower((unsigned char)*c);
    if (strlen(x->path + 9) > SW_JOBID_LEN)
        id[0] = '\0';
    int found = read_status(w, grant, id, &w->out, &failed);
    /* Only a queued job one may see is waited for; not on the admin
     * listener (its two threads serve the probes), nor with no slots. */
    if (found == 1 && secs > 0 && !finished(&w->out) && x->note != SW_API_NO_WAIT &&
        h->cfg->max_waiting > 0)
        found = wait_for(h, w, grant, id, secs, &busy, &failed);
    if (busy) {
        sw_api_problem(x, 429, "too-many-waiting", "Too many waiting",
                       "this server has as many requests waiting for jobs as it takes "
                       "([server] max_waiting); retry, or ask without ?wait",
                       "Retry-After: 1\r\n");
        return;
    }
    if (found < 0) {
        sw_api_redis_unavailable(x, failed);
        return;
    }
    if (!found) {
        sw_api_problem(x, 404, "job-not-found", "Job not found",
                       "no job with this id: it was never accepted, or its status expired "
                       "([redis] status_ttl_s)", NULL);
        return;
    }
    sw_api_json(x, 200, NULL, &w->out);
}

/* The body {"ids": [...]}: its array, or NULL with a problem sent. */
static json_t *lookup_ids(sw_http_exchange *x, json_t *doc)
{
    json_t *ids = json_object_get(doc, "ids");
    const char *why = NULL;
    size_t i;
    json_t *v;
    if (!json_is_object(doc) || !json_is_array(ids))
        why = "send {\"ids\": [\"<job id>\", ...]}";
    else if (json_array_size(ids) > LOOKUP_MAX_IDS)
        why = "at most 1000 ids per lookup";
    json_array_foreach(why ? NULL : ids, i, v) {
        if (!json_is_string(v)) {
            why = "every id is a string";
            break;
        }
    }
    if (why) {
        sw_api_problem(x, 422, "bad-lookup", "Bad lookup", why, NULL);
        return NULL;
    }
    return ids;
}

void sw_api_lookup_jobs(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    (void)h;
    const sw_auth_entry *grant = x->note2;
    json_error_t jerr;
    json_t *doc = json_loadb(x->body, x->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        sw_api_problem(x, 400, "bad-json", "Bad JSON", jerr.text, NULL);
        return;
    }
    json_t *ids = lookup_ids(x, doc), *v;
    sw_buf one = SW_BUF_INIT;
    size_t i;
    int rc = 0;
    if (ids == NULL)
        goto out;
    sw_buf_reset(&w->out);
    rc = sw_buf_puts(&w->out, "{\"jobs\":[");
    json_array_foreach(ids, i, v) {
        const char *id = json_string_value(v);
        sw_redis *failed = NULL;
        int found = read_status(w, grant, id, &one, &failed);
        if (found < 0) {
            sw_api_redis_unavailable(x, failed);
            goto out;
        }
        rc |= i ? sw_buf_puts(&w->out, ",") : 0;
        if (found) {
            rc |= sw_buf_append(&w->out, one.data, one.len);
        } else {
            rc |= sw_buf_puts(&w->out, "{\"job_id\":");
            rc |= sw_buf_json_str(&w->out, id, json_string_length(v));
            rc |= sw_buf_puts(&w->out, ",\"status\":\"unknown\"}");
        }
    }
    rc |= sw_buf_puts(&w->out, "]}");
    if (rc != 0)
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
    else
        sw_api_json(x, 200, NULL, &w->out);
out:
    sw_buf_free(&one);
    json_decref(doc);
}
