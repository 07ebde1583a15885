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
