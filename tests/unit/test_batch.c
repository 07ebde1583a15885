/* Adding envelopes to a batch: the checks made before PostgreSQL, and
 * jobs written under another definition of their sink. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "batch.h"
#include "ingest.h"
#include "jobid.h"
#include "shape.h"

static const char ini[] = "[sink.t]\ntable = t\ncolumns = id bigint not null\n";

/* Envelopes that cannot be decoded fail before PostgreSQL, each with an id
 * of its own, so their dead-letter entries cannot overwrite each other. */
static void test_corrupt_envelopes_fail_with_distinct_ids(void **state)
{
    (void)state;
    sw_config cfg;
    assert_int_equal(sw_config_load_string(&cfg, "t.ini", ini), 0);
    sw_batch *b = sw_batch_new(&cfg, NULL, NULL);
    assert_non_null(b);
    static const char junk1[] = "not an envelope", junk2[] = "\x01\xce\0\0\0\x05";
    assert_int_equal(sw_batch_add(b, junk1, sizeof junk1 - 1, 0, 1), 0);
    assert_int_equal(sw_batch_add(b, junk2, sizeof junk2 - 1, 0, 2), 0);
    assert_int_equal(b->njobs, 2);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(b->jobs[i].state, SW_JOB_FAILED);
        assert_true(b->jobs[i].prefailed);
        assert_non_null(strstr(b->jobs[i].error, "corrupt envelope: "));
        assert_true(sw_jobid_valid(b->jobs[i].env.job_id, strlen(b->jobs[i].env.job_id)));
        /* No id where the scripts look for one: finish matches on "". */
        assert_int_equal(b->jobs[i].list_id_len, 0);
    }
    assert_string_not_equal(b->jobs[0].env.job_id, b->jobs[1].env.job_id);
    assert_true(b->first_claim_ms == 1);
    sw_batch_free(b);
    sw_config_free(&cfg);
}

/* The shape registry, as a lookup: one old definition of sink "t". */
static const char *registered;
static uint64_t registered_fp;
static int lookups;

static int lookup(void *ctx, uint64_t fp, sw_buf *out)
{
    (void)ctx;
    lookups++;
    if (registered == NULL || fp != registered_fp)
        return 0;
    sw_buf_reset(out);
    return sw_buf_puts(out, registered) == 0 ? 1 : -1;
}

/* A job queued under `old_ini`'s sink t, from a JSON body. */
static long make_job(const char *old_ini, const char *body, msgpack_sbuffer *sb)
{
    sw_config old;
    sw_problem p = {0};
    sw_record_work scratch = {0};
    char id[SW_JOBID_LEN + 1];
    assert_int_equal(sw_config_load_string(&old, "old.ini", old_ini), 0);
    sw_jobid_new(id);
    sw_ingest_limits lim = {100, {1000, 8}};
    long n = sw_ingest_build(&old.sinks[0], SW_OP_WRITE, "application/json", body, strlen(body),
                             &lim, id, 1,
                             sb, &scratch, &p);
    sw_buf desc = SW_BUF_INIT;
    assert_int_equal(sw_shape_describe(&old.sinks[0], &desc), 0);
    static char keep[512];
    snprintf(keep, sizeof keep, "%s", desc.data);
    registered = keep;
    registered_fp = old.sinks[0].shape;
    sw_buf_free(&desc);
    sw_record_work_free(&scratch);
    sw_config_free(&old);
    return n;
}

static const char now_ini[] =
    "[sink.t]\ntable = t\ncolumns = b text, a bigint not null, c integer\n";

/* Columns reordered (and one added) while the job waited: its values go
 * to the columns of the same names. */
/* PostgreSQL's DETAIL goes into the job's error (its status) but past
 * the part logs may show: it quotes rows. */
