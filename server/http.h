#ifndef SW_HTTP_H_
#define SW_HTTP_H_

#include "config.h"

/* The HTTP front end: civetweb, routes, and the per-thread Redis
 * connections. The request codecs live in common/ (ingest, record,
 * envelope); this file only moves bytes between them and the sockets. */
typedef struct sw_http sw_http;

/* Start listening per `cfg` (which must outlive the server). Returns the
 * server, or NULL after logging why (port in use, bad listen address). */
sw_http *sw_http_start(const sw_config *cfg);

/* Stop accepting, finish the requests in progress, free. Accepts NULL. */
void sw_http_stop(sw_http *h);

#endif
