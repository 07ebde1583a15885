#include "status.h"

#include <string.h>

#include "clock.h"

int sw_status_json(sw_buf *out, const sw_status *st)
{
    char when[32];
    int rc = 0;
    sw_buf_reset(out);
    sw_clock_format(st->enqueued_us, when);
    rc |= sw_buf_printf(out, "{\"job_id\":\"%s\",\"status\":\"%s\",\"sink\":\"%s\","
                             "\"records\":%lld,\"enqueued_at\":\"%s\"",
                        st->job_id, st->status, st->sink, st->records, when);
    if (st->committed_us) {
        sw_clock_format(st->committed_us, when);
        rc |= sw_buf_printf(out, ",\"%s\":\"%s\"", st->error ? "failed_at" : "committed_at", when);
    }
    if (st->error) {
        rc |= sw_buf_puts(out, ",\"error\":");
        rc |= sw_buf_json_str(out, st->error, strlen(st->error));
    }
    rc |= sw_buf_puts(out, "}");
    return rc ? -1 : 0;
}

const char *sw_status_sink(const char *json, size_t len, size_t *n)
{
    static const char key[] = "\"sink\":\"";
    const size_t kn = sizeof key - 1;
    const char *p = NULL;
    for (size_t i = 0; p == NULL && i + kn <= len; i++) {
        if (memcmp(json + i, key, kn) == 0)
            p = json + i + kn;
    }
    if (p == NULL)
        return NULL;
    const char *q = memchr(p, '"', len - (size_t)(p - json));
    if (q == NULL)
        return NULL;
    *n = (size_t)(q - p);
    return p;
}
