/* The API's reads: GET /v1/queue and /v1/stats (jobs: jobs.c). */
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "clock.h"
#include "jobid.h"
#include "queue.h"
#include "status.h"

void sw_api_get_queue(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    (void)h;
    sw_queue_stats st;
    sw_redis *failed;
    if (sw_shards_stats(w->shards, &st, NULL, &failed) != 0) {
        sw_api_redis_unavailable(x, failed);
        return;
    }
    sw_buf_reset(&w->out);
    if (sw_buf_printf(&w->out,
                      "{\"depth\":%lld,\"in_flight\":%lld,\"queued_jobs\":%lld,"
                      "\"dead_jobs\":%lld,\"oldest_age_seconds\":%.3f}",
                      st.queued_records, st.inflight_records, st.queued_jobs, st.dead_jobs,
                      sw_queue_oldest_age(&st, sw_clock_now_us())) != 0) {
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    sw_api_json(x, 200, NULL, &w->out);
}

/* "history=1" among the query's parameters. */
static int wants_history(const char *q)
{
    const char *v = sw_http_query_param(q, "history");
    return v && v[0] == '1' && (v[1] == '\0' || v[1] == '&');
}

int sw_api_sink_figures(sw_http *h, sw_worker *w, sw_sink_figures *fig, int64_t *oldest_us)
{
    int n = h->cfg->nsinks;
    sw_redis *failed;
    /* The ages from the last read while it is recent (every request of
     * the dashboards and scrapes would read envelopes otherwise). */
    int64_t now = sw_clock_mono_ms();
    pthread_mutex_lock(&h->ages_lock);
    int fresh = h->ages_at_ms != 0 && now - h->ages_at_ms < SW_AGES_EVERY_MS;
    if (fresh)
        memcpy(oldest_us, h->ages_us, (size_t)n * sizeof *oldest_us);
    pthread_mutex_unlock(&h->ages_lock);
    int known = sw_shards_sink_figures(w->shards, h->cfg, fig, fresh ? NULL : oldest_us, &failed);
    if (known >= 0 && !fresh) {
        pthread_mutex_lock(&h->ages_lock);
        memcpy(h->ages_us, oldest_us, (size_t)n * sizeof *oldest_us);
        h->ages_at_ms = now;
        pthread_mutex_unlock(&h->ages_lock);
    }
    return known;
}

/* The overview from Redis, then what this server knows: each sink and
 * whether its intake is paused, and with ?history=1 the chart's last hour
 * (history.h). */
void sw_api_get_stats(sw_http *h, sw_worker *w, sw_http_exchange *x)
{
    sw_redis *failed;
    sw_buf *o = &w->out;
    if (sw_shards_overview(w->shards, 20, o, &failed) != 0) {
        sw_api_redis_unavailable(x, failed);
        return;
    }
    if (o->len < 2 || o->data[o->len - 1] != '}') {
        sw_api_problem(x, 500, "internal", "Internal error", "an overview not a JSON object",
                       NULL);
        return;
    }
    o->len--;
    sw_sink_figures *fig = calloc((size_t)h->cfg->nsinks + 1, sizeof *fig);
    int64_t *oldest = calloc((size_t)h->cfg->nsinks + 1, sizeof *oldest);
    int known = fig && oldest ? sw_api_sink_figures(h, w, fig, oldest) : -1;
    int64_t now_us = sw_clock_now_us();
    int rc = sw_buf_puts(o, ",\"sinks\":[");
    for (int k = 0; k < h->cfg->nsinks; k++) {
        const char *name = h->cfg->sinks[k].name;
        rc |= sw_buf_puts(o, k ? ",{\"name\":" : "{\"name\":");
        rc |= sw_buf_json_str(o, name, strlen(name));
        rc |= sw_buf_printf(o, ",\"paused\":%s,\"flush_paused\":%s",
                            atomic_load(&h->paused[k]) ? "true" : "false",
                            atomic_load(&h->flush_paused[k]) ? "true" : "false");
        if (known >= 0) {
            /* Commit latencies: counts per bucket of latency_bounds_ms. */
            rc |= sw_buf_printf(o, ",\"parked\":%lld,\"oldest_age_ms\":%lld,"
                                "\"commit_latency_sum_ms\":%lld,\"commit_latency\":[",
                                fig[k].parked, oldest[k] > 0 && now_us > oldest[k]
                                                   ? (long long)(now_us - oldest[k]) / 1000 : 0,
                                fig[k].lat_sum_ms);
            for (int i = 0; i < SW_LAT_NBUCKETS; i++)
                rc |= sw_buf_printf(o, "%s%llu", i ? "," : "", (unsigned long long)fig[k].lat[i]);
            rc |= sw_buf_puts(o, "]");
        }
        if (known == 1)
            rc |= sw_buf_printf(o, ",\"depth\":%lld", fig[k].depth);
        rc |= sw_buf_puts(o, "}");
    }
    free(fig);
    free(oldest);
    rc |= sw_buf_puts(o, "],\"latency_bounds_ms\":[");
    for (int i = 0; i < SW_LAT_NBUCKETS - 1; i++)
        rc |= sw_buf_printf(o, "%s%lld", i ? "," : "", sw_lat_bounds_ms[i]);
    rc |= sw_buf_puts(o, "]");
    if (wants_history(x->query)) {
        rc |= sw_buf_puts(o, ",\"history_step_ms\":");
        rc |= sw_buf_printf(o, "%d,\"history\":", SW_HISTORY_STEP_MS);
        rc |= sw_history_json(&h->history, o);
    }
    rc |= sw_buf_puts(o, "}");
    if (rc != 0) {
        sw_api_problem(x, 500, "internal", "Internal error", "out of memory", NULL);
        return;
    }
    sw_api_json(x, 200, NULL, o);
}
