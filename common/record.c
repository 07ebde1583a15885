#include "record.h"

#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "utf8.h"

#define UNFIT(p, ...) sw_problem_set(p, 422, "validation", "Record does not fit the sink", __VA_ARGS__)

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!is_digit(s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int days_in_month(int y, int m)
{
    static const int d[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
        return 29;
    return d[m - 1];
}

/* YYYY-MM-DD, a real calendar date. */
static int check_date(const char *s, size_t n)
{
    int y, m, d;
    if (n < 10 || s[4] != '-' || s[7] != '-' || digits(s, 4, &y) || digits(s + 5, 2, &m) ||
        digits(s + 8, 2, &d))
        return -1;
    if (y < 1 || m < 1 || m > 12 || d < 1 || d > days_in_month(y, m))
        return -1;
    return 0;
}

/* RFC 3339 date-time; `with_offset` says whether Z/±HH:MM is required
 * (timestamptz) or forbidden (timestamp, where PostgreSQL would silently
 * drop it). PostgreSQL takes offsets up to 15:59 either way. */
static int check_timestamp(const char *s, size_t n, int with_offset)
{
    int h, mi, se;
    if (check_date(s, n) != 0 || n < 19 || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') ||
        s[13] != ':' || s[16] != ':' || digits(s + 11, 2, &h) || digits(s + 14, 2, &mi) ||
        digits(s + 17, 2, &se) || h > 23 || mi > 59 || se > 60)
        return -1;
    size_t i = 19;
    if (i < n && s[i] == '.') {
        size_t start = ++i;
        while (i < n && is_digit(s[i]))
            i++;
        if (i == start || i - start > 9)
            return -1;
    }
    if (!with_offset)
        return i == n ? 0 : -1;
    if (i + 1 == n && (s[i] == 'Z' || s[i] == 'z'))
        return 0;
    int oh, om;
    if (i + 6 != n || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':' ||
        digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 15 || om > 59)
        return -1;
    return 0;
}

static int check_uuid(const char *s, size_t n)
{
    if (n != 36)
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (c != '-')
                return -1;
        } else if (!is_digit(c) && !((c | 0x20) >= 'a' && (c | 0x20) <= 'f')) {
            return -1;
        }
    }
    return 0;
}

/* A plain decimal: [+-]digits[.digits][e[+-]digits], bounded. */
static int check_decimal(const char *s, size_t n)
{
    size_t i = 0, d = 0;
    if (n == 0 || n > 1000)
        return -1;
    if (s[i] == '+' || s[i] == '-')
        i++;
    while (i < n && is_digit(s[i]))
        i++, d++;
    if (i < n && s[i] == '.') {
        i++;
        while (i < n && is_digit(s[i]))
            i++, d++;
    }
    if (d == 0)
        return -1;
    if (i < n && (s[i] == 'e' || s[i] == 'E')) {
        size_t e = 0;
        i++;
        if (i < n && (s[i] == '+' || s[i] == '-'))
            i++;
        while (i < n && is_digit(s[i]))
            i++, e++;
        if (e == 0 || e > 4)
            return -1;
    }
    return i == n ? 0 : -1;
}

static int too_long(sw_problem *p, size_t index, const sw_column *col, size_t n, size_t max)
{
    return UNFIT(p, "record %zu, field \"%s\": %zu bytes is over the limit of %zu bytes "
                 "per value ([server] max_string_bytes)", index, col->name, n, max);
}

static int oom(sw_problem *p)
{
    return sw_problem_set(p, 500, "internal", "Internal error", "out of memory");
}

int sw_record_malformed(const sw_json_reader *r, long line, sw_problem *p)
{
    long l, c;
    sw_json_error_pos(r, &l, &c);
    if (r->nesting)
        return sw_problem_set(p, 400, "nesting-too-deep", "JSON nested too deep",
                              "line %ld, column %ld: the body nests arrays and objects more "
                              "than %d levels deep ([server] max_json_depth)",
                              line > 0 ? line : l, c, r->max_depth);
    if (strcmp(r->error, "out of memory") == 0)
        return oom(p);
    return sw_problem_set(p, 400, "malformed-json", "Malformed JSON", "line %ld, column %ld: %s",
                          line > 0 ? line : l, c, r->error);
}

/* A key for a message: at most 64 bytes, cut on a character boundary. */
static int key_len(const char *k, size_t n)
{
    return (int)sw_utf8_cut(k, n > 64 ? 64 : n);
}

