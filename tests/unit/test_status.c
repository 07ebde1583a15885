/* The status JSON, byte for byte, for each state. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "status.h"

#define ID "0190a0e4-7b8c-7abc-8123-456789abcdef"

static void expect(const sw_status *st, const char *want)
{
    sw_buf b = SW_BUF_INIT;
    assert_int_equal(sw_status_json(&b, st), 0);
    assert_string_equal(b.data, want);
    sw_buf_free(&b);
}

static void test_states(void **state)
{
    (void)state;
    /* 2026-01-31T12:00:00.123Z and one second later */
    int64_t t = 1769860800123000LL;
    sw_status q = {ID, "queued", "orders", 2, t, 0, NULL};
    expect(&q, "{\"job_id\":\"" ID "\",\"status\":\"queued\",\"sink\":\"orders\",\"records\":2,"
               "\"enqueued_at\":\"2026-01-31T12:00:00.123Z\"}");
    sw_status c = {ID, "committed", "orders", 2, t, t + 1000000, NULL};
    expect(&c, "{\"job_id\":\"" ID "\",\"status\":\"committed\",\"sink\":\"orders\",\"records\":2,"
               "\"enqueued_at\":\"2026-01-31T12:00:00.123Z\","
               "\"committed_at\":\"2026-01-31T12:00:01.123Z\"}");
    sw_status f = {ID, "failed", "orders", 1, t, t, "SQLSTATE 23514: \"qty\" \\ bad\n"};
    expect(&f, "{\"job_id\":\"" ID "\",\"status\":\"failed\",\"sink\":\"orders\",\"records\":1,"
               "\"enqueued_at\":\"2026-01-31T12:00:00.123Z\","
               "\"failed_at\":\"2026-01-31T12:00:00.123Z\","
               "\"error\":\"SQLSTATE 23514: \\\"qty\\\" \\\\ bad\\n\"}");
}

/* The sink is read back from the JSON the flusher rewrote, even when the
 * error text quotes a sink of its own. */
static void test_sink_of(void **state)
{
    (void)state;
    sw_buf b = SW_BUF_INIT;
    size_t n = 0;
    sw_status st = {"0190a0e4-7b8c-7abc-8123-456789abcdef", "failed", "orders", 1, 1, 2,
                    "bad \"sink\":\"events\""};
    assert_int_equal(sw_status_json(&b, &st), 0);
    const char *s = sw_status_sink(b.data, b.len, &n);
    assert_non_null(s);
    assert_int_equal(n, 6);
    assert_memory_equal(s, "orders", 6);
    assert_null(sw_status_sink("{\"job_id\":\"x\"}", 14, &n));
    assert_null(sw_status_sink("{\"sink\":\"unterminated", 21, &n));
    sw_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_states),
                                       cmocka_unit_test(test_sink_of)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
