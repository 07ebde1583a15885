/* Request bodies: content types, JSON shapes, NDJSON lines, limits. */
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
    char err[128];
    memset(&sink, 0, sizeof sink);
    strcpy(sink.name, "orders");
    return sw_sink_parse_columns(&sink, "id bigint not null, name text", err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    sw_sink_clear(&sink);
    return 0;
}

static long build(const char *ctype, const char *body, long max, sw_problem *p,
                  uint32_t *count_in_header)
{
    msgpack_sbuffer sb;
    sw_record_work scratch = {0};
    msgpack_sbuffer_init(&sb);
    memset(p, 0, sizeof *p);
    sw_ingest_limits lim = {max, {65536, 32}};
    long n = sw_ingest_build(&sink, SW_OP_WRITE, ctype, body, strlen(body), &lim,
                             "0190a0e4-7b8c-7abc-8123-456789abcdef", 99, &sb, &scratch, p);
    if (n > 0) {
        sw_envelope env;
        char err[128];
        assert_int_equal(sw_envelope_decode(sb.data, sb.size, &env, err, sizeof err), 0);
        *count_in_header = env.nrecords;
        assert_int_equal(env.enqueued_us, 99);
        assert_string_equal(env.sink, "orders");
    }
    msgpack_sbuffer_destroy(&sb);
    sw_record_work_free(&scratch);
    return n;
}

static void test_shapes(void **state)
{
    (void)state;
    sw_problem p;
    uint32_t c = 0;
    assert_int_equal(build("application/json", "{\"id\":1}", 10, &p, &c), 1);
    assert_int_equal(c, 1);
    assert_int_equal(build("application/json; charset=utf-8", "[{\"id\":1},{\"id\":2}]", 10, &p, &c), 2);
    assert_int_equal(c, 2);
    assert_int_equal(build("Application/JSON", "[{\"id\":1}]", 10, &p, &c), 1);
    assert_int_equal(build("application/x-ndjson", "{\"id\":1}\r\n\n{\"id\":2}\n{\"id\":3}", 10, &p, &c), 3);
    assert_int_equal(c, 3);
}

static void test_errors(void **state)
{
    (void)state;
    sw_problem p;
    uint32_t c;
    assert_int_equal(build("text/plain", "{}", 10, &p, &c), -1);
    assert_int_equal(p.status, 415);
    assert_int_equal(build(NULL, "{}", 10, &p, &c), -1);
    assert_int_equal(p.status, 415);
    assert_int_equal(build("application/json", "{\"id\":1,\n \"name\": }", 10, &p, &c), -1);
    assert_int_equal(p.status, 400);
    assert_non_null(strstr(p.detail, "line 2, column"));
    assert_int_equal(build("application/json", "{\"id\":1,\"id\":2}", 10, &p, &c), -1);
    assert_int_equal(p.status, 400);
    assert_non_null(strstr(p.detail, "duplicate"));
    assert_int_equal(build("application/x-ndjson", "{\"id\":1}\n{\"id\":2\n", 10, &p, &c), -1);
    assert_int_equal(p.status, 400);
    assert_non_null(strstr(p.detail, "line 2,"));
    assert_int_equal(build("application/x-ndjson", "{\"id\":1}\n{\"id\":\"2\"}\n", 10, &p, &c), -1);
    assert_int_equal(p.status, 422);
    assert_non_null(strstr(p.detail, "record 1, field \"id\""));
    assert_int_equal(build("application/json", "[{\"id\":1}, 5]", 10, &p, &c), -1);
    assert_int_equal(p.status, 422);
    assert_string_equal(p.detail, "record 1: expected a JSON object, got an integer");
    assert_int_equal(build("application/json", "[{\"id\":1},{\"id\":2},{\"id\":3}]", 2, &p, &c), -1);
    assert_int_equal(p.status, 413);
    assert_int_equal(build("application/x-ndjson", "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n", 2, &p, &c), -1);
    assert_int_equal(p.status, 413);
    assert_int_equal(build("application/x-ndjson", "\n\n", 2, &p, &c), -1);
    assert_int_equal(p.status, 422);
    assert_int_equal(build("application/json", "\"x\"", 2, &p, &c), -1);
    assert_int_equal(p.status, 422);
}

/* Nesting is bounded before jansson recurses: 34 levels (an array, a
 * record, 32 in a field) pass the scan, 35 do not, brackets inside
 * strings (escaped quotes included) do not count, and a body of nothing
 * but '[' is refused without parsing. */
static void test_nesting_scan(void **state)
{
    (void)state;
    sw_problem p;
    uint32_t c;
    static char body[200100];
    strcpy(body, "[{\"id\":1,\"name\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[[\"}]");
    assert_int_equal(build("application/json", body, 10, &p, &c), 1);
    memset(body, '[', 200000);
    body[200000] = '\0';
    assert_int_equal(build("application/json", body, 10, &p, &c), -1);
    assert_int_equal(p.status, 400);
    assert_non_null(strstr(p.detail, "more than 34 levels deep"));
    /* 34 levels reach jansson, which then reports the bad shape (422),
     * not the depth. */
    memset(body, 0, sizeof body);
    memset(body, '[', 34);
    memset(body + 34, ']', 34);
    assert_int_equal(build("application/json", body, 10, &p, &c), -1);
    assert_int_equal(p.status, 422);
    memset(body, 0, sizeof body);
    memset(body, '[', 35);
    memset(body + 35, ']', 35);
    assert_int_equal(build("application/json", body, 10, &p, &c), -1);
    assert_int_equal(p.status, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_nesting_scan),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
