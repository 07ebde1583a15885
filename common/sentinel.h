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
    char password[256];       /* "" = no AUTH to the Sentinels */
    char errstr[256];         /* of sw_sentinel_init() */
} sw_sentinel;

/* Parse `list` ("host:port,...") into `s`. 0, or -1 with s->errstr. */
__attribute__((warn_unused_result))
int sw_sentinel_init(sw_sentinel *s, const char *list, const char *master_name,
                     const char *password);

/* Ask Sentinel `k` (0 .. n-1) for the master's address, spending at
 * most `timeout_ms` on each step (connect, AUTH, the question). 0 with
 * `master`, or -1 with a few words on its answer in `why`. The caller
 * walks the Sentinels from `next`, confirms the address with ROLE, and
 * sets `next` to the one whose answer held. */
__attribute__((warn_unused_result))
int sw_sentinel_ask(const sw_sentinel *s, int k, int timeout_ms, sw_endpoint *master, char *why,
                    size_t len);

/* Given the reply to ROLE (a hiredis reply), 1 when it says master, 0
 * when it names another role, -1 when it is not a ROLE reply. Pure. */
int sw_sentinel_role_is_master(const void *reply);

#endif
