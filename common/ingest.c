#include "ingest.h"

#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "json_reader.h"
#include "record.h"

enum body_kind { BODY_JSON, BODY_NDJSON, BODY_OTHER };

/* Media type without parameters, case-insensitively. */
static enum body_kind body_kind(const char *ct)
{
    if (ct == NULL)
        return BODY_OTHER;
    size_t n = strcspn(ct, "; \t");
    if (n == 16 && strncasecmp(ct, "application/json", n) == 0)
        return BODY_JSON;
    if (n == 20 && strncasecmp(ct, "application/x-ndjson", n) == 0)
        return BODY_NDJSON;
    return BODY_OTHER;
}

/* One pass over the bytes before anything is converted: is the nesting
 * deeper than `max` anywhere, and how many records does the body hold
 * (elements of a top-level array, or non-empty lines)? Strings are
 * skipped; nothing else is validated here. */
static int prescan(const char *body, size_t len, int max, int ndjson, long *records)
{
    int depth = 0, in_str = 0, seen = 0, array = -1;
    long n = 0, line = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = body[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
            continue;
        }
        if (ndjson && ch == '\n') {
            n += line;
            line = 0;
            continue;
        }
        if (ch != ' ' && ch != '\t' && ch != '\r' && ch != '\n') {
            line = 1;
            if (array < 0)
                array = ch == '[';
            if (depth == 1 && ch != ',' && ch != ']')
                seen = 1;
        }
        if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max)
                return 1;
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        } else if (ch == ',' && depth == 1 && !ndjson) {
            n++;
        }
    }
    if (ndjson)
        *records = n + line;
    else if (array == 1)
        *records = seen ? n + 1 : 0;
    else
        *records = 1;
    return 0;
}

static int too_many(sw_problem *p, long max)
{
    return sw_problem_set(p, 413, "too-many-records", "Too many records",
                          "a request may carry at most %ld records "
                          "([server] max_records_per_request); split it", max);
}

static int no_records(sw_problem *p, const char *what)
{
    return sw_problem_set(p, 422, "validation", "Record does not fit the sink",
                          "the %s holds no records", what);
}

/* The records of a JSON body: one object, or an array of them. */
static long read_json(const sw_sink *sink, enum sw_record_how how, sw_json_reader *r,
                      const sw_ingest_limits *lim, msgpack_packer *pk, sw_record_work *w,
                      sw_problem *p)
{
    sw_json_token t;
    long n = 0;
    if (sw_json_next(r, &t) == SW_JSON_ERROR)
        return sw_record_malformed(r, 0, p);
    if (t.type != SW_JSON_ARRAY) {
        if (sw_record_read(sink, how, r, &t, 0, &lim->record, pk, w, p) != 0)
            return -1;
        n = 1;
    } else {
        for (;;) {
            if (sw_json_next(r, &t) == SW_JSON_ERROR)
                return sw_record_malformed(r, 0, p);
            if (t.type == SW_JSON_ARRAY_END)
                break;
            if (n == lim->max_records)
                return too_many(p, lim->max_records);
            if (sw_record_read(sink, how, r, &t, (size_t)n, &lim->record, pk, w, p) != 0)
                return -1;
            n++;
        }
        if (n == 0)
            return no_records(p, "array");
    }
    if (sw_json_next(r, &t) != SW_JSON_EOF)
        return sw_record_malformed(r, 0, p);
    return n;
}

