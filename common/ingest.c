#include "ingest.h"

#include <jansson.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
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

/* Deepest nesting of arrays and objects in `body`, stopping as soon as it
 * passes `max`. jansson parses by recursion, and a body of nothing but
 * '[' would overflow a worker thread's stack long before its own limit
 * of 2048 levels, so we look before it does. Strings are skipped; the
 * scan does not validate anything else. */
static int nesting_over(const char *body, size_t len, int max)
{
    int depth = 0, in_str = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = body[i];
        if (in_str) {
            if (ch == '\\')
                i++;
            else if (ch == '"')
                in_str = 0;
        } else if (ch == '"') {
            in_str = 1;
        } else if (ch == '[' || ch == '{') {
            if (++depth > max)
                return 1;
        } else if ((ch == ']' || ch == '}') && depth > 0) {
            depth--;
        }
    }
    return 0;
}

static int malformed(sw_problem *p, const json_error_t *e, long line)
{
    return sw_problem_set(p, 400, "malformed-json", "Malformed JSON",
                          "line %ld, column %d: %s", line > 0 ? line : e->line, e->column,
                          e->text);
}

static int too_many(sw_problem *p, long max)
{
    return sw_problem_set(p, 413, "too-many-records", "Too many records",
                          "a request may carry at most %ld records "
                          "([server] max_records_per_request); split it", max);
}

long sw_ingest_build(const sw_sink *sink, const char *content_type, const char *body,
                     size_t len, const sw_ingest_limits *lim, const char *job_id, int64_t now_us,
                     msgpack_sbuffer *sb, sw_buf *scratch, sw_problem *p)
{
    msgpack_packer pk;
    json_error_t jerr;
    json_t *doc = NULL;
    long n = 0;
    long max_records = lim->max_records;
    enum body_kind kind = body_kind(content_type);

    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    if (kind == BODY_OTHER) {
        sw_problem_set(p, 415, "unsupported-media-type", "Unsupported content type",
                       "send Content-Type: application/json (an object or an array of "
                       "objects) or application/x-ndjson (one object per line), not \"%s\"",
                       content_type ? content_type : "(none)");
        goto fail;
    }
    if (sw_envelope_begin(&pk, job_id, sink->name, sink->shape, (uint32_t)sink->ncolumns, now_us) != 0)
        goto oom;
    /* An array of records, a record, then the json/jsonb value's own. */
    if (nesting_over(body, len, lim->record.max_json_depth + 2)) {
        sw_problem_set(p, 400, "nesting-too-deep", "JSON nested too deep",
                       "the body nests arrays and objects more than %d levels deep; a "
                       "json/jsonb field may nest at most %d ([server] max_json_depth)",
                       lim->record.max_json_depth + 2, lim->record.max_json_depth);
        goto fail;
    }

    if (kind == BODY_JSON) {
        doc = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
        if (doc == NULL) {
            malformed(p, &jerr, 0);
            goto fail;
        }
        if (json_is_array(doc)) {
            size_t i;
            json_t *rec;
            if (json_array_size(doc) == 0) {
                sw_problem_set(p, 422, "validation", "Record does not fit the sink",
                               "the array holds no records");
                goto fail;
            }
            if (json_array_size(doc) > (size_t)max_records) {
                too_many(p, max_records);
                goto fail;
            }
            json_array_foreach(doc, i, rec) {
                if (sw_record_pack(sink, rec, i, &lim->record, &pk, scratch, p) != 0)
                    goto fail;
            }
            n = (long)json_array_size(doc);
        } else {
            if (sw_record_pack(sink, doc, 0, &lim->record, &pk, scratch, p) != 0)
                goto fail;
            n = 1;
        }
    } else {
        const char *line = body, *end = body + len;
        long lineno = 0;
        while (line < end) {
            const char *nl = memchr(line, '\n', (size_t)(end - line));
            const char *stop = nl ? nl : end;
            lineno++;
            size_t l = (size_t)(stop - line);
            while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
                l--;
            if (l > 0) {
                if (n == max_records) {
                    too_many(p, max_records);
                    goto fail;
                }
                doc = json_loadb(line, l, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
                if (doc == NULL) {
                    malformed(p, &jerr, lineno);
                    goto fail;
                }
                if (sw_record_pack(sink, doc, (size_t)n, &lim->record, &pk, scratch, p) != 0)
                    goto fail;
                json_decref(doc);
                doc = NULL;
                n++;
            }
            line = stop + 1;
        }
        if (n == 0) {
            sw_problem_set(p, 422, "validation", "Record does not fit the sink",
                           "the body holds no records");
            goto fail;
        }
    }
    json_decref(doc);
    sw_envelope_finish(sb->data, (uint32_t)n);
    return n;
oom:
    sw_problem_set(p, 500, "internal", "Internal error", "out of memory");
fail:
    json_decref(doc);
    return -1;
}
