#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "jobid.h"

static void test_layout(void **state)
{
    (void)state;
    char id[SW_JOBID_LEN + 1];
    sw_jobid_make(id, 0x0190a0e47b8cull, 0x0abc, 0x0123456789abcdefull);
    /* 48-bit ms, version 7, counter, variant 10, random bits. */
    assert_string_equal(id, "0190a0e4-7b8c-7abc-8123-456789abcdef");
    assert_true(sw_jobid_valid(id, strlen(id)));
    assert_int_equal(sw_jobid_time_ms(id), 0x0190a0e47b8cull);
}

static void test_valid(void **state)
{
    (void)state;
    assert_false(sw_jobid_valid("0190a0e4-7b8c-7abc-8123-456789abcde", 35));
    assert_false(sw_jobid_valid("0190a0e4x7b8c-7abc-8123-456789abcdef", 36));
    assert_false(sw_jobid_valid("0190a0e4-7b8c-7abc-8123-456789abcdeg", 36));
    assert_true(sw_jobid_valid("0190A0E4-7B8C-7ABC-8123-456789ABCDEF", 36));
}

/* Ids from one thread sort in creation order, even many per millisecond. */
static void test_order_and_uniqueness(void **state)
{
    (void)state;
    enum { N = 20000 };
    static char ids[N][SW_JOBID_LEN + 1];
    for (int i = 0; i < N; i++)
        sw_jobid_new(ids[i]);
    for (int i = 1; i < N; i++) {
        if (strcmp(ids[i - 1], ids[i]) >= 0)
            fail_msg("id %d (%s) does not sort after %s", i, ids[i], ids[i - 1]);
        assert_int_equal(ids[i][14], '7');
        assert_true(strchr("89ab", ids[i][19]) != NULL);
    }
}

/* A shard rides in byte 9, apart from the shift and the timestamp. */
static void test_shard(void **state)
{
    (void)state;
    char id[SW_JOBID_LEN + 1];
    sw_jobid_make(id, 0x0190a0e47b8cULL, 0xabc, 0x123456789abcdef0ULL);
    sw_jobid_set_shift(id, 9);
    uint64_t ms = sw_jobid_time_ms(id);
    for (int k = 0; k < 256; k += 17) {
        sw_jobid_set_shard(id, k);
        assert_int_equal(sw_jobid_shard(id), k);
        assert_int_equal(sw_jobid_shift(id), 9);
        assert_true(sw_jobid_time_ms(id) == ms);
        assert_true(sw_jobid_valid(id, strlen(id)));
    }
    sw_jobid_set_shard(id, 63);
    assert_memory_equal(id + 19, "993f", 4);   /* variant+random, shift, shard */
    id[22] = 'x';
    assert_int_equal(sw_jobid_shard(id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shard),
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_order_and_uniqueness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
