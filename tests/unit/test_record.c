/* JSON -> validated record -> envelope, per column type: what is accepted,
 * what it becomes, and the 422 for what is not. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "envelope.h"
#include "ingest.h"
#include "sink.h"

static sw_sink sink;

static int setup(void **state)
{
    (void)state;
    char err[256];
    memset(&sink, 0, sizeof sink);
    strcpy(sink.name, "t");
    strcpy(sink.table, "t");
    return sw_sink_parse_columns(&sink,
                                 "s smallint, i integer, b bigint, r real, d double precision,"
                                 "n numeric, f boolean, t text, v varchar(3), u uuid, dt date,"
                                 "tz timestamptz, ts timestamp, j json, jb jsonb, req text not null",
                                 err, sizeof err);
}

/* Small enough that the tests can cross it with short literals. */
static const sw_ingest_limits limits = {100, {64, 32}};

static int teardown(void **state)
{
    (void)state;
    sw_sink_clear(&sink);
    return 0;
}

/* Build one record from `json` (with "req" added); on success decode the
 * single value of column `col` into *out. Returns the HTTP status. */
static int one(const char *field_json, const char *col, sw_value *out, sw_problem *p)
{
    char body[512];
    snprintf(body, sizeof body, "{\"req\":\"x\"%s%s}", field_json[0] ? "," : "", field_json);
    msgpack_sbuffer sb;
    sw_record_work scratch = {0};
    msgpack_sbuffer_init(&sb);
    memset(p, 0, sizeof *p);
    long n = sw_ingest_build(&sink, SW_OP_WRITE, "application/json", body, strlen(body), &limits,
                             "0190a0e4-7b8c-7abc-8123-456789abcdef", 1234567, &sb, &scratch, p);
    int status = 0;
    static char keep[512];   /* decoded strings point into the envelope */
    if (n == 1) {
        sw_envelope env;
        char err[128];
        sw_value vals[SW_SINK_MAX_COLUMNS];
        const unsigned char *cur;
        assert_true(sb.size < sizeof keep);
        memcpy(keep, sb.data, sb.size);
        assert_int_equal(sw_envelope_decode(keep, sb.size, &env, err, sizeof err), 0);
        cur = env.records;
        assert_int_equal(sw_envelope_next(&env, &cur, vals), 0);
        *out = vals[sw_sink_column_index(&sink, col, strlen(col))];
        status = 202;
    } else {
        assert_int_equal(n, -1);
        status = p->status;
    }
    msgpack_sbuffer_destroy(&sb);
    sw_record_work_free(&scratch);
    return status;
}

#define ACCEPT(json, col, v) assert_int_equal(one(json, col, &v, &p), 202)
#define REJECT(json, col, needle) do { \
        assert_int_equal(one(json, col, &v, &p), 422); \
        if (strstr(p.detail, needle) == NULL) fail_msg("detail \"%s\" lacks \"%s\"", p.detail, needle); \
    } while (0)
#define STR_IS(v, want) do { assert_int_equal((v).kind, SW_V_STR); \
        assert_int_equal((v).n, strlen(want)); assert_memory_equal((v).s, want, strlen(want)); } while (0)

static void test_integers(void **state)
{
    (void)state;
    sw_value v;
    sw_problem p;
    ACCEPT("\"s\":-32768", "s", v);
    assert_int_equal(v.kind, SW_V_INT);
    assert_int_equal(v.i, -32768);
    REJECT("\"s\":32768", "s", "32768 is out of range for smallint");
    ACCEPT("\"i\":2147483647", "i", v);
    assert_int_equal(v.i, 2147483647);
    REJECT("\"i\":2147483648", "i", "out of range for integer");
    ACCEPT("\"b\":-9223372036854775808", "b", v);
    assert_true(v.i == INT64_MIN);
    REJECT("\"b\":1.0", "b", "field \"b\": expected an integer, got a fractional number");
    REJECT("\"b\":\"1\"", "b", "expected an integer, got a string");
    REJECT("\"b\":true", "b", "got a boolean");
}