/* The records of an NDJSON body: one object per non-empty line. */
static long read_ndjson(const sw_sink *sink, enum sw_record_how how, const char *body,
                        size_t len, int max_depth, const sw_ingest_limits *lim,
                        msgpack_packer *pk, sw_record_work *w, sw_problem *p)
{
    const char *line = body, *end = body + len;
    long lineno = 0, n = 0;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        const char *stop = nl ? nl : end;
        lineno++;
        size_t l = (size_t)(stop - line);
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
            l--;
        if (l > 0) {
            sw_json_reader r;
            sw_json_token t;
            int rc = -1;
            if (n == lim->max_records)
                return too_many(p, lim->max_records);
            sw_json_reader_init(&r, line, l, max_depth, lim->record.max_string_bytes,
                                &w->strings);
            if (sw_json_next(&r, &t) == SW_JSON_ERROR) {
                sw_record_malformed(&r, lineno, p);
            } else if (sw_record_read(sink, how, &r, &t, (size_t)n, &lim->record, pk, w, p) == 0) {
                if (sw_json_next(&r, &t) != SW_JSON_EOF)
                    sw_record_malformed(&r, lineno, p);
                else
                    rc = 0;
            } else if (p->status == 400 && strncmp(p->detail, "line ", 5) == 0) {
                /* A syntax error inside the record: name the body's line. */
                memset(p, 0, sizeof *p);
                sw_record_malformed(&r, lineno, p);
            }
            if (rc != 0)
                return -1;
            n++;
        }
        line = stop + 1;
    }
    if (n == 0)
        return no_records(p, "body");
    return n;
}

long sw_ingest_build(const sw_sink *sink, enum sw_op op, const char *content_type,
                     const char *body, size_t len, const sw_ingest_limits *lim,
                     const char *job_id, int64_t now_us, msgpack_sbuffer *sb, sw_record_work *w,
                     sw_problem *p)
{
    enum sw_record_how how = op == SW_OP_DELETE         ? SW_RECORD_KEY
                             : sink->mode == SW_MODE_MERGE ? SW_RECORD_MERGE
                                                         : SW_RECORD_FULL;
    msgpack_packer pk;
    long n = -1, records = 0;
    enum body_kind kind = body_kind(content_type);
    /* An array of records, a record, then the json/jsonb value's own. */
    int max_depth = lim->record.max_json_depth + 2;

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (kind == BODY_OTHER) {
        sw_problem_set(p, 415, "unsupported-media-type", "Unsupported content type",
                       "send Content-Type: application/json (an object or an array of "
                       "objects) or application/x-ndjson (one object per line), not \"%s\"",
                       content_type ? content_type : "(none)");
        return -1;
    }
    if (op == SW_OP_DELETE && sink->deletes <= 0) {
        sw_problem_set(p, 422, "deletes-not-allowed", "Sink does not take deletes",
                       "sink \"%s\" is in %s mode and takes no deletes; set deletes = on (and "
                       "a key) in [sink.%s] to allow them", sink->name,
                       sw_sink_mode_name(sink->mode), sink->name);
        return -1;
    }
    if (sw_envelope_begin(&pk, job_id, sink->name, sink->shape, (uint32_t)sink->ncolumns,
                          now_us, sw_sink_v3(sink), op) != 0) {
        sw_problem_set(p, 500, "internal", "Internal error", "out of memory");
        return -1;
    }
    if (prescan(body, len, max_depth, kind == BODY_NDJSON, &records) != 0) {
        sw_problem_set(p, 400, "nesting-too-deep", "JSON nested too deep",
                       "the body nests arrays and objects more than %d levels deep; a "
                       "json/jsonb field may nest at most %d ([server] max_json_depth)",
                       max_depth, lim->record.max_json_depth);
        return -1;
    }
    if (records > lim->max_records) {
        too_many(p, lim->max_records);
        return -1;
    }
    if (kind == BODY_JSON) {
        sw_json_reader r;
        sw_json_reader_init(&r, body, len, max_depth, lim->record.max_string_bytes, &w->strings);
        n = read_json(sink, how, &r, lim, &pk, w, p);
    } else {
        n = read_ndjson(sink, how, body, len, max_depth, lim, &pk, w, p);
    }
    if (n < 0)
        return -1;
    sw_envelope_finish(sb->data, (uint32_t)n);
    return n;
}
