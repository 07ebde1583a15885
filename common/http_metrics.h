#ifndef SW_HTTP_METRICS_H_
#define SW_HTTP_METRICS_H_

#include "buf.h"
#include "httpd.h"

/* The HTTP core's figures (httpd.h) in the Prometheus text format:
 * connections per listener, workers and busy workers per pool, requests
 * waiting for a worker, and the refusals that protect the server.
 * `listeners` names each listener ("api", "admin"). 0, or -1 when out of
 * memory. */
__attribute__((warn_unused_result))
int sw_http_metrics(const sw_httpd_stats *s, const char *const *listeners, sw_buf *out);

#endif
