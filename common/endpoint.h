#ifndef SW_ENDPOINT_H_
#define SW_ENDPOINT_H_

#include <stddef.h>

/* A host and port, as operators write them in lists of servers:
 * "host:port,host:port" (an IPv6 address in brackets: "[::1]:26379"). */

#define SW_ENDPOINTS_MAX 16

typedef struct sw_endpoint {
    char host[256];
    int port;
} sw_endpoint;

/* Parse the comma-separated `list` into at most `max` endpoints, spaces
 * around entries allowed. Returns how many (at least 1), or -1 with a
 * sentence on what to fix in `why`. Pure. */
__attribute__((warn_unused_result))
int sw_endpoints_parse(const char *list, sw_endpoint *out, int max, char *why, size_t len);

#endif
