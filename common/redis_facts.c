/* What Spillway reads about the Redis it uses (redis.h): PING, the
 * persistence and eviction settings, memory. Over the adapter's public
 * calls only. */
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"
#include "redis_int.h"

int sw_redis_ping(sw_redis *r)
{
    void *rep = sw_redis_callf(r, "ping", SW_REPLY_STATUS, 1, "PING");
    if (rep == NULL)
        return -1;
    sw_redis_reply_free(rep);
    return 0;
}

int sw_redis_read_persistence(sw_redis *r, sw_redis_persistence *d)
{
    memset(d, 0, sizeof *d);
    redisReply *rep = sw_redis_callf(r, "config get", SW_REPLY_ARRAY, 1,
                                     "CONFIG GET appendonly appendfsync maxmemory-policy");
    if (rep == NULL)
        return -1;
    if (rep->elements != 6 || sw_redis_check_elements(r, rep, SW_REPLY_STRING, "config get")) {
        if (r->err != SW_REDIS_EPROTO)
            sw_redis_fail_proto(r, "config get", "not three settings");
        freeReplyObject(rep);
        return -1;
    }
    for (size_t i = 0; i + 1 < rep->elements; i += 2) {
        const char *k = rep->element[i]->str, *v = rep->element[i + 1]->str;
        if (strcmp(k, "appendonly") == 0)
            snprintf(d->appendonly, sizeof d->appendonly, "%s", v);
        else if (strcmp(k, "appendfsync") == 0)
            snprintf(d->appendfsync, sizeof d->appendfsync, "%s", v);
        else if (strcmp(k, "maxmemory-policy") == 0)
            snprintf(d->policy, sizeof d->policy, "%s", v);
    }
    freeReplyObject(rep);
    return 0;
}

/* The value of "name:" in INFO text, or -1. */
static long long info_field(const char *text, size_t len, const char *name)
{
    size_t n = strlen(name);
    const char *p = text, *end = text + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if ((size_t)(eol - p) > n && memcmp(p, name, n) == 0 && p[n] == ':')
            return strtoll(p + n + 1, NULL, 10);
        p = eol + 1;
    }
    return -1;
}

int sw_redis_read_memory(sw_redis *r, sw_redis_memory *m)
{
    redisReply *rep = sw_redis_callf(r, "info", SW_REPLY_STRING, 1, "INFO memory");
    if (rep == NULL)
        return -1;
    m->used = info_field(rep->str, rep->len, "used_memory");
    m->max = info_field(rep->str, rep->len, "maxmemory");
    freeReplyObject(rep);
    if (m->used < 0 || m->max < 0) {
        sw_redis_fail_proto(r, "info", "no used_memory or maxmemory in INFO memory");
        return -1;
    }
    return 0;
}

const char *sw_redis_persistence_text(const sw_redis_persistence *d)
{
    if (strcmp(d->appendonly, "yes") != 0)
        return "AOF is off: a Redis restart or crash loses every 202 since the last snapshot";
    if (strcmp(d->appendfsync, "always") == 0)
        return "AOF fsync always: an acknowledged job survives a Redis or host crash";
    if (strcmp(d->appendfsync, "everysec") == 0)
        return "AOF fsync everysec: a host crash can lose about the last second of 202s";
    return "AOF without fsync: a host crash can lose the last ~30 s of 202s";
}

int sw_redis_persistence_evicts(const sw_redis_persistence *d)
{
    return strncmp(d->policy, "allkeys-", 8) == 0;
}

int sw_redis_writable(sw_redis *r)
{
    redisReply *rep = sw_redis_callf(r, "role", SW_REPLY_ARRAY, 1, "ROLE");
    int replicas = -1;
    if (rep == NULL && !(r->err == SW_REDIS_EREFUSED && strcmp(r->code, "NOPERM") == 0))
        return -1;
    if (rep) {
        int is = sw_sentinel_role_is_master(rep);
        /* A master's ROLE: "master", its offset, and its connected
         * replicas. */
        if (is == 1 && (rep->elements < 3 || rep->element[2]->type != REDIS_REPLY_ARRAY))
            is = -1;
        if (is == 1)
            replicas = (int)rep->element[2]->elements;
        freeReplyObject(rep);
        if (is < 0) {
            sw_redis_fail_proto(r, "role", "not a ROLE reply");
            return -1;
        }
        if (is == 0) {
            sw_redis_set_err(r, SW_REDIS_EREFUSED, "role",
                             "%s:%d is a replica: writes would be refused",
                             r->host, r->port);
            snprintf(r->code, sizeof r->code, "READONLY");
            /* Another connection may reach the master (after a failover). */
            sw_redis_disconnect(r);
            return -1;
        }
    }
    if (r->min_replica_acks > 0) {
        /* Writes need WAIT, and enough replicas to answer it. WAIT 0 0
         * returns at once: it only asks whether we may. */
        rep = sw_redis_callf(r, "wait", SW_REPLY_INTEGER, 1, "WAIT 0 0");
        if (rep == NULL)
            return -1;
        freeReplyObject(rep);
        if (replicas >= 0 && replicas < r->min_replica_acks) {
            sw_redis_set_err(r, SW_REDIS_EREFUSED, "role",
                             "%d replica(s) connected to %s:%d, fewer than "
                             "[redis] min_replica_acks = %d: writes would answer 503",
                             replicas, r->host, r->port, r->min_replica_acks);
            snprintf(r->code, sizeof r->code, "NOREPLICAS");
            return -1;
        }
    }
    if (r->route == NULL)
        return 0;
    rep = sw_redis_callf(r, "cluster info", SW_REPLY_STRING, 1, "CLUSTER INFO");
    if (rep == NULL)
        return -1;
    int ok = strstr(rep->str, "cluster_state:ok") != NULL;
    freeReplyObject(rep);
    if (!ok) {
        sw_redis_set_err(r, SW_REDIS_EREFUSED, "cluster info", "%s:%d says cluster_state is not ok",
                         r->host, r->port);
        snprintf(r->code, sizeof r->code, "CLUSTERDOWN");
        return -1;
    }
    return 0;
}
