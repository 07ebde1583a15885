#include "record.h"

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define UNFIT(p, ...) sw_problem_set(p, 422, "validation", "Record does not fit the sink", __VA_ARGS__)

int sw_record_format_double(double v, char out[32])
{
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(out, 32, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            return prec;
    }
    return 17;
}

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
 * drop it). */
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
        digits(s + i + 1, 2, &oh) || digits(s + i + 4, 2, &om) || oh > 23 || om > 59)
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

static size_t utf8_chars(const char *s, size_t n)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += ((unsigned char)s[i] & 0xc0) != 0x80;
    return c;
}

static const char *json_kind(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a fractional number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

/* Serialise a JSON value compactly, with reals in their shortest exact
 * form (jansson's own dump rounds them to 17 digits). */
static int dump_json(const json_t *v, sw_buf *out, int depth, int max_depth)
{
    char num[32];
    /* `depth` containers enclose v; v itself would be one more. */
    if ((json_is_object(v) || json_is_array(v)) && depth >= max_depth)
        return 1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        const char *k;
        json_t *e;
        int first = 1, rc;
        if (sw_buf_append(out, "{", 1) != 0)
            return -1;
        json_object_foreach((json_t *)v, k, e) {
            if ((!first && sw_buf_append(out, ",", 1) != 0) ||
                sw_buf_json_str(out, k, strlen(k)) != 0 || sw_buf_append(out, ":", 1) != 0)
                return -1;
            if ((rc = dump_json(e, out, depth + 1, max_depth)) != 0)
                return rc;
            first = 0;
        }
        return sw_buf_append(out, "}", 1);
    }
    case JSON_ARRAY: {
        size_t i;
        json_t *e;
        int rc;
        if (sw_buf_append(out, "[", 1) != 0)
            return -1;
        json_array_foreach((json_t *)v, i, e) {
            if (i > 0 && sw_buf_append(out, ",", 1) != 0)
                return -1;
            if ((rc = dump_json(e, out, depth + 1, max_depth)) != 0)
                return rc;
        }
        return sw_buf_append(out, "]", 1);
    }
    case JSON_STRING:
        return sw_buf_json_str(out, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        return sw_buf_printf(out, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        sw_record_format_double(json_real_value(v), num);
        return sw_buf_puts(out, num);
    case JSON_TRUE: return sw_buf_puts(out, "true");
    case JSON_FALSE: return sw_buf_puts(out, "false");
    case JSON_NULL: return sw_buf_puts(out, "null");
    }
    return -1;
}

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str_with_body(pk, s, n);
}

static int too_long(sw_problem *p, size_t index, const sw_column *col, size_t n, size_t max)
{
    return UNFIT(p, "record %zu, field \"%s\": %zu bytes is over the limit of %zu bytes "
                 "per value ([server] max_string_bytes)", index, col->name, n, max);
}