static void test_floats_and_numeric(void **state)
{
    (void)state;
    sw_value v;
    sw_problem p;
    ACCEPT("\"d\":0.1", "d", v);
    assert_int_equal(v.kind, SW_V_FLOAT);
    assert_true(v.f == 0.1);
    ACCEPT("\"r\":3", "r", v);
    assert_true(v.f == 3.0);
    REJECT("\"r\":1e300", "r", "out of range for real");
    REJECT("\"r\":1e-50", "r", "out of range for real");
    ACCEPT("\"r\":1e-40", "r", v);   /* a denormal float is still a real */
    REJECT("\"d\":\"1.5\"", "d", "expected a number, got a string");
    ACCEPT("\"n\":\"123456789012345678901234567890.123456789\"", "n", v);
    STR_IS(v, "123456789012345678901234567890.123456789");
    ACCEPT("\"n\":12.5", "n", v);
    STR_IS(v, "12.5");
    ACCEPT("\"n\":0.1", "n", v);
    STR_IS(v, "0.1");
    ACCEPT("\"n\":-42", "n", v);
    STR_IS(v, "-42");
    ACCEPT("\"n\":\"-1.5e3\"", "n", v);
    STR_IS(v, "-1.5e3");
    /* JSON numbers reach numeric as written, digit for digit. */
    ACCEPT("\"n\":0.12345678901234567", "n", v);
    STR_IS(v, "0.12345678901234567");
    ACCEPT("\"n\":1.0000000000000001", "n", v);
    STR_IS(v, "1.0000000000000001");
    ACCEPT("\"n\":1e-400", "n", v);
    STR_IS(v, "1e-400");
    ACCEPT("\"n\":1.50", "n", v);
    STR_IS(v, "1.50");
    /* A double that underflows to 0 is refused, as PostgreSQL would. */
    REJECT("\"d\":1e-400", "d", "1e-400 is out of range for double precision");
    ACCEPT("\"d\":0.0e-400", "d", v);
    assert_true(v.f == 0.0);
    REJECT("\"n\":\"12,5\"", "n", "expected a number or a decimal string");
    REJECT("\"n\":\"NaN\"", "n", "decimal string");
    REJECT("\"n\":\"\"", "n", "decimal string");
}

static void test_text_bool_uuid(void **state)
{
    (void)state;
    sw_value v;
    sw_problem p;
    ACCEPT("\"f\":false", "f", v);
    assert_int_equal(v.kind, SW_V_BOOL);
    assert_int_equal(v.i, 0);
    REJECT("\"f\":0", "f", "expected true or false, got an integer");
    ACCEPT("\"t\":\"tab\\there \\u00e9\"", "t", v);
    STR_IS(v, "tab\there \xc3\xa9");
    REJECT("\"t\":5", "t", "expected a string, got an integer");
    ACCEPT("\"v\":\"\\u00e9\\u00e9\\u00e9\"", "v", v);   /* 3 characters, 6 bytes */
    REJECT("\"v\":\"abcd\"", "v", "string of 4 characters is longer than varchar(3)");
    ACCEPT("\"u\":\"0190A0E4-7B8C-7ABC-8123-456789ABCDEF\"", "u", v);
    STR_IS(v, "0190a0e4-7b8c-7abc-8123-456789abcdef");
    REJECT("\"u\":\"0190a0e47b8c7abc8123456789abcdef\"", "u", "expected a UUID");
}

static void test_dates_and_times(void **state)
{
    (void)state;
    sw_value v;
    sw_problem p;
    ACCEPT("\"dt\":\"2024-02-29\"", "dt", v);
    STR_IS(v, "2024-02-29");
    REJECT("\"dt\":\"2023-02-29\"", "dt", "YYYY-MM-DD");
    REJECT("\"dt\":\"2023-13-01\"", "dt", "YYYY-MM-DD");
    REJECT("\"dt\":\"2023-1-01\"", "dt", "YYYY-MM-DD");
    ACCEPT("\"tz\":\"2026-01-31T12:00:00Z\"", "tz", v);
    ACCEPT("\"tz\":\"2026-01-31T12:00:00.123456+05:30\"", "tz", v);
    STR_IS(v, "2026-01-31T12:00:00.123456+05:30");
    REJECT("\"tz\":\"2026-01-31T12:00:00\"", "tz", "with offset");
    /* PostgreSQL takes offsets up to 15:59; past them it would fail the
     * batch, so they are refused here. */
    ACCEPT("\"tz\":\"2026-01-31T12:00:00+15:59\"", "tz", v);
    ACCEPT("\"tz\":\"2026-01-31T12:00:00-15:59\"", "tz", v);
    REJECT("\"tz\":\"2026-01-31T12:00:00+16:00\"", "tz", "-15:59 to +15:59");
    REJECT("\"tz\":\"2026-01-31T12:00:00-23:00\"", "tz", "-15:59 to +15:59");
    REJECT("\"tz\":\"2026-01-31T24:00:00Z\"", "tz", "RFC 3339");
    REJECT("\"tz\":\"yesterday\"", "tz", "RFC 3339");
    ACCEPT("\"ts\":\"2026-01-31T12:00:00.5\"", "ts", v);
    REJECT("\"ts\":\"2026-01-31T12:00:00Z\"", "ts", "without offset");
}

