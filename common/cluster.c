#include "cluster.h"

#include <stdlib.h>
#include <string.h>

uint16_t sw_cluster_crc16(const void *p, size_t n)
{
    const unsigned char *b = p;
    uint16_t crc = 0;
    for (size_t i = 0; i < n; i++) {
        crc ^= (uint16_t)(b[i] << 8);
        for (int k = 0; k < 8; k++)
            crc = (uint16_t)(crc & 0x8000 ? (crc << 1) ^ 0x1021 : crc << 1);
    }
    return crc;
}

/* The hash tag's offset and length in key, or 0 when it has none. */
static size_t tag(const char *key, size_t n, size_t *off)
{
    const char *open = memchr(key, '{', n);
    if (open == NULL)
        return 0;
    size_t start = (size_t)(open - key) + 1;
    const char *close = memchr(key + start, '}', n - start);
    if (close == NULL || close == key + start)
        return 0;
    *off = start;
    return (size_t)(close - (key + start));
}

int sw_cluster_slot(const char *key, size_t n)
{
    size_t off = 0, len = tag(key, n, &off);
    if (len == 0)
        return sw_cluster_crc16(key, n) & (SW_CLUSTER_SLOTS - 1);
    return sw_cluster_crc16(key + off, len) & (SW_CLUSTER_SLOTS - 1);
}

int sw_cluster_has_tag(const char *s)
{
    size_t off;
    return tag(s, strlen(s), &off) > 0;
}

enum sw_redirect sw_cluster_redirect(const char *msg, int *slot, sw_endpoint *to)
{
    enum sw_redirect kind;
    const char *p;
    if (strncmp(msg, "MOVED ", 6) == 0) {
        kind = SW_REDIRECT_MOVED;
        p = msg + 6;
    } else if (strncmp(msg, "ASK ", 4) == 0) {
        kind = SW_REDIRECT_ASK;
        p = msg + 4;
    } else {
        return SW_REDIRECT_NONE;
    }
    char *end;
    long s = strtol(p, &end, 10);
    if (end == p || *end != ' ' || s < 0 || s >= SW_CLUSTER_SLOTS)
        return SW_REDIRECT_NONE;
    const char *addr = end + 1;
    size_t n = strcspn(addr, " \r\n");
    /* host:port, the host possibly an IPv6 address: the port follows the
     * last colon. */
    const char *colon = NULL;
    for (const char *q = addr; q < addr + n; q++) {
        if (*q == ':')
            colon = q;
    }
    /* An empty host (":6380", cluster-preferred-endpoint-type
     * unknown-endpoint) means the node that answered; the caller knows it. */
    if (colon == NULL || (size_t)(colon - addr) >= sizeof to->host)
        return SW_REDIRECT_NONE;
    long port = 0;
    const char *q = colon + 1;
    if (q == addr + n)
        return SW_REDIRECT_NONE;
    for (; q < addr + n; q++) {
        if (*q < '0' || *q > '9' || (port = port * 10 + (*q - '0')) > 65535)
            return SW_REDIRECT_NONE;
    }
    if (port == 0)
        return SW_REDIRECT_NONE;
    memcpy(to->host, addr, (size_t)(colon - addr));
    to->host[colon - addr] = '\0';
    to->port = (int)port;
    *slot = (int)s;
    return kind;
}