/* --- json/jsonb values, serialised as they are read ---------------------- */

/* Output that keeps at most `max` + 1 bytes and counts the rest. */
typedef struct sink_out {
    sw_buf *b;
    size_t total, max;
    int oom;
} sink_out;

static void emit(sink_out *o, const void *s, size_t n)
{
    size_t room = o->total <= o->max ? o->max + 1 - o->total : 0;
    if (room && sw_buf_append(o->b, s, n < room ? n : room) != 0)
        o->oom = 1;
    o->total += n;
}

static void emit_str(sink_out *o, const char *s, size_t n)
{
    size_t before = o->b->len;
    if (o->total <= o->max) {
        if (sw_buf_json_str(o->b, s, n) != 0)
            o->oom = 1;
        o->total += o->b->len - before;
        return;
    }
    /* Past the limit: only its length matters now. */
    sw_buf tmp = SW_BUF_INIT;
    if (sw_buf_json_str(&tmp, s, n) != 0)
        o->oom = 1;
    o->total += tmp.len;
    sw_buf_free(&tmp);
}

static _Thread_local const char *cmp_base;

static int key_cmp(const void *a, const void *b)
{
    const size_t *x = a, *y = b;
    if (x[1] != y[1])
        return x[1] < y[1] ? -1 : 1;
    return memcmp(cmp_base + x[0], cmp_base + y[0], x[1]);
}

/* Do the keys [from, w->nkeys) of one object, as serialised in `out`,
 * hold a repeat? Small objects compare pairwise; larger ones sort. */
static int has_repeat(sw_record_work *w, size_t from, const char *out)
{
    size_t n = w->nkeys - from;
    if (n < 2)
        return 0;
    size_t *k = w->keys + 2 * from;
    if (n < 16) {
        for (size_t i = 0; i < n; i++) {
            for (size_t j = i + 1; j < n; j++) {
                if (k[2 * i + 1] == k[2 * j + 1] &&
                    memcmp(out + k[2 * i], out + k[2 * j], k[2 * i + 1]) == 0)
                    return 1;
            }
        }
        return 0;
    }
    cmp_base = out;
    qsort(k, n, 2 * sizeof *k, key_cmp);
    for (size_t i = 1; i < n; i++) {
        if (key_cmp(k + 2 * (i - 1), k + 2 * i) == 0)
            return 1;
    }
    return 0;
}

static int push_key(sw_record_work *w, size_t off, size_t len)
{
    if (w->nkeys == w->capkeys) {
        size_t cap = w->capkeys ? 2 * w->capkeys : 64;
        size_t *k = realloc(w->keys, cap * 2 * sizeof *k);
        if (k == NULL)
            return -1;
        w->keys = k;
        w->capkeys = cap;
    }
    w->keys[2 * w->nkeys] = off;
    w->keys[2 * w->nkeys + 1] = len;
    w->nkeys++;
    return 0;
}

enum { DUMP_OK, DUMP_DEEP, DUMP_LONG, DUMP_REPEAT, DUMP_SYNTAX, DUMP_OOM };

/* Serialise the value that starts with `t` compactly into w->json
 * (numbers as written), reading the rest of it from `r`. Object
 * keys must not repeat; at most `max_depth` containers may nest; past
 * `max_len` bytes it only counts (*total). */
