/* sw_cluster_owner() (cluster.h): reading a CLUSTER SLOTS reply, which
 * comes as a hiredis reply object; the rest of cluster.h is in cluster.c. */
#include <hiredis/hiredis.h>
#include <string.h>

#include "cluster.h"

/* Is element `e` of a slot range an address: [host, port, ...]? */
/* Element `e` of a slot range as an address: [host, port, ...]. 0, 1
 * when its host is "?" (the node's address is not known yet), -1 when
 * it is not an address. */
static int node_of(const redisReply *e, const sw_endpoint *asked, sw_endpoint *out)
{
    if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 ||
        (e->element[0]->type != REDIS_REPLY_STRING && e->element[0]->type != REDIS_REPLY_NIL) ||
        e->element[1]->type != REDIS_REPLY_INTEGER)
        return -1;
    const redisReply *h = e->element[0];
    long long port = e->element[1]->integer;
    if (port < 1 || port > 65535)
        return -1;
    if (h->type == REDIS_REPLY_NIL || h->len == 0) {
        /* The node's endpoint is its port on the host we asked. */
        memcpy(out->host, asked->host, sizeof out->host);
    } else if (h->len == 1 && h->str[0] == '?') {
        return 1;
    } else {
        if (h->len >= sizeof out->host)
            return -1;
        memcpy(out->host, h->str, h->len);
        out->host[h->len] = '\0';
    }
    out->port = (int)port;
    return 0;
}

int sw_cluster_owner(const void *reply, int slot, const sw_endpoint *asked,
                     sw_endpoint *owner)
{
    const redisReply *r = reply;
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < r->elements; i++) {
        const redisReply *range = r->element[i];
        if (range->type != REDIS_REPLY_ARRAY || range->elements < 3 ||
            range->element[0]->type != REDIS_REPLY_INTEGER ||
            range->element[1]->type != REDIS_REPLY_INTEGER)
            return -1;
        long long lo = range->element[0]->integer, hi = range->element[1]->integer;
        if (lo < 0 || hi >= SW_CLUSTER_SLOTS || lo > hi)
            return -1;
        sw_endpoint e;
        int known = node_of(range->element[2], asked, &e);
        if (known < 0)
            return -1;
        if (slot >= lo && slot <= hi) {
            if (known == 1)
                return 1;
            *owner = e;
            return 0;
        }
    }
    return 1;
}
