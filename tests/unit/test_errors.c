/* How error answers are classed, and the key layout's names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "keys.h"
#include "pgconn.h"
#include "redis.h"
#include "scripts.h"

static void test_redis_classes(void **state)
{
    (void)state;
    /* Refused before a shebang script runs: nothing was done. */
    assert_int_equal(sw_redis_classify("OOM command not allowed when used memory > 'maxmemory'.", 1),
                     SW_REDIS_EOOM);
    assert_int_equal(sw_redis_classify("READONLY You can't write against a read only replica.", 1),
                     SW_REDIS_EREFUSED);
    assert_int_equal(sw_redis_classify("LOADING Redis is loading the dataset in memory", 1),
                     SW_REDIS_EREFUSED);
    assert_int_equal(sw_redis_classify("MISCONF Redis is configured to save RDB snapshots", 1),
                     SW_REDIS_EREFUSED);
    assert_int_equal(sw_redis_classify("NOPERM this user has no permissions to run the "
                                       "'evalsha' command", 1), SW_REDIS_EREFUSED);
    /* Failed while running: it may have written. */
    assert_int_equal(sw_redis_classify("WRONGTYPE Operation against a key holding the wrong kind "
                                       "of value script: 5a3b, on @user_script:12.", 1),
                     SW_REDIS_EPROTO);
    assert_int_equal(sw_redis_classify("ERR user_script:3: attempt to compare nil", 1),
                     SW_REDIS_EPROTO);
    /* The same words outside a script are a plain refusal. */
    assert_int_equal(sw_redis_classify("WRONGTYPE Operation against a key", 0), SW_REDIS_EREFUSED);
    assert_true(sw_redis_maybe_done(SW_REDIS_EIO));
    assert_true(sw_redis_maybe_done(SW_REDIS_EPROTO));
    assert_false(sw_redis_maybe_done(SW_REDIS_EREFUSED));
    assert_false(sw_redis_maybe_done(SW_REDIS_ECONNECT));
    assert_false(sw_redis_maybe_done(SW_REDIS_EOOM));
}

/* The hint names the real cause: a refused password is not "is Redis
 * running?". */
static void test_redis_hints(void **state)
{
    (void)state;
    assert_non_null(strstr(sw_redis_hint(SW_REDIS_ECONNECT, "", "auth: 127.0.0.1:6379: "
                                         "WRONGPASS invalid username-password pair"),
                           "password"));
    assert_non_null(strstr(sw_redis_hint(SW_REDIS_EREFUSED, "NOAUTH", "NOAUTH Authentication "
                                         "required."), "[redis] password"));
    assert_non_null(strstr(sw_redis_hint(SW_REDIS_ECONNECT, "", "connect: 127.0.0.1:1: "
                                         "Connection refused"), "host:port"));
    assert_non_null(strstr(sw_redis_hint(SW_REDIS_EOOM, "OOM", "OOM command not allowed"),
                           "maxmemory"));
    assert_non_null(strstr(sw_redis_hint(SW_REDIS_EREFUSED, "READONLY", ""), "replica"));
    assert_non_null(strstr(sw_redis_hint(SW_REDIS_EIO, NULL, NULL), "timeout_ms"));
    assert_non_null(strstr(sw_redis_hint(SW_REDIS_EREFUSED, "NOPERM", ""), "ACL"));
}

static void test_pg_classes(void **state)
{
    (void)state;
    const char *transient[] = {"", "08006", "40001", "40P01", "53100", "53300", "57014",
                               "57P01", "57P03", "58030", "55P03", "55006", NULL};
    const char *data[] = {"22001", "22P02", "23505", "23514", "23502", "44000", "P0001", NULL};
    const char *other[] = {"54000", "42703", "42804", "42P01", "42501", "XX000", "0A000", NULL};
    for (int i = 0; transient[i]; i++)
        assert_int_equal(sw_pg_classify(transient[i]), SW_PG_TRANSIENT);
    for (int i = 0; data[i]; i++)
        assert_int_equal(sw_pg_classify(data[i]), SW_PG_DATA);
    for (int i = 0; other[i]; i++)
        assert_int_equal(sw_pg_classify(other[i]), SW_PG_OTHER);
}

static void test_keys(void **state)
{
    (void)state;
    sw_keys k;
    sw_fkeys f;
    char out[SW_KEY_MAX];
    sw_keys_init(&k, "{sw}");
    assert_string_equal(k.queue, "{sw}:queue");
    assert_string_equal(k.deadenv, "{sw}:deadenv");
    sw_keys_flusher(&k, "h-1", &f);
    assert_string_equal(f.processing, "{sw}:processing:h-1");
    assert_string_equal(f.inflight, "{sw}:inflight:h-1");
    assert_string_equal(f.heartbeat, "{sw}:heartbeat:h-1");
    assert_int_equal(sw_keys_job(&k, "abc", out), strlen("{sw}:job:abc"));
    assert_string_equal(out, "{sw}:job:abc");
    /* A status bucket: the id's shift (hex digit 20) and its ms >> shift;
     * the field is the id's 16 bytes. */
    unsigned char field[16];
    const char *id = "0190a0e4-7b8c-7abc-8523-456789abcdef";
    char want[64];
    snprintf(want, sizeof want, "{sw}:st:5:%llu", (unsigned long long)(0x0190a0e47b8cULL >> 5));
    assert_int_equal(sw_keys_status(&k, id, out, field), strlen(want));
    assert_string_equal(out, want);
    assert_int_equal(field[0], 0x01);
    assert_int_equal(field[8], 0x85);
    assert_int_equal(field[15], 0xef);
    assert_int_equal(sw_keys_status(&k, "not-an-id", out, field), 0);
    sw_keys_dead_legacy(&k, "abc", out);
    assert_string_equal(out, "{sw}:dead:abc");
    /* Without tokens the 0.1 name; with one, a scope that no sink name or
     * key can forge ('@' is in neither). */
    sw_keys_idem(&k, "orders", "", "k1", out, sizeof out);
    assert_string_equal(out, "{sw}:idem:orders:k1");
    sw_keys_idem(&k, "orders", "00ff", "k1", out, sizeof out);
    assert_string_equal(out, "{sw}:idem:orders@00ff:k1");
    assert_int_equal(sw_keys_idem(&k, "orders", "", "k1", out, 8), 0);
}

/* Every script is built, opens with its shebang, and carries the
 * envelope offsets from envelope.h. */
static void test_scripts_built(void **state)
{
    (void)state;
    for (int s = 0; s < SW_SCRIPT_COUNT; s++) {
        size_t len;
        const char *t = sw_script_text((enum sw_script)s, &len);
        assert_non_null(t);
        assert_true(len > 100);
        assert_memory_equal(t, "#!lua", 5);
        assert_non_null(strstr(t, "local ENV_ID, ENV_ID_LEN = 18, 36\n"));
        assert_non_null(strstr(t, "-- KEYS:"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_redis_classes),
        cmocka_unit_test(test_redis_hints),
        cmocka_unit_test(test_pg_classes),
        cmocka_unit_test(test_keys),
        cmocka_unit_test(test_scripts_built),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