static int dump_value(sw_json_reader *r, sw_json_token t, sw_record_work *w, int max_depth,
                      size_t max_len, size_t *total)
{
    /* Per open container: where its keys start (objects) and whether an
     * element was written (for the comma). */
    size_t frames[SW_JSON_MAX_DEPTH + 1];
    unsigned char more[SW_JSON_MAX_DEPTH + 1];
    sink_out o = {&w->json, 0, max_len, 0};
    int depth = 0, after_key = 0, rc = DUMP_OK;
    sw_buf_reset(&w->json);
    w->nkeys = 0;
    for (;;) {
        int value = t.type != SW_JSON_KEY && t.type != SW_JSON_OBJECT_END &&
                    t.type != SW_JSON_ARRAY_END;
        if ((value || t.type == SW_JSON_KEY) && depth > 0 && !after_key && more[depth])
            emit(&o, ",", 1);
        if (depth > 0 && (value || t.type == SW_JSON_KEY))
            more[depth] = 1;
        after_key = 0;
        switch (t.type) {
        case SW_JSON_OBJECT:
        case SW_JSON_ARRAY:
            if (depth >= max_depth)
                return DUMP_DEEP;
            emit(&o, t.type == SW_JSON_OBJECT ? "{" : "[", 1);
            depth++;
            frames[depth] = w->nkeys;
            more[depth] = 0;
            break;
        case SW_JSON_OBJECT_END:
            /* Keys past the limit were not kept, so a repeat there goes
             * unseen; the value is refused as too long anyway. */
            if (o.total <= max_len && has_repeat(w, frames[depth], w->json.data))
                return DUMP_REPEAT;
            w->nkeys = frames[depth];
            /* fall through */
        case SW_JSON_ARRAY_END:
            emit(&o, t.type == SW_JSON_OBJECT_END ? "}" : "]", 1);
            depth--;
            break;
        case SW_JSON_KEY: {
            size_t off = w->json.len;
            if (t.truncated) {
                o.total += t.len + 2;   /* over any limit that kept it short */
            } else {
                emit_str(&o, t.str, t.len);
                if (o.total <= max_len && push_key(w, off + 1, w->json.len - off - 2) != 0)
                    return DUMP_OOM;
            }
            emit(&o, ":", 1);
            after_key = 1;
            break;
        }
        case SW_JSON_STRING:
            if (t.truncated)
                o.total += t.len + 2;   /* over any limit that kept it short */
            else
                emit_str(&o, t.str, t.len);
            break;
        case SW_JSON_INTEGER:
        case SW_JSON_REAL:
            /* As written: PostgreSQL keeps json numbers as text and jsonb
             * numbers as numeric, exactly; a double would round them. */
            emit(&o, t.str, t.len);
            break;
        case SW_JSON_TRUE: emit(&o, "true", 4); break;
        case SW_JSON_FALSE: emit(&o, "false", 5); break;
        case SW_JSON_NULL: emit(&o, "null", 4); break;
        default:
            return DUMP_SYNTAX;
        }
        if (o.oom)
            return DUMP_OOM;
        if (depth == 0)
            break;
        sw_json_next(r, &t);
    }
    *total = o.total;
    if (o.total > max_len)
        rc = DUMP_LONG;
    return rc;
}

/* --- one value, one record ---------------------------------------------- */

/* Does the mantissa of number text s[0..n) have a digit other than 0? */
static int nonzero_digits(const char *s, size_t n)
{
    for (size_t i = 0; i < n && s[i] != 'e' && s[i] != 'E'; i++) {
        if (s[i] >= '1' && s[i] <= '9')
            return 1;
    }
    return 0;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str_with_body(pk, s, n);
}