static void test_pg_error_keeps_detail_out_of_logs(void **state)
{
    (void)state;
    sw_config cfg;
    assert_int_equal(sw_config_load_string(&cfg, "t.ini", ini), 0);
    sw_batch *b = sw_batch_new(&cfg, NULL, NULL);
    assert_non_null(b);
    static const char junk[] = "not an envelope";
    assert_int_equal(sw_batch_add(b, junk, sizeof junk - 1, 0, 1), 0);
    assert_int_equal(sw_batch_add(b, junk, sizeof junk - 1, 0, 1), 0);
    assert_int_equal(b->jobs[0].error_loggable, -1);
    sw_batch_pg_error(b, 0, 0, "23514", "new row violates check constraint \"c\"",
                      "Failing row contains (5, -1).");
    assert_string_equal(b->jobs[0].error, "SQLSTATE 23514: new row violates check constraint "
                                          "\"c\" Failing row contains (5, -1).");
    assert_int_equal(b->jobs[0].error_loggable,
                     strlen("SQLSTATE 23514: new row violates check constraint \"c\""));
    sw_batch_pg_error(b, 1, 1, "23505", "duplicate key", "");
    assert_string_equal(b->jobs[1].error, "SQLSTATE 23505: duplicate key");
    assert_int_equal(b->jobs[1].error_loggable, -1);
    assert_true(b->jobs[1].prefailed);
    sw_batch_free(b);
    sw_config_free(&cfg);
}

static void test_reordered_sink_maps_by_name(void **state)
{
    (void)state;
    sw_config cfg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(make_job("[sink.t]\ntable = t\ncolumns = a bigint not null, b text\n",
                              "{\"a\": 7, \"b\": \"seven\"}", &sb), 1);
    assert_int_equal(sw_config_load_string(&cfg, "now.ini", now_ini), 0);
    sw_batch *b = sw_batch_new(&cfg, lookup, NULL);
    lookups = 0;
    assert_int_equal(sw_batch_add(b, sb.data, sb.size, 0, 1), 0);
    assert_int_equal(sw_batch_add(b, sb.data, sb.size, 0, 1), 0);
    assert_int_equal(lookups, 1);   /* the map is kept for the next job */
    assert_int_equal(b->jobs[0].state, SW_JOB_PENDING);
    assert_non_null(b->jobs[0].map);
    const unsigned char *cur = NULL;
    sw_value v[SW_SINK_MAX_COLUMNS];
    assert_int_equal(sw_batch_next_record(b, 0, &cur, v), 1);
    assert_int_equal(v[0].kind, SW_V_STR);
    assert_memory_equal(v[0].s, "seven", 5);
    assert_int_equal(v[1].kind, SW_V_INT);
    assert_int_equal(v[1].i, 7);
    assert_int_equal(v[2].kind, SW_V_NULL);
    assert_int_equal(sw_batch_next_record(b, 0, &cur, v), 0);
    sw_batch_free(b);
    sw_config_free(&cfg);
    msgpack_sbuffer_destroy(&sb);
}

