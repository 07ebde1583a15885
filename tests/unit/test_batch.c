/* Adding envelopes to a batch: the checks made before PostgreSQL. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "batch.h"
#include "jobid.h"

static const char ini[] = "[sink.t]\ntable = t\ncolumns = id bigint not null\n";

/* Envelopes that cannot be decoded fail before PostgreSQL, each with an id
 * of its own, so their dead-letter entries cannot overwrite each other. */
static void test_corrupt_envelopes_fail_with_distinct_ids(void **state)
{
    (void)state;
    sw_config cfg;
    assert_int_equal(sw_config_load_string(&cfg, "t.ini", ini), 0);
    sw_batch *b = sw_batch_new(&cfg, "f1");
    assert_non_null(b);
    static const char junk1[] = "not an envelope", junk2[] = "\x01\xce\0\0\0\x05";
    assert_int_equal(sw_batch_add(b, junk1, sizeof junk1 - 1), 0);
    assert_int_equal(sw_batch_add(b, junk2, sizeof junk2 - 1), 0);
    assert_int_equal(b->njobs, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(b->jobs[i].state, SW_JOB_FAILED);
        assert_non_null(strstr(b->jobs[i].error, "corrupt envelope: "));
        assert_true(sw_jobid_valid(b->jobs[i].env.job_id, strlen(b->jobs[i].env.job_id)));
    }
    assert_string_not_equal(b->jobs[0].env.job_id, b->jobs[1].env.job_id);
    sw_batch_free(b);
    sw_config_free(&cfg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corrupt_envelopes_fail_with_distinct_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
