#include "sentinel.h"

#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

int sw_sentinel_init(sw_sentinel *s, const char *list, const char *master_name,
                     const char *password)
{
    char why[200];
    memset(s, 0, sizeof *s);
    snprintf(s->master_name, sizeof s->master_name, "%s", master_name);
    snprintf(s->password, sizeof s->password, "%s", password ? password : "");
    s->n = sw_endpoints_parse(list, s->nodes, SW_ENDPOINTS_MAX, why, sizeof why);
    if (s->n < 0) {
        s->n = 0;
        snprintf(s->errstr, sizeof s->errstr, "sentinels: %s", why);
        return -1;
    }
    return 0;
}

int sw_sentinel_ask(const sw_sentinel *s, int k, int timeout_ms, sw_endpoint *master, char *why,
                    size_t len)
{
    const sw_endpoint *e = &s->nodes[k];
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisReply *rep = NULL;
    int rc = -1;
    redisContext *c = redisConnectWithTimeout(e->host, e->port, tv);
    if (c == NULL || c->err) {
        snprintf(why, len, "%s", c ? c->errstr : "out of memory");
        goto out;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        snprintf(why, len, "%s", c->errstr);
        goto out;
    }
    if (s->password[0] != '\0') {
        rep = redisCommand(c, "AUTH %s", s->password);
        if (rep == NULL || rep->type != REDIS_REPLY_STATUS) {
            snprintf(why, len, "AUTH: %s", rep && rep->type == REDIS_REPLY_ERROR ? rep->str
                                           : rep ? "unexpected reply" : c->errstr);
            goto out;
        }
        freeReplyObject(rep);
    }
    rep = redisCommand(c, "SENTINEL get-master-addr-by-name %s", s->master_name);
    if (rep == NULL) {
        snprintf(why, len, "%s", c->errstr);
        goto out;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        snprintf(why, len, "%s", rep->str);
        goto out;
    }
    if (rep->type == REDIS_REPLY_NIL) {
        snprintf(why, len, "does not know master '%s'", s->master_name);
        goto out;
    }
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
        rep->element[0]->type != REDIS_REPLY_STRING ||
        rep->element[1]->type != REDIS_REPLY_STRING ||
        rep->element[0]->len == 0 || rep->element[0]->len >= sizeof master->host) {
        snprintf(why, len, "answered something other than an address");
        goto out;
    }
    char *end;
    long port = strtol(rep->element[1]->str, &end, 10);
    if (*end != '\0' || port < 1 || port > 65535) {
        snprintf(why, len, "answered port '%s'", rep->element[1]->str);
        goto out;
    }
    memcpy(master->host, rep->element[0]->str, rep->element[0]->len);
    master->host[rep->element[0]->len] = '\0';
    master->port = (int)port;
    rc = 0;
out:
    if (rep)
        freeReplyObject(rep);
    if (c)
        redisFree(c);
    return rc;
}

int sw_sentinel_role_is_master(const void *reply)
{
    const redisReply *rep = reply;
    if (rep == NULL || rep->type != REDIS_REPLY_ARRAY || rep->elements < 1 ||
        (rep->element[0]->type != REDIS_REPLY_STRING &&
         rep->element[0]->type != REDIS_REPLY_STATUS))
        return -1;
    return strcmp(rep->element[0]->str, "master") == 0;
}
