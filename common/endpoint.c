#include "endpoint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One "host:port" of `n` bytes at `s`. 0, or -1 with why. */
static int parse_one(const char *s, size_t n, sw_endpoint *e, char *why, size_t len)
{
    const char *colon;
    const char *host = s;
    size_t hlen;
    if (n > 0 && s[0] == '[') {
        const char *close = memchr(s, ']', n);
        if (close == NULL || close + 1 >= s + n || close[1] != ':') {
            snprintf(why, len, "'%.*s' is not [address]:port", (int)n, s);
            return -1;
        }
        host = s + 1;
        hlen = (size_t)(close - host);
        colon = close + 1;
    } else {
        colon = NULL;
        for (const char *p = s; p < s + n; p++) {
            if (*p == ':')
                colon = p;
        }
        if (colon == NULL || memchr(s, ':', n) != colon) {
            snprintf(why, len, "'%.*s' is not host:port", (int)n, s);
            return -1;
        }
        hlen = (size_t)(colon - s);
    }
    if (hlen == 0 || hlen >= sizeof e->host) {
        snprintf(why, len, "'%.*s': the host is empty or too long", (int)n, s);
        return -1;
    }
    long port = 0;
    const char *p = colon + 1;
    if (p == s + n) {
        snprintf(why, len, "'%.*s' has no port", (int)n, s);
        return -1;
    }
    for (; p < s + n; p++) {
        if (*p < '0' || *p > '9' || (port = port * 10 + (*p - '0')) > 65535) {
            snprintf(why, len, "'%.*s': the port must be 1..65535", (int)n, s);
            return -1;
        }
    }
    if (port == 0) {
        snprintf(why, len, "'%.*s': the port must be 1..65535", (int)n, s);
        return -1;
    }
    memcpy(e->host, host, hlen);
    e->host[hlen] = '\0';
    e->port = (int)port;
    return 0;
}

int sw_endpoints_parse(const char *list, sw_endpoint *out, int max, char *why, size_t len)
{
    int n = 0;
    const char *p = list;
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        size_t item = strcspn(p, ",");
        size_t trimmed = item;
        while (trimmed > 0 && (p[trimmed - 1] == ' ' || p[trimmed - 1] == '\t'))
            trimmed--;
        if (trimmed == 0) {
            snprintf(why, len, "an empty entry in '%s'", list);
            return -1;
        }
        if (n == max) {
            snprintf(why, len, "more than %d entries", max);
            return -1;
        }
        if (parse_one(p, trimmed, &out[n], why, len) != 0)
            return -1;
        n++;
        if (p[item] == '\0')
            return n;
        p += item + 1;
    }
}
