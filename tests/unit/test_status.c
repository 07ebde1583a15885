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

/* The compact form round-trips to the same JSON the full form gives. */
static void test_compact(void **state)
{
    (void)state;
    sw_buf c = SW_BUF_INIT, j = SW_BUF_INIT;
    /* The id's time: 0x0190a0e47b8c ms = 2024-07-01T..., its own enqueued_at. */
    int64_t enq = (int64_t)0x0190a0e47b8cLL * 1000;
    assert_int_equal(sw_status_compact(&c, 'q', 2, "orders", 0), 0);
    assert_string_equal(c.data, "q2 orders");
    assert_int_equal(sw_status_expand(&j, ID, c.data, c.len), 1);
    sw_buf want = SW_BUF_INIT;
    sw_status q = {ID, "queued", "orders", 2, enq, 0, NULL};
    assert_int_equal(sw_status_json(&want, &q), 0);
    assert_string_equal(j.data, want.data);
    assert_int_equal(sw_status_compact(&c, 'c', 7, "orders", 1500), 0);
    assert_string_equal(c.data, "c7 orders 1500");
    assert_int_equal(sw_status_expand(&j, ID, c.data, c.len), 1);
    sw_status k = {ID, "committed", "orders", 7, enq, enq + 1500000, NULL};
    assert_int_equal(sw_status_json(&want, &k), 0);
    assert_string_equal(j.data, want.data);
    /* "f" and anything malformed: not expanded. */
    const char *bad[] = {"f", "", "q", "q2", "q2 ", "qx orders", "c2 orders", "c2 orders x",
                         "q2 orders 5", "c2 orders 5 6", "x2 orders",
                         "q1234567890123456789 orders"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(sw_status_expand(&j, ID, bad[i], strlen(bad[i])), 0);
    sw_buf_free(&c);
    sw_buf_free(&j);
    sw_buf_free(&want);
}

/* The shift follows the rate: widest when idle, narrower as jobs come
 * faster, so a bucket holds about SW_STATUS_BUCKET_JOBS. */
static void test_shift(void **state)
{
    (void)state;
    int64_t t = 1769860800000LL;
    assert_int_equal(sw_status_shift(t), 15);
    /* 1,000 jobs in a second: 1 per ms, 32 per bucket of 2^5 ms. */
    for (int i = 0; i < 999; i++)
        (void)sw_status_shift(t + i);
    assert_int_equal(sw_status_shift(t + 1000), 5);
    /* 64,000 in the next: 64 per ms, one ms is enough. */
    for (int i = 0; i < 63999; i++)
        (void)sw_status_shift(t + 1000 + i / 64);
    assert_int_equal(sw_status_shift(t + 2000), 0);
    /* Two jobs in ten seconds: as wide as it goes. */
    (void)sw_status_shift(t + 5000);
    assert_int_equal(sw_status_shift(t + 12000), 15);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_states),
                                       cmocka_unit_test(test_sink_of),
                                       cmocka_unit_test(test_compact),
                                       cmocka_unit_test(test_shift)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