static void expect_refused(const char *old_ini, const char *body, const char *want)
{
    sw_config cfg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_true(make_job(old_ini, body, &sb) >= 1);
    assert_int_equal(sw_config_load_string(&cfg, "now.ini", now_ini), 0);
    sw_batch *b = sw_batch_new(&cfg, lookup, NULL);
    assert_int_equal(sw_batch_add(b, sb.data, sb.size, 0, 1), 0);
    assert_int_equal(b->jobs[0].state, SW_JOB_FAILED);
    assert_true(b->jobs[0].prefailed);
    if (strstr(b->jobs[0].error, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", b->jobs[0].error, want);
    sw_batch_free(b);
    sw_config_free(&cfg);
    msgpack_sbuffer_destroy(&sb);
}

/* What cannot be mapped is dead-lettered, naming the change; never
 * written to another column. */
static void test_unsafe_changes_are_refused(void **state)
{
    (void)state;
    /* b was bigint, is text now: not a widening this accepts. */
    expect_refused("[sink.t]\ntable = t\ncolumns = a bigint not null, b bigint\n",
                   "{\"a\": 1, \"b\": 2}", "column b was bigint and is now text");
    /* d is gone and the job has a value for it. */
    expect_refused("[sink.t]\ntable = t\ncolumns = a bigint not null, d text\n",
                   "{\"a\": 1, \"d\": \"x\"}", "column d was removed, and record 0 has a value");
    /* The old definition is not recorded anywhere. */
    registered = NULL;
    sw_config cfg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(make_job("[sink.t]\ntable = t\ncolumns = a bigint not null\n",
                              "{\"a\": 1}", &sb), 1);
    registered = NULL;
    assert_int_equal(sw_config_load_string(&cfg, "now.ini", now_ini), 0);
    sw_batch *b = sw_batch_new(&cfg, lookup, NULL);
    assert_int_equal(sw_batch_add(b, sb.data, sb.size, 0, 1), 0);
    assert_non_null(strstr(b->jobs[0].error, "not recorded in Redis"));
    sw_batch_free(b);
    sw_config_free(&cfg);
    msgpack_sbuffer_destroy(&sb);
}

/* A dropped column whose values are all NULL loses nothing: mapped. */
static void test_dropped_null_column_maps(void **state)
{
    (void)state;
    sw_config cfg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(make_job("[sink.t]\ntable = t\ncolumns = a bigint not null, d text, c smallint\n",
                              "{\"a\": 1, \"c\": 3}", &sb), 1);
    assert_int_equal(sw_config_load_string(&cfg, "now.ini", now_ini), 0);
    sw_batch *b = sw_batch_new(&cfg, lookup, NULL);
    assert_int_equal(sw_batch_add(b, sb.data, sb.size, 0, 1), 0);
    assert_int_equal(b->jobs[0].state, SW_JOB_PENDING);
    const unsigned char *cur = NULL;
    sw_value v[SW_SINK_MAX_COLUMNS];
    assert_int_equal(sw_batch_next_record(b, 0, &cur, v), 1);
    assert_int_equal(v[1].i, 1);
    assert_int_equal(v[2].i, 3);   /* smallint to integer widens */
    sw_batch_free(b);
    sw_config_free(&cfg);
    msgpack_sbuffer_destroy(&sb);
}

/* A lookup that cannot answer now adds nothing and says so. */
static int failing(void *ctx, uint64_t fp, sw_buf *out)
{
    (void)ctx;
    (void)fp;
    (void)out;
    return -1;
}

static void test_lookup_failure_adds_nothing(void **state)
{
    (void)state;
    sw_config cfg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(make_job("[sink.t]\ntable = t\ncolumns = a bigint not null, b text\n",
                              "{\"a\": 7}", &sb), 1);
    assert_int_equal(sw_config_load_string(&cfg, "now.ini", now_ini), 0);
    sw_batch *b = sw_batch_new(&cfg, failing, NULL);
    assert_int_equal(sw_batch_add(b, sb.data, sb.size, 0, 1), -2);
    assert_int_equal(b->njobs, 0);
    sw_batch_free(b);
    sw_config_free(&cfg);
    msgpack_sbuffer_destroy(&sb);
}

static void test_drop_front_keeps_the_rest(void **state)
{
    (void)state;
    sw_config cfg;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    assert_int_equal(sw_config_load_string(&cfg, "t.ini", ini), 0);
    /* Jobs of sink t as configured now. */
    registered = NULL;
    sw_problem p = {0};
    sw_record_work scratch = {0};
    char id[SW_JOBID_LEN + 1];
    sw_ingest_limits lim = {100, {1000, 8}};
    sw_jobid_new(id);
    assert_int_equal(sw_ingest_build(&cfg.sinks[0], SW_OP_WRITE, "application/json",
                                     "[{\"id\":1},{\"id\":2}]",
                                     19, &lim, id, 5, &sb, &scratch, &p), 2);
    sw_batch *b = sw_batch_new(&cfg, lookup, NULL);
    for (int i = 0; i < 3; i++)
        assert_int_equal(sw_batch_add(b, sb.data, sb.size, 2 - i, 10 + i), 0);
    assert_int_equal(b->nrecords, 6);
    sw_batch_drop_front(b, 1);
    assert_int_equal(b->njobs, 2);
    assert_int_equal(b->nrecords, 4);
    assert_int_equal(b->jobs[0].deliveries, 1);
    assert_true(b->nbytes == 2 * sb.size);
    sw_batch_drop_front(b, 5);
    assert_int_equal(b->njobs, 0);
    assert_true(b->first_claim_ms == 0);
    sw_batch_free(b);
    sw_record_work_free(&scratch);
    sw_config_free(&cfg);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corrupt_envelopes_fail_with_distinct_ids),
        cmocka_unit_test(test_pg_error_keeps_detail_out_of_logs),
        cmocka_unit_test(test_reordered_sink_maps_by_name),
        cmocka_unit_test(test_unsafe_changes_are_refused),
        cmocka_unit_test(test_dropped_null_column_maps),
        cmocka_unit_test(test_lookup_failure_adds_nothing),
        cmocka_unit_test(test_drop_front_keeps_the_rest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
