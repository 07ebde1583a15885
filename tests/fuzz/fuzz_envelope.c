/* libFuzzer target: the envelope decoder the flusher runs on bytes from
 * Redis, which anyone with write access to Redis can shape. It must refuse
 * (never crash, never allocate from a count it has not checked against the
 * bytes present), and whatever it accepts must read back in full. */
#include <stdint.h>
#include <stdlib.h>

#include "copyrow.h"
#include "envelope.h"
#include "sink.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static sw_sink sink;
    static int ready;
    if (!ready) {
        char err[128];
        if (sw_sink_parse_columns(&sink, "a bigint, b text, c double precision, d boolean",
                                  err, sizeof err) != 0)
            abort();
        ready = 1;
    }
    sw_envelope env;
    char err[128];
    uint32_t count;
    int64_t when;
    (void)sw_envelope_peek(data, size, &count, &when);
    if (sw_envelope_decode(data, size, &env, err, sizeof err) != 0)
        return 0;
    if (env.ncolumns > SW_SINK_MAX_COLUMNS)
        abort();
    sw_value vals[SW_SINK_MAX_COLUMNS];
    const unsigned char *cur = env.records;
    sw_buf row = SW_BUF_INIT;
    for (uint32_t i = 0; i < env.nrecords; i++) {
        if (sw_envelope_next(&env, &cur, vals) != 0)
            abort();
        /* The flusher writes rows for its sink; a mismatch in column count
         * is caught before this, so only feed matching envelopes. */
        if (env.ncolumns == (uint32_t)sink.ncolumns)
            (void)sw_copyrow_append(&row, i, 0, &sink, vals);
    }
    if (cur != env.end)
        abort();
    sw_buf_free(&row);
    return 0;
}