static void test_json_and_null(void **state)
{
    (void)state;
    sw_value v;
    sw_problem p;
    ACCEPT("\"jb\":{\"a\":[1,2.5,0.1,null,true,\"x\\\"y\"]}", "jb", v);
    STR_IS(v, "{\"a\":[1,2.5,0.1,null,true,\"x\\\"y\"]}");
    /* Numbers in json values go as written: jsonb keeps them exactly. */
    ACCEPT("\"jb\":[0.1000000000000000000001,12345678901234567.89,-0,1E+2,1e-400]", "jb", v);
    STR_IS(v, "[0.1000000000000000000001,12345678901234567.89,-0,1E+2,1e-400]");
    ACCEPT("\"j\":7", "j", v);
    STR_IS(v, "7");
    ACCEPT("\"jb\":null", "jb", v);   /* JSON null in a nullable column is SQL NULL */
    assert_int_equal(v.kind, SW_V_NULL);
    char deep[300] = "\"jb\":";
    /* Far too deep is refused by the scan before parsing (400). */
    for (int i = 0; i < 40; i++) strcat(deep, "[");
    for (int i = 0; i < 40; i++) strcat(deep, "]");
    assert_int_equal(one(deep, "jb", &v, &p), 400);
    assert_non_null(strstr(p.detail, "more than 34 levels deep"));
    /* The limit counts containers: 32 nested arrays pass, 33 do not. */
    strcpy(deep, "\"jb\":");
    for (int i = 0; i < 32; i++) strcat(deep, "[");
    for (int i = 0; i < 32; i++) strcat(deep, "]");
    ACCEPT(deep, "jb", v);
    assert_int_equal(v.n, 64);
    strcpy(deep, "\"jb\":");
    for (int i = 0; i < 33; i++) strcat(deep, "[");
    for (int i = 0; i < 33; i++) strcat(deep, "]");
    REJECT(deep, "jb", "nested deeper than 32 levels");
    ACCEPT("", "t", v);   /* a missing nullable column is NULL */
    assert_int_equal(v.kind, SW_V_NULL);
    REJECT("\"zz\":1", "t", "unknown field \"zz\"");
}

static void test_string_limit(void **state)
{
    (void)state;
    sw_value v;
    sw_problem p;
    char f[128];
    /* 64 bytes (the test limit) pass; 65 do not, in text, in a numeric
     * string and in a jsonb value's serialisation. */
    snprintf(f, sizeof f, "\"t\":\"%064d\"", 7);
    ACCEPT(f, "t", v);
    assert_int_equal(v.n, 64);
    snprintf(f, sizeof f, "\"t\":\"%065d\"", 7);
    REJECT(f, "t", "field \"t\": 65 bytes is over the limit of 64 bytes per value");
    snprintf(f, sizeof f, "\"n\":\"%065d\"", 7);
    REJECT(f, "n", "65 bytes is over the limit");
    snprintf(f, sizeof f, "\"jb\":[\"%061d\"]", 7);
    REJECT(f, "jb", "field \"jb\": 65 bytes is over");
    /* A key longer than the reader keeps, inside a jsonb value: refused
     * by its length, read no further than what was kept (an ASan build
     * catches a read past the buffer). */
    static char big[8200];
    snprintf(big, sizeof big, "{\"req\":\"x\",\"jb\":{\"%08000d\":1}}", 7);
    msgpack_sbuffer sb;
    sw_record_work w = {0};
    msgpack_sbuffer_init(&sb);
    memset(&p, 0, sizeof p);
    assert_int_equal(sw_ingest_build(&sink, SW_OP_WRITE, "application/json", big, strlen(big),
                                     &limits,
                                     "0190a0e4-7b8c-7abc-8123-456789abcdef", 1, &sb, &w, &p),
                     -1);
    assert_int_equal(p.status, 422);
    assert_non_null(strstr(p.detail, "field \"jb\": 8006 bytes is over"));
    msgpack_sbuffer_destroy(&sb);
    sw_record_work_free(&w);
}

static void test_not_null(void **state)
{
    (void)state;
    sw_problem p;
    msgpack_sbuffer sb;
    sw_record_work scratch = {0};
    msgpack_sbuffer_init(&sb);
    const char *body = "[{\"req\":\"a\"},{\"req\":null}]";
    memset(&p, 0, sizeof p);
    assert_int_equal(sw_ingest_build(&sink, SW_OP_WRITE, "application/json", body, strlen(body),
                                     &limits,
                                     "0190a0e4-7b8c-7abc-8123-456789abcdef", 1, &sb, &scratch, &p),
                     -1);
    assert_int_equal(p.status, 422);
    assert_string_equal(p.detail, "record 1, field \"req\": null is not allowed (column is not null)");
    msgpack_sbuffer_clear(&sb);
    memset(&p, 0, sizeof p);
    body = "[{\"req\":\"a\"},{}]";
    assert_int_equal(sw_ingest_build(&sink, SW_OP_WRITE, "application/json", body, strlen(body),
                                     &limits,
                                     "0190a0e4-7b8c-7abc-8123-456789abcdef", 1, &sb, &scratch, &p),
                     -1);
    assert_string_equal(p.detail, "record 1: missing field \"req\" (column is not null)");
    msgpack_sbuffer_destroy(&sb);
    sw_record_work_free(&scratch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_integers),
        cmocka_unit_test(test_floats_and_numeric),
        cmocka_unit_test(test_text_bool_uuid),
        cmocka_unit_test(test_dates_and_times),
        cmocka_unit_test(test_json_and_null),
        cmocka_unit_test(test_string_limit),
        cmocka_unit_test(test_not_null),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
