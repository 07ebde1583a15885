#ifndef SW_SENTINEL_H_
#define SW_SENTINEL_H_

#include <stddef.h>

#include "endpoint.h"

/* Finding a Redis master through Redis Sentinel, as Sentinel's client
 * guidelines describe: ask each Sentinel in turn for the master's address
 * (SENTINEL get-master-addr-by-name), starting with the one that answered
 * last; skip any that is unreachable, errs, or does not know the name.
 * The caller then connects and confirms with ROLE that the address is a
 * master (a Sentinel may be behind a failover). */

typedef struct sw_sentinel {
    sw_endpoint nodes[SW_ENDPOINTS_MAX];
    int n;
    int next;                 /* the one to ask first */
    char master_name[128];
    int timeout_ms;           /* per Sentinel: connect, and the one command */
    char password[256];       /* "" = no AUTH to the Sentinels */
    char errstr[256];
} sw_sentinel;

/* Parse `list` ("host:port,...") into `s`. 0, or -1 with s->errstr. */
__attribute__((warn_unused_result))
int sw_sentinel_init(sw_sentinel *s, const char *list, const char *master_name, int timeout_ms,
                     const char *password);

/* The master's address, from the first Sentinel that knows it. 0, or -1
 * with s->errstr naming what each Sentinel answered. */
__attribute__((warn_unused_result))
int sw_sentinel_master(sw_sentinel *s, sw_endpoint *master);

/* Given the reply to ROLE (a hiredis reply), 1 when it says master, 0
 * when it names another role, -1 when it is not a ROLE reply. Pure. */
int sw_sentinel_role_is_master(const void *reply);

#endif
