/* Where the master is (redis_int.h): asked of Sentinels, or read from a
 * cluster's slot map. The adapter (redis.c) calls these while connecting. */
#include <hiredis/hiredis.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "cluster.h"
#include "redis_int.h"

/* A Sentinel may name a master that has just been demoted (its view lags
 * a failover): only a server that says it is a master is used. */
static int confirm_master(sw_redis *r, redisContext *c)
{
    redisReply *rep = redisCommand(c, "ROLE");
    int is = sw_sentinel_role_is_master(rep);
    if (rep && rep->type == REDIS_REPLY_ERROR && strncmp(rep->str, "NOPERM", 6) == 0) {
        /* Our ACL user may not ask (docs/SECURITY.md grants +role): take
         * Sentinel's word; a demoted master answers READONLY to our first
         * write, which drops the connection, and the next asks again. */
        freeReplyObject(rep);
        return 0;
    }
    if (is != 1)
        sw_redis_set_err(r, SW_REDIS_ECONNECT, "sentinel",
                         "%s:%d, named master '%s' by Sentinel, %s",
                         r->host, r->port, r->sentinel->master_name,
                         rep == NULL ? c->errstr
                         : rep->type == REDIS_REPLY_ERROR ? rep->str
                         : is == 0 ? "is not a master (a failover is under way)"
                         : "answered ROLE with something unexpected");
    if (rep)
        freeReplyObject(rep);
    return is == 1 ? 0 : -1;
}

/* Append "; <why>" to a bounded account of what each node answered. */
static void note(char *buf, size_t size, size_t *used, const char *why)
{
    if (*used >= size)
        return;
    int w = snprintf(buf + *used, size - *used, "%s%s", *used ? "; " : "", why);
    *used += w > 0 ? (size_t)w : 0;
}

/* The master a Sentinel last named and ROLE confirmed, for any adapter
 * of this process (one config, one master name): `set` 1 records `m`;
 * 0 reads it into `m`, 0, or -1 when there is none yet. Taken only while
 * connecting. */
static int remember_master(sw_endpoint *m, int set)
{
    static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
    static sw_endpoint last;
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (set)
        last = *m;
    else if (last.port == 0)
        rc = -1;
    else
        *m = last;
    pthread_mutex_unlock(&lock);
    return rc;
}

/* A connection to `m`, named master by Sentinel, if ROLE there agrees
 * (within `ms` for connecting and asking), with our command timeout; or
 * NULL with err. */
static redisContext *open_master(sw_redis *r, const sw_endpoint *m, int ms)
{
    snprintf(r->host, sizeof r->host, "%s", m->host);
    r->port = m->port;
    redisContext *c = sw_redis_open_node(r, m->host, m->port, ms, ms);
    if (c && confirm_master(r, c) == 0 && sw_redis_set_timeout(r, c, r->timeout_ms) == 0)
        return c;
    if (c)
        redisFree(c);
    return NULL;
}

/* Sentinel: ask the Sentinels in turn, from the one whose answer held
 * last, and connect to the first address that ROLE confirms is a master:
 * a Sentinel cut off from its peers may still name a demoted master, and
 * the next one is asked then. All within `deadline`, and then, if none
 * answered, the master last confirmed. The connection, or NULL with err
 * = ECONNECT. */
void *sw_redis_via_sentinel(sw_redis *r, int64_t deadline)
{
    sw_sentinel *s = r->sentinel;
    char seen[200] = "";
    size_t used = 0;
    for (int i = 0; i < s->n; i++) {
        /* Each Sentinel gets a fair share of the time left, so one that
         * accepts and never answers does not starve the others. */
        int k = (s->next + i) % s->n, ms = sw_redis_left_ms(r, deadline) / (s->n - i);
        char why[200];
        sw_endpoint m;
        if (ms == 0) {
            note(seen, sizeof seen, &used, "out of time ([redis] timeout_ms)");
            break;
        }
        if (sw_sentinel_ask(s, k, ms, &m, why, sizeof why) != 0) {
            char line[260];
            snprintf(line, sizeof line, "sentinel %s:%d: %s", s->nodes[k].host,
                     s->nodes[k].port, why);
            note(seen, sizeof seen, &used, line);
            continue;
        }
        redisContext *c = open_master(r, &m, ms);
        if (c) {
            s->next = k;
            remember_master(&m, 1);
            return c;
        }
        note(seen, sizeof seen, &used, r->errstr);
    }
    sw_endpoint last;
    if (remember_master(&last, 0) == 0) {
        /* No Sentinel gave a master: rather than refuse every write while
         * the Sentinels are down, the master last confirmed (by any
         * connection of this process), if ROLE still says master (a
         * demoted one says replica and is passed over). No worse than a
         * connection made before they went down, which stays in use. */
        int ms = sw_redis_left_ms(r, deadline);
        redisContext *c = open_master(r, &last, ms > 100 ? ms : 100);
        if (c)
            return c;
        note(seen, sizeof seen, &used, r->errstr);
    }
    sw_redis_set_err(r, SW_REDIS_ECONNECT, "sentinel",
                     "no Sentinel named a reachable master '%s' (%s)",
                     s->master_name, seen);
    return NULL;
}

/* Cluster: who owns our slot, asked of the node last known to own it,
 * then of each seed in turn (CLUSTER SLOTS), within `deadline`. 0, or -1
 * with err = ECONNECT. */
int sw_redis_locate(sw_redis *r, int64_t deadline)
{
    sw_cluster_route *rt = r->route;
    char seen[200] = "";
    size_t used = 0;
    for (int i = -1; i < rt->nseeds; i++) {
        const sw_endpoint *e = i < 0 ? &rt->owner : &rt->seeds[i];
        /* A fair share of the time left, as for Sentinels: a silent
         * node (the old owner, partitioned) cannot starve the others. */
        int ms = sw_redis_left_ms(r, deadline) / (rt->nseeds - i);
        if (e->port == 0)
            continue;
        if (ms == 0) {
            note(seen, sizeof seen, &used, "out of time ([redis] timeout_ms)");
            break;
        }
        char why[260];
        redisContext *c = sw_redis_open_node(r, e->host, e->port, ms, ms);
        redisReply *rep = c ? redisCommand(c, "CLUSTER SLOTS") : NULL;
        sw_endpoint owner;
        int found = rep ? sw_cluster_owner(rep, rt->slot, e, &owner) : -1;
        if (found == 0)
            rt->owner = owner;
        else
            snprintf(why, sizeof why, "%s:%d: %s", e->host, e->port,
                     c == NULL ? r->errstr
                     : rep == NULL ? c->errstr
                     : rep->type == REDIS_REPLY_ERROR ? rep->str
                     : found == 1 ? "no node serves the slot"
                                  : "not a CLUSTER SLOTS reply");
        if (rep)
            freeReplyObject(rep);
        if (c)
            redisFree(c);
        if (found == 0)
            return 0;
        note(seen, sizeof seen, &used, why);
    }
    sw_redis_set_err(r, SW_REDIS_ECONNECT, "cluster",
                     "no node named the owner of slot %d (%s)", rt->slot,
                     seen);
    return -1;
}
