#include "pause.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

static const char *key(const sw_redis *r, enum sw_pause_what what)
{
    return what == SW_PAUSE_FLUSH ? r->keys.flush_paused : r->keys.paused;
}

int sw_pause_set(sw_redis *r, enum sw_pause_what what, const char *sink, const char *note)
{
    char since[32];
    sw_clock_format(sw_clock_now_us(), since);
    json_t *o = json_pack("{s:s,s:s}", "since", since, "note", note);
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    if (text == NULL) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "pause: out of memory, or a note not UTF-8");
        return -1;
    }
    void *rep = sw_redis_callf(r, "pause", SW_REPLY_INTEGER, 0, "HSET %s %s %s",
                               key(r, what), sink, text);
    free(text);
    if (rep == NULL)
        return -1;
    sw_redis_reply_free(rep);
    return 0;
}

int sw_pause_clear(sw_redis *r, enum sw_pause_what what, const char *sink)
{
    void *rep = sw_redis_callf(r, "resume", SW_REPLY_INTEGER, 0, "HDEL %s %s", key(r, what),
                               sink);
    if (rep == NULL)
        return -1;
    int was = sw_redis_reply_int(rep) > 0;
    sw_redis_reply_free(rep);
    return was;
}

int sw_pause_flags(sw_redis *r, enum sw_pause_what what, const sw_config *cfg,
                   unsigned char *paused)
{
    void *rep = sw_redis_callf(r, "paused sinks", SW_REPLY_ARRAY, 1, "HKEYS %s",
                               key(r, what));
    if (rep == NULL)
        return -1;
    if (sw_redis_check_elements(r, rep, SW_REPLY_STRING, "paused sinks") != 0) {
        sw_redis_reply_free(rep);
        return -1;
    }
    memset(paused, 0, (size_t)cfg->nsinks);
    for (size_t i = 0; i < sw_redis_reply_len(rep); i++) {
        size_t len;
        const char *name = sw_redis_reply_item(rep, i, &len);
        const sw_sink *s = sw_config_sink(cfg, name, len);
        if (s)
            paused[s - cfg->sinks] = 1;
    }
    sw_redis_reply_free(rep);
    return 0;
}

int sw_pause_get(sw_redis *r, enum sw_pause_what what, const char *sink, sw_buf *out)
{
    void *rep = sw_redis_callf(r, "pause", SW_REPLY_STRING_OR_NIL, 1, "HGET %s %s",
                               key(r, what), sink);
    if (rep == NULL)
        return -1;
    size_t len = 0;
    const char *s = sw_redis_reply_str(rep, &len);
    int rc = s ? 1 : 0;
    sw_buf_reset(out);
    if (s && sw_buf_append(out, s, len) != 0) {
        r->err = SW_REDIS_ENOMEM;
        snprintf(r->errstr, sizeof r->errstr, "pause: out of memory");
        rc = -1;
    }
    sw_redis_reply_free(rep);
    return rc;
}