static int pack_value(const sw_column *col, sw_json_reader *r, const sw_json_token *t,
                      size_t index, const sw_record_limits *lim, msgpack_packer *pk,
                      sw_record_work *w, sw_problem *p)
{
    char buf[64];
    const char *s = t->type == SW_JSON_STRING ? t->str : NULL;
    size_t n = s ? t->len : 0;
    const char *kind = sw_json_kind(t->type);

    if (n > lim->max_string_bytes)
        return too_long(p, index, col, n, lim->max_string_bytes);

    if (t->type == SW_JSON_NULL) {
        if (col->not_null)
            return UNFIT(p, "record %zu, field \"%s\": null is not allowed (column is not null)",
                         index, col->name);
        return msgpack_pack_nil(pk);
    }
    switch (col->type) {
    case SW_COL_SMALLINT: case SW_COL_INTEGER: case SW_COL_BIGINT: {
        int64_t lo = col->type == SW_COL_SMALLINT ? -32768
                   : col->type == SW_COL_INTEGER ? INT32_MIN : INT64_MIN;
        int64_t hi = col->type == SW_COL_SMALLINT ? 32767
                   : col->type == SW_COL_INTEGER ? INT32_MAX : INT64_MAX;
        if (t->type != SW_JSON_INTEGER)
            return UNFIT(p, "record %zu, field \"%s\": expected an integer, got %s", index,
                         col->name, kind);
        if (t->integer < lo || t->integer > hi)
            return UNFIT(p, "record %zu, field \"%s\": %" PRId64 " is out of range for %s",
                         index, col->name, t->integer, sw_sink_type_sql(col, buf, sizeof buf));
        return msgpack_pack_int64(pk, t->integer);
    }
    case SW_COL_REAL: case SW_COL_DOUBLE: {
        if (t->type != SW_JSON_INTEGER && t->type != SW_JSON_REAL)
            return UNFIT(p, "record %zu, field \"%s\": expected a number, got %s", index,
                         col->name, kind);
        double d = t->type == SW_JSON_REAL ? t->real : (double)t->integer;
        /* PostgreSQL refuses a number that overflows, or that is not zero
         * but rounds to zero (in single precision for real); 1e-400 reads
         * as 0 here, and must not land as one. */
        if ((col->type == SW_COL_REAL && (fabs(d) > FLT_MAX || (d != 0 && (float)d == 0))) ||
            (d == 0 && nonzero_digits(t->str, t->len)))
            return UNFIT(p, "record %zu, field \"%s\": %.*s is out of range for %s", index,
                         col->name, (int)(t->len > 40 ? 40 : t->len), t->str,
                         col->type == SW_COL_REAL ? "real" : "double precision");
        return msgpack_pack_double(pk, d);
    }
    case SW_COL_NUMERIC:
        /* A JSON number goes as written: numeric is exact, and so is the
         * text (a double would round 1.0000000000000001 to 1). */
        if (t->type == SW_JSON_INTEGER || t->type == SW_JSON_REAL) {
            if (check_decimal(t->str, t->len) != 0)
                return UNFIT(p, "record %zu, field \"%s\": a number of more than 1000 "
                             "characters, or with an exponent of more than 4 digits, is "
                             "not taken for numeric", index, col->name);
            return pack_str(pk, t->str, t->len);
        }
        if (s && check_decimal(s, n) == 0)
            return pack_str(pk, s, n);
        return UNFIT(p, "record %zu, field \"%s\": expected a number or a decimal string "
                     "such as \"12.50\", got %s", index, col->name, kind);
    case SW_COL_BOOLEAN:
        if (t->type != SW_JSON_TRUE && t->type != SW_JSON_FALSE)
            return UNFIT(p, "record %zu, field \"%s\": expected true or false, got %s", index,
                         col->name, kind);
        return t->type == SW_JSON_TRUE ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case SW_COL_TEXT: case SW_COL_VARCHAR:
        if (s == NULL)
            return UNFIT(p, "record %zu, field \"%s\": expected a string, got %s", index,
                         col->name, kind);
        if (col->type == SW_COL_VARCHAR && sw_utf8_chars(s, n) > (size_t)col->maxlen)
            return UNFIT(p, "record %zu, field \"%s\": string of %zu characters is longer "
                         "than varchar(%d)", index, col->name, sw_utf8_chars(s, n), col->maxlen);
        return pack_str(pk, s, n);
    case SW_COL_UUID:
        if (s == NULL || check_uuid(s, n) != 0)
            return UNFIT(p, "record %zu, field \"%s\": expected a UUID string such as "
                         "\"0190a0e4-7b8c-7d1e-8f00-123456789abc\"", index, col->name);
        memcpy(buf, s, 36);
        for (int i = 0; i < 36; i++)
            buf[i] = (char)(buf[i] >= 'A' && buf[i] <= 'F' ? buf[i] | 0x20 : buf[i]);
        return pack_str(pk, buf, 36);
    case SW_COL_DATE:
        if (s == NULL || n != 10 || check_date(s, n) != 0)
            return UNFIT(p, "record %zu, field \"%s\": expected a date string YYYY-MM-DD",
                         index, col->name);
        return pack_str(pk, s, n);
    case SW_COL_TIMESTAMPTZ:
        if (s == NULL || check_timestamp(s, n, 1) != 0)
            return UNFIT(p, "record %zu, field \"%s\": expected an RFC 3339 timestamp with "
                         "offset (Z, or -15:59 to +15:59), e.g. \"2026-01-31T12:00:00Z\"",
                         index, col->name);
        return pack_str(pk, s, n);
    case SW_COL_TIMESTAMP:
        if (s == NULL || check_timestamp(s, n, 0) != 0)
            return UNFIT(p, "record %zu, field \"%s\": expected a timestamp without offset, "
                         "e.g. \"2026-01-31T12:00:00\"", index, col->name);
        return pack_str(pk, s, n);
    case SW_COL_JSON: case SW_COL_JSONB: {
        size_t total = 0;
        switch (dump_value(r, *t, w, lim->max_json_depth, lim->max_string_bytes, &total)) {
        case DUMP_OK:
            return pack_str(pk, w->json.data, w->json.len);
        case DUMP_DEEP:
            return UNFIT(p, "record %zu, field \"%s\": JSON nested deeper than %d levels "
                         "([server] max_json_depth)", index, col->name, lim->max_json_depth);
        case DUMP_LONG:
            return too_long(p, index, col, total, lim->max_string_bytes);
        case DUMP_REPEAT:
            return sw_problem_set(p, 400, "malformed-json", "Malformed JSON",
                                  "record %zu, field \"%s\": an object holds a duplicate key",
                                  index, col->name);
        case DUMP_SYNTAX:
            return sw_record_malformed(r, 0, p);
        default:
            return oom(p);
        }
    }
    }
    return -1;
}