static int pack_value(const sw_column *col, const json_t *v, size_t index,
                      const sw_record_limits *lim, msgpack_packer *pk, sw_buf *scratch,
                      sw_problem *p)
{
    char buf[64];
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    size_t n = s ? json_string_length(v) : 0;

    if (n > lim->max_string_bytes)
        return too_long(p, index, col, n, lim->max_string_bytes);

    if (json_is_null(v)) {
        if (col->not_null)
            return UNFIT(p, "record %zu, field \"%s\": null is not allowed (column is not null)",
                         index, col->name);
        return msgpack_pack_nil(pk);
    }
    switch (col->type) {
    case SW_COL_SMALLINT: case SW_COL_INTEGER: case SW_COL_BIGINT: {
        json_int_t lo = col->type == SW_COL_SMALLINT ? -32768
                      : col->type == SW_COL_INTEGER ? INT32_MIN : INT64_MIN;
        json_int_t hi = col->type == SW_COL_SMALLINT ? 32767
                      : col->type == SW_COL_INTEGER ? INT32_MAX : INT64_MAX;
        if (!json_is_integer(v))
            return UNFIT(p, "record %zu, field \"%s\": expected an integer, got %s", index,
                         col->name, json_kind(v));
        json_int_t i = json_integer_value(v);
        if (i < lo || i > hi)
            return UNFIT(p, "record %zu, field \"%s\": %" JSON_INTEGER_FORMAT
                         " is out of range for %s", index, col->name, i,
                         sw_sink_type_sql(col, buf, sizeof buf));
        return msgpack_pack_int64(pk, i);
    }
    case SW_COL_REAL: case SW_COL_DOUBLE: {
        if (!json_is_number(v))
            return UNFIT(p, "record %zu, field \"%s\": expected a number, got %s", index,
                         col->name, json_kind(v));
        double d = json_number_value(v);
        /* PostgreSQL refuses a real that overflows, or that is not zero
         * but rounds to zero in single precision. */
        if (col->type == SW_COL_REAL && (fabs(d) > FLT_MAX || (d != 0 && (float)d == 0)))
            return UNFIT(p, "record %zu, field \"%s\": %g is out of range for real", index,
                         col->name, d);
        return msgpack_pack_double(pk, d);
    }
    case SW_COL_NUMERIC:
        if (json_is_integer(v)) {
            int len = snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
            return pack_str(pk, buf, (size_t)len);
        }
        if (json_is_real(v)) {
            if (sw_record_format_double(json_real_value(v), buf) > 15)
                return UNFIT(p, "record %zu, field \"%s\": a numeric with more than 15 "
                             "significant digits cannot be carried exactly as a JSON number; "
                             "send it as a string, e.g. \"%s\"", index, col->name, buf);
            return pack_str(pk, buf, strlen(buf));
        }
        if (s && check_decimal(s, n) == 0)
            return pack_str(pk, s, n);
        return UNFIT(p, "record %zu, field \"%s\": expected a number or a decimal string "
                     "such as \"12.50\", got %s", index, col->name, json_kind(v));
    case SW_COL_BOOLEAN:
        if (!json_is_boolean(v))
            return UNFIT(p, "record %zu, field \"%s\": expected true or false, got %s", index,
                         col->name, json_kind(v));
        return json_is_true(v) ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
    case SW_COL_TEXT: case SW_COL_VARCHAR:
        if (s == NULL)
            return UNFIT(p, "record %zu, field \"%s\": expected a string, got %s", index,
                         col->name, json_kind(v));
        if (col->type == SW_COL_VARCHAR && utf8_chars(s, n) > (size_t)col->maxlen)
            return UNFIT(p, "record %zu, field \"%s\": string of %zu characters is longer "
                         "than varchar(%d)", index, col->name, utf8_chars(s, n), col->maxlen);
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
                         "offset, e.g. \"2026-01-31T12:00:00Z\"", index, col->name);
        return pack_str(pk, s, n);
    case SW_COL_TIMESTAMP:
        if (s == NULL || check_timestamp(s, n, 0) != 0)
            return UNFIT(p, "record %zu, field \"%s\": expected a timestamp without offset, "
                         "e.g. \"2026-01-31T12:00:00\"", index, col->name);
        return pack_str(pk, s, n);
    case SW_COL_JSON: case SW_COL_JSONB: {
        sw_buf_reset(scratch);
        int rc = dump_json(v, scratch, 0, lim->max_json_depth);
        if (rc > 0)
            return UNFIT(p, "record %zu, field \"%s\": JSON nested deeper than %d levels "
                         "([server] max_json_depth)", index, col->name, lim->max_json_depth);
        if (rc < 0)
            return sw_problem_set(p, 500, "internal", "Internal error", "out of memory");
        if (scratch->len > lim->max_string_bytes)
            return too_long(p, index, col, scratch->len, lim->max_string_bytes);
        return pack_str(pk, scratch->data, scratch->len);
    }
    }
    return -1;
}

int sw_record_pack(const sw_sink *sink, const json_t *obj, size_t index,
                   const sw_record_limits *lim, msgpack_packer *pk, sw_buf *scratch,
                   sw_problem *p)
{
    const json_t *slot[SW_SINK_MAX_COLUMNS] = {0};
    const char *key;
    json_t *v;

    if (!json_is_object(obj))
        return UNFIT(p, "record %zu: expected a JSON object, got %s", index, json_kind(obj));
    json_object_foreach((json_t *)obj, key, v) {
        int c = sw_sink_column_index(sink, key, strlen(key));
        if (c < 0)
            return UNFIT(p, "record %zu: unknown field \"%s\" (sink \"%s\" has no such column)",
                         index, key, sink->name);
        slot[c] = v;
    }
    if (msgpack_pack_array(pk, (size_t)sink->ncolumns) != 0)
        return sw_problem_set(p, 500, "internal", "Internal error", "out of memory");
    for (int c = 0; c < sink->ncolumns; c++) {
        const sw_column *col = &sink->columns[c];
        if (slot[c] == NULL) {
            if (col->not_null)
                return UNFIT(p, "record %zu: missing field \"%s\" (column is not null)", index,
                             col->name);
            if (msgpack_pack_nil(pk) != 0)
                return sw_problem_set(p, 500, "internal", "Internal error", "out of memory");
            continue;
        }
        if (pack_value(col, slot[c], index, lim, pk, scratch, p) != 0)
            return p->status ? -1
                             : sw_problem_set(p, 500, "internal", "Internal error", "out of memory");
    }
    return 0;
}
