#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster.h"
#include "keys.h"
#include "shards.h"

/* A reply parsed from canned RESP bytes, as a server would send them. */
static redisReply *parse(const char *resp)
{
    redisReader *rd = redisReaderCreate();
    void *reply = NULL;
    assert_int_equal(redisReaderFeed(rd, resp, strlen(resp)), REDIS_OK);
    assert_int_equal(redisReaderGetReply(rd, &reply), REDIS_OK);
    assert_non_null(reply);
    redisReaderFree(rd);
    return reply;
}

static void test_slots(void **state)
{
    (void)state;
    assert_int_equal(sw_cluster_crc16("123456789", 9), 0x31C3);
    assert_int_equal(sw_cluster_slot("foo", 3), 12182);
    assert_int_equal(sw_cluster_slot("bar", 3), 5061);
    /* Hash tags: the first {...} that is not empty. */
    int s = sw_cluster_slot("{user1000}.following", 20);
    assert_int_equal(s, sw_cluster_slot("{user1000}.followers", 20));
    assert_int_equal(s, sw_cluster_slot("user1000", 8));
    assert_int_equal(sw_cluster_slot("foo{}{bar}", 10), sw_cluster_crc16("foo{}{bar}", 10) & 16383);
    assert_int_equal(sw_cluster_slot("foo{{bar}}zap", 13), sw_cluster_slot("{bar", 4));
    assert_int_equal(sw_cluster_slot("foo{bar}{zap}", 13), sw_cluster_slot("bar", 3));
    assert_true(sw_cluster_has_tag("{spillway}"));
    assert_true(sw_cluster_has_tag("app:{q}"));
    assert_false(sw_cluster_has_tag("spillway"));
    assert_false(sw_cluster_has_tag("sp{}illway"));
    assert_false(sw_cluster_has_tag("sp{illway"));
}

/* Each shard is a whole queue under a hash tag of its own; the shared
 * keys stay under the configured prefix. */
static void test_shard_keys(void **state)
{
    (void)state;
    char p[64];
    assert_int_equal(sw_keys_shard_prefix("spillway", 3, p), 12);
    assert_string_equal(p, "{spillway:3}");
    assert_int_equal(sw_keys_shard_prefix("{spillway}", 3, p), 12);
    assert_string_equal(p, "{spillway:3}");
    assert_int_equal(sw_keys_shard_prefix("app:{q}", 10, p), 10);
    assert_string_equal(p, "{app:q:10}");
    int seen[16384 / 64] = {0}, distinct = 0;
    for (int k = 0; k < SW_SHARDS_MAX; k++) {
        sw_keys_shard_prefix("{spillway}", k, p);
        assert_true(sw_cluster_has_tag(p));
        sw_keys ks;
        sw_keys_init(&ks, p);
        int slot = sw_cluster_slot(p, strlen(p));
        assert_int_equal(sw_cluster_slot(ks.queue, strlen(ks.queue)), slot);
        assert_int_equal(sw_cluster_slot(ks.lease, strlen(ks.lease)), slot);
        distinct += !seen[slot / 64]++;
    }
    assert_true(distinct > 40);   /* spread over the slot space */
    sw_keys ks;
    sw_keys_init(&ks, "{spillway}");
    assert_string_equal(ks.layout, "{spillway}:layout");
    assert_string_equal(ks.members, "{spillway}:members");
    /* 58 bytes fit, as the config allows with shards. */
    char longp[SW_SHARD_PREFIX_MAX + 1];
    memset(longp, 'x', SW_SHARD_PREFIX_MAX);
    longp[SW_SHARD_PREFIX_MAX] = '\0';
    assert_int_equal(sw_keys_shard_prefix(longp, 63, p), SW_SHARD_PREFIX_MAX + 5);
    /* Options: the shard's prefix, or the configured one without shards. */
    sw_redis_opts o = {.prefix = "spillway"};
    assert_string_equal(sw_shards_opts(&o, 4, 2, p).prefix, "{spillway:2}");
    assert_string_equal(sw_shards_opts(&o, 0, 0, p).prefix, "spillway");
    /* Bounds are shared out, rounding up; none without shards. */
    assert_int_equal(sw_shards_share(10, 4), 3);
    assert_int_equal(sw_shards_share(8, 4), 2);
    assert_int_equal(sw_shards_share(10, 0), 10);
    assert_int_equal(sw_shards_share(0, 4), 0);
}

/* An Idempotency-Key's shard is the same everywhere and spreads. */
static void test_key_shard(void **state)
{
    (void)state;
    int count[4] = {0};
    char key[32];
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "k-%d", i);
        int k = sw_shards_of_key(4, "events", key);
        assert_in_range(k, 0, 3);
        assert_int_equal(k, sw_shards_of_key(4, "events", key));
        count[k]++;
    }
    for (int k = 0; k < 4; k++)
        assert_in_range(count[k], 800, 1200);
    assert_int_equal(sw_shards_of_key(1, "events", "k"), 0);
    int differ = 0;
    for (int i = 0; i < 64; i++) {
        snprintf(key, sizeof key, "k-%d", i);
        differ += sw_shards_of_key(64, "events", key) != sw_shards_of_key(64, "orders", key);
    }
    assert_true(differ > 32);   /* the sink is part of the key */
    /* Hashes that differ only above their low bits still spread (FNV
     * modulo a power of two would not). */
    int seen[4] = {0};
    for (uint64_t i = 0; i < 64; i++)
        seen[sw_shards_pick(i << 8, 4)]++;
    for (int k = 0; k < 4; k++)
        assert_in_range(seen[k], 5, 30);
}

