/* latency.h: buckets and quantiles of the commit-latency histogram. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "latency.h"

static void test_buckets(void **state)
{
    (void)state;
    assert_int_equal(sw_lat_bucket(-3), 0);
    assert_int_equal(sw_lat_bucket(0), 0);
    assert_int_equal(sw_lat_bucket(5), 0);          /* le="0.005" holds 5 ms */
    assert_int_equal(sw_lat_bucket(6), 1);
    assert_int_equal(sw_lat_bucket(1000), 7);
    assert_int_equal(sw_lat_bucket(3600000), SW_LAT_NBUCKETS - 2);
    assert_int_equal(sw_lat_bucket(3600001), SW_LAT_NBUCKETS - 1);
    for (int i = 1; i < SW_LAT_NBUCKETS - 1; i++)
        assert_true(sw_lat_bounds_ms[i] > sw_lat_bounds_ms[i - 1]);
}

static void test_quantiles(void **state)
{
    (void)state;
    uint64_t c[SW_LAT_NBUCKETS] = {0};
    assert_true(sw_lat_quantile(c, 0.5) < 0);       /* none */
    /* 100 jobs in (100, 250] ms: linear within the bucket. */
    c[sw_lat_bucket(200)] = 100;
    assert_true(sw_lat_quantile(c, 0.5) > 174.9 && sw_lat_quantile(c, 0.5) < 175.1);
    assert_true(sw_lat_quantile(c, 1.0) > 249.9 && sw_lat_quantile(c, 1.0) < 250.1);
    /* 99 fast, 1 slow: the p99 is still fast, the max is slow. */
    uint64_t d[SW_LAT_NBUCKETS] = {0};
    d[0] = 99;
    d[sw_lat_bucket(40000)] = 1;
    assert_true(sw_lat_quantile(d, 0.99) <= 5.0);
    assert_true(sw_lat_quantile(d, 1.0) > 30000 && sw_lat_quantile(d, 1.0) <= 60000);
    /* Past the last finite bound: that bound. */
    uint64_t e[SW_LAT_NBUCKETS] = {0};
    e[SW_LAT_NBUCKETS - 1] = 3;
    assert_true(sw_lat_quantile(e, 0.5) == (double)sw_lat_bounds_ms[SW_LAT_NBUCKETS - 2]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets),
        cmocka_unit_test(test_quantiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
