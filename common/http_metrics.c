#include "http_metrics.h"

#include <stdio.h>

#include "metrics.h"

int sw_http_metrics(const sw_httpd_stats *s, const char *const *listeners, sw_buf *out)
{
    char l[96];
    int rc = 0;
    rc |= sw_metrics_header(out, "spillway_http_connections", "gauge",
                            "Open client connections, by listener.");
    for (int i = 0; i < s->nlisten; i++) {
        snprintf(l, sizeof l, "listener=\"%s\"", listeners[i]);
        rc |= sw_metrics_sample(out, "spillway_http_connections", l, s->listen[i].open);
    }
    rc |= sw_metrics_header(out, "spillway_http_connections_idle", "gauge",
                            "Open connections waiting for a request, by listener.");
    for (int i = 0; i < s->nlisten; i++) {
        snprintf(l, sizeof l, "listener=\"%s\"", listeners[i]);
        rc |= sw_metrics_sample(out, "spillway_http_connections_idle", l, s->listen[i].idle);
    }
    const struct {
        const char *name, *type, *help;
    } per_pool[] = {
        {"spillway_http_workers", "gauge", "Worker threads, by pool (api: the API; admin: "
         "probes, metrics, dashboard)."},
        {"spillway_http_workers_busy", "gauge", "Worker threads running a request now, by pool."},
        {"spillway_http_requests_waiting", "gauge",
         "Complete requests waiting for a free worker, by pool."},
        {"spillway_http_requests_waited_total", "counter",
         "Requests that waited 100 ms or more for a worker, by pool."},
    };
    for (size_t m = 0; m < sizeof per_pool / sizeof per_pool[0]; m++) {
        rc |= sw_metrics_header(out, per_pool[m].name, per_pool[m].type, per_pool[m].help);
        for (int i = 0; i < s->npools; i++) {
            const sw_pool_stats *p = &s->pool[i];
            double v = m == 0 ? p->threads : m == 1 ? p->busy : m == 2 ? p->queued
                                                                       : (double)p->waited;
            snprintf(l, sizeof l, "pool=\"%s\"", s->pool_name[i]);
            rc |= sw_metrics_sample(out, per_pool[m].name, l, v);
        }
    }
    rc |= sw_metrics_header(out, "spillway_http_connections_accepted_total", "counter",
                            "Client connections accepted.");
    rc |= sw_metrics_sample(out, "spillway_http_connections_accepted_total", "",
                            (double)s->accepted);
    rc |= sw_metrics_header(out, "spillway_http_connections_refused_total", "counter",
                            "Connections turned away: per_address (429, the address is at "
                            "max_connections_per_address), full (503, max_connections "
                            "reached and none idle).");
    rc |= sw_metrics_sample(out, "spillway_http_connections_refused_total",
                            "reason=\"per_address\"", (double)s->refused_per_address);
    rc |= sw_metrics_sample(out, "spillway_http_connections_refused_total", "reason=\"full\"",
                            (double)s->refused_full);
    rc |= sw_metrics_header(out, "spillway_http_connections_closed_idle_total", "counter",
                            "Idle connections closed to make room for new ones.");
    rc |= sw_metrics_sample(out, "spillway_http_connections_closed_idle_total", "",
                            (double)s->closed_idle);
    rc |= sw_metrics_header(out, "spillway_http_timeouts_total", "counter",
                            "Requests too slow to arrive (408), and connections that sent "
                            "no head in time.");
    rc |= sw_metrics_sample(out, "spillway_http_timeouts_total", "", (double)s->timeouts);
    rc |= sw_metrics_header(out, "spillway_http_malformed_total", "counter",
                            "Requests refused because their framing or head was malformed.");
    rc |= sw_metrics_sample(out, "spillway_http_malformed_total", "", (double)s->malformed);
    return rc ? -1 : 0;
}
