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
    rc |= sw_metrics_header(out, "spillway_http_workers", "gauge",
                            "Worker threads, by pool (api: the API; admin: probes, "
                            "metrics, dashboard).");
    for (int i = 0; i < s->npools; i++) {
        snprintf(l, sizeof l, "pool=\"%s\"", s->pool_name[i]);
        rc |= sw_metrics_sample(out, "spillway_http_workers", l, s->pool[i].threads);
    }
    rc |= sw_metrics_header(out, "spillway_http_workers_busy", "gauge",
                            "Worker threads running a request now, by pool.");
    for (int i = 0; i < s->npools; i++) {
        snprintf(l, sizeof l, "pool=\"%s\"", s->pool_name[i]);
        rc |= sw_metrics_sample(out, "spillway_http_workers_busy", l, s->pool[i].busy);
    }
    rc |= sw_metrics_header(out, "spillway_http_requests_waiting", "gauge",
                            "Complete requests waiting for a free worker, by pool.");
    for (int i = 0; i < s->npools; i++) {
        snprintf(l, sizeof l, "pool=\"%s\"", s->pool_name[i]);
        rc |= sw_metrics_sample(out, "spillway_http_requests_waiting", l, s->pool[i].queued);
    }
    rc |= sw_metrics_header(out, "spillway_http_requests_waited_total", "counter",
                            "Requests that waited 100 ms or more for a worker, by pool.");
    for (int i = 0; i < s->npools; i++) {
        snprintf(l, sizeof l, "pool=\"%s\"", s->pool_name[i]);
        rc |= sw_metrics_sample(out, "spillway_http_requests_waited_total", l,
                                (double)s->pool[i].waited);
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
