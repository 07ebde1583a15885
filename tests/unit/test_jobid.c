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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_layout),
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_order_and_uniqueness),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