static void test_owner(void **state)
{
    (void)state;
    sw_endpoint asked = {"10.0.0.9", 7000}, o;
    /* Three masters, one with a replica; the third range names no host. */
    redisReply *r = parse(
        "*3\r\n"
        "*4\r\n:0\r\n:5460\r\n*3\r\n$9\r\n127.0.0.1\r\n:7000\r\n$2\r\nid\r\n"
        "*3\r\n$9\r\n127.0.0.1\r\n:7003\r\n$2\r\nir\r\n"
        "*3\r\n:5461\r\n:10922\r\n*2\r\n$9\r\n127.0.0.1\r\n:7001\r\n"
        "*3\r\n:10923\r\n:16383\r\n*2\r\n$0\r\n\r\n:7002\r\n");
    assert_int_equal(sw_cluster_owner(r, 0, &asked, &o), 0);
    assert_string_equal(o.host, "127.0.0.1");
    assert_int_equal(o.port, 7000);
    assert_int_equal(sw_cluster_owner(r, 5461, &asked, &o), 0);
    assert_int_equal(o.port, 7001);
    assert_int_equal(sw_cluster_owner(r, 16383, &asked, &o), 0);
    assert_string_equal(o.host, "10.0.0.9");
    assert_int_equal(o.port, 7002);
    freeReplyObject(r);
    /* A NULL host is the node asked; "?" is a node not known yet. */
    r = parse("*2\r\n*3\r\n:0\r\n:9\r\n*2\r\n$-1\r\n:7005\r\n"
              "*3\r\n:10\r\n:19\r\n*2\r\n$1\r\n?\r\n:7006\r\n");
    assert_int_equal(sw_cluster_owner(r, 5, &asked, &o), 0);
    assert_string_equal(o.host, "10.0.0.9");
    assert_int_equal(o.port, 7005);
    assert_int_equal(sw_cluster_owner(r, 15, &asked, &o), 1);
    freeReplyObject(r);
    /* A hole: slot 100 is nobody's. */
    r = parse("*1\r\n*3\r\n:101\r\n:200\r\n*2\r\n$1\r\nh\r\n:1\r\n");
    assert_int_equal(sw_cluster_owner(r, 100, &asked, &o), 1);
    freeReplyObject(r);
    /* Shapes that are not CLUSTER SLOTS. */
    const char *bad[] = {
        "+OK\r\n",
        "*1\r\n:1\r\n",
        "*1\r\n*3\r\n:5\r\n:1\r\n*2\r\n$1\r\nh\r\n:1\r\n",          /* lo > hi */
        "*1\r\n*3\r\n:0\r\n:16384\r\n*2\r\n$1\r\nh\r\n:1\r\n",      /* past the last slot */
        "*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\nh\r\n:0\r\n",         /* port 0 */
        "*1\r\n*3\r\n:0\r\n:10\r\n*2\r\n$1\r\nh\r\n$4\r\n7000\r\n", /* port as a string */
        "*1\r\n*2\r\n:0\r\n:10\r\n",                                /* no node */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        r = parse(bad[i]);
        assert_int_equal(sw_cluster_owner(r, 5, &asked, &o), -1);
        freeReplyObject(r);
    }
}

static void test_redirect(void **state)
{
    (void)state;
    int slot = -1;
    sw_endpoint to;
    assert_int_equal(sw_cluster_redirect("MOVED 3999 127.0.0.1:6381", &slot, &to),
                     SW_REDIRECT_MOVED);
    assert_int_equal(slot, 3999);
    assert_string_equal(to.host, "127.0.0.1");
    assert_int_equal(to.port, 6381);
    /* No host: the node that answered (the caller fills it in). */
    assert_int_equal(sw_cluster_redirect("MOVED 7 :6380", &slot, &to), SW_REDIRECT_MOVED);
    assert_string_equal(to.host, "");
    assert_int_equal(to.port, 6380);
    assert_int_equal(sw_cluster_redirect("ASK 16383 ::1:7000", &slot, &to), SW_REDIRECT_ASK);
    assert_int_equal(slot, 16383);
    assert_string_equal(to.host, "::1");
    assert_int_equal(to.port, 7000);
    const char *none[] = {"MOVED", "MOVED 1", "MOVED 1 ", "MOVED x h:1", "MOVED 16384 h:1",
                          "MOVED 1 h", "MOVED 1 h:", "MOVED 1 h:0", "MOVED 1 h:70000",
                          "MOVED 1 h:1x", "ERR MOVED 1 h:1", "TRYAGAIN Multiple keys", "ASKING"};
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
        if (sw_cluster_redirect(none[i], &slot, &to) != SW_REDIRECT_NONE)
            fail_msg("\"%s\" read as a redirect", none[i]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slots),
        cmocka_unit_test(test_shard_keys),
        cmocka_unit_test(test_key_shard),
        cmocka_unit_test(test_owner),
        cmocka_unit_test(test_redirect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
