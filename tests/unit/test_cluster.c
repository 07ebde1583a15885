#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>
#include <cmocka.h>
#include <hiredis/hiredis.h>

#include "cluster.h"

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
        cmocka_unit_test(test_owner),
        cmocka_unit_test(test_redirect),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
