/* libFuzzer target: the request path, from raw body bytes to envelope or
 * error, exactly as the server runs it, then the envelope back through the
 * flusher's decoder and COPY encoder. Input: one byte choosing the content
 * type and sink, then the body. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "copyrow.h"
#include "envelope.h"
#include "ingest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static sw_config cfg;

static const char config_text[] =
    "[sink.all]\n"
    "table = public.all_types\n"
    "columns = a smallint, b integer not null, c bigint, d real, e double precision,\n"
    "  f numeric, g boolean, h text, i varchar(5), j uuid, k date, l timestamptz,\n"
    "  m timestamp, n json, o jsonb\n"
    "[sink.kv]\n"
    "table = kv\n"
    "mode = upsert\n"
    "key = k\n"
    "columns = k text not null, v jsonb\n"
    "[sink.mg]\n"
    "table = mg\n"
    "mode = merge\n"
    "key = k\n"
    "version_column = ver\n"
    "columns = k bigint not null, a text, b boolean not null\n";

static void load_once(void)
{
    static int loaded;
    if (!loaded) {
        if (sw_config_load_string(&cfg, "fuzz.ini", config_text) != 0)
            abort();
        loaded = 1;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const types[] = {"application/json", "application/x-ndjson",
                                        "application/json; charset=utf-8", "text/plain"};
    load_once();
    if (size < 1)
        return 0;
    const char *ctype = types[data[0] & 3];
    /* Bits 2-3: the sink (all, kv, mg, mg); bit 4: a delete. */
    const sw_sink *sink = &cfg.sinks[((data[0] >> 2) & 3) > 2 ? 2 : (data[0] >> 2) & 3];
    enum sw_op op = (data[0] >> 4) & 1 ? SW_OP_DELETE : SW_OP_WRITE;
    /* The server hands over a NUL-terminated copy. */
    char *body = malloc(size);
    memcpy(body, data + 1, size - 1);
    body[size - 1] = '\0';

    msgpack_sbuffer sb;
    sw_record_work scratch = {0};
    sw_buf row = SW_BUF_INIT;
    sw_problem p = {0};
    sw_ingest_limits lim = {100, {4096, 8}};
    msgpack_sbuffer_init(&sb);
    long n = sw_ingest_build(sink, op, ctype, body, size - 1, &lim,
                             "0190a0e4-7b8c-7abc-8123-456789abcdef", 1, &sb, &scratch, &p);
    if (n < 0) {
        if (p.status < 400 || p.status > 599)
            abort();
    } else {
        sw_envelope env;
        char err[128];
        sw_value vals[SW_SINK_MAX_COLUMNS];
        const unsigned char *cur;
        if (sw_envelope_decode(sb.data, sb.size, &env, err, sizeof err) != 0 ||
            env.nrecords != (uint32_t)n || (int)env.ncolumns != sink->ncolumns ||
            env.op != op || (op == SW_OP_DELETE && sink->deletes <= 0))
            abort();
        cur = env.records;
        for (long i = 0; i < n; i++) {
            if (sw_envelope_next(&env, &cur, vals) != 0)
                abort();
            /* Every accepted value must suit its column. */
            if (sw_copyrow_append(&row, i, 0, sink, vals) != 0 ||
                sw_copyrow_append_keyed(&row, i, 0, 1, op == SW_OP_DELETE, sink, vals) != 0)
                abort();
            /* A delete names exactly the key; a write to a sink that is not
             * merge names every column. */
            for (int c = 0; c < sink->ncolumns; c++) {
                int absent = vals[c].kind == SW_V_ABSENT;
                if ((op == SW_OP_DELETE && absent != !sink->columns[c].is_key) ||
                    (op == SW_OP_WRITE && sink->mode != SW_MODE_MERGE && absent))
                    abort();
            }
        }
        if (sw_envelope_next(&env, &cur, vals) == 0)
            abort();
    }
    msgpack_sbuffer_destroy(&sb);
    sw_record_work_free(&scratch);
    sw_buf_free(&row);
    free(body);
    return 0;
}