int sw_record_read(const sw_sink *sink, enum sw_record_how how, sw_json_reader *r,
                   const sw_json_token *first, size_t index, const sw_record_limits *lim,
                   msgpack_packer *pk, sw_record_work *w, sw_problem *p)
{
    size_t off[SW_SINK_MAX_COLUMNS], len[SW_SINK_MAX_COLUMNS];
    unsigned char have[SW_SINK_MAX_COLUMNS] = {0};
    msgpack_packer vpk;
    sw_json_token t;

    if (first->type != SW_JSON_OBJECT)
        return UNFIT(p, "record %zu: expected a JSON object, got %s", index,
                     sw_json_kind(first->type));
    msgpack_sbuffer_clear(&w->values);
    msgpack_packer_init(&vpk, &w->values, msgpack_sbuffer_write);
    for (;;) {
        if (sw_json_next(r, &t) == SW_JSON_ERROR)
            return sw_record_malformed(r, 0, p);
        if (t.type == SW_JSON_OBJECT_END)
            break;
        int c = t.truncated ? -1 : sw_sink_column_index(sink, t.str, t.len);
        if (c < 0)
            return UNFIT(p, "record %zu: unknown field \"%.*s\" (sink \"%s\" has no such column)",
                         index, key_len(t.str, t.len), t.str, sink->name);
        if (have[c])
            return sw_problem_set(p, 400, "malformed-json", "Malformed JSON",
                                  "record %zu: duplicate key \"%s\"", index,
                                  sink->columns[c].name);
        if (how == SW_RECORD_KEY && !sink->columns[c].is_key)
            return UNFIT(p, "record %zu: field \"%s\" is not a key column (a delete names "
                         "only the key of sink \"%s\")", index, sink->columns[c].name,
                         sink->name);
        if (sw_json_next(r, &t) == SW_JSON_ERROR)
            return sw_record_malformed(r, 0, p);
        off[c] = w->values.size;
        if (pack_value(&sink->columns[c], r, &t, index, lim, &vpk, w, p) != 0)
            return p->status ? -1 : oom(p);
        len[c] = w->values.size - off[c];
        have[c] = 1;
    }
    if (msgpack_pack_array(pk, (size_t)sink->ncolumns) != 0)
        return oom(p);
    for (int c = 0; c < sink->ncolumns; c++) {
        const sw_column *col = &sink->columns[c];
        if (have[c]) {
            if (how == SW_RECORD_KEY && (unsigned char)w->values.data[off[c]] == 0xc0)
                return UNFIT(p, "record %zu: key field \"%s\" is null", index, col->name);
            if (pk->callback(pk->data, w->values.data + off[c], len[c]) != 0)
                return oom(p);
            continue;
        }
        if (how != SW_RECORD_FULL && col->is_key)
            return UNFIT(p, "record %zu: missing key field \"%s\"", index, col->name);
        if (how != SW_RECORD_FULL) {
            if (sw_envelope_pack_absent(pk) != 0)
                return oom(p);
            continue;
        }
        if (col->not_null)
            return UNFIT(p, "record %zu: missing field \"%s\" (column is not null)", index,
                         col->name);
        if (msgpack_pack_nil(pk) != 0)
            return oom(p);
    }
    return 0;
}

void sw_record_work_trim(sw_record_work *w, size_t keep)
{
    if (w->strings.cap > keep)
        sw_buf_free(&w->strings);
    if (w->json.cap > keep)
        sw_buf_free(&w->json);
    if (w->values.alloc > keep) {
        msgpack_sbuffer_destroy(&w->values);
        msgpack_sbuffer_init(&w->values);
    }
    if (w->capkeys * 2 * sizeof *w->keys > keep) {
        free(w->keys);
        w->keys = NULL;
        w->capkeys = w->nkeys = 0;
    }
}

void sw_record_work_free(sw_record_work *w)
{
    if (w == NULL)
        return;
    sw_buf_free(&w->strings);
    sw_buf_free(&w->json);
    msgpack_sbuffer_destroy(&w->values);
    free(w->keys);
    w->keys = NULL;
    w->capkeys = w->nkeys = 0;
}
