#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http_chunked.h"

static sw_chunked c;
static char buf[4096];
static size_t rpos, wpos;

/* Decode `s` (placed at offset 10 of the buffer, as after a head), in
 * pieces of `step` bytes; the verdict. */
static int dec(const char *s, size_t step, size_t max_body)
{
    size_t n = strlen(s), have = 10;
    int rc = 0;
    memset(buf, '#', sizeof buf);
    sw_chunked_init(&c);
    rpos = wpos = 10;
    while (rc == 0 && have < 10 + n) {
        size_t add = n - (have - 10) < step ? n - (have - 10) : step;
        memcpy(buf + have, s + have - 10, add);
        have += add;
        rc = sw_chunked_decode(&c, buf, have, &rpos, &wpos, 10, max_body, 256);
    }
    return rc;
}

static void test_decodes_in_place(void **state)
{
    (void)state;
    const char *s = "5\r\nhello\r\n6;name=\"v a\"\r\n world\r\n0\r\nX-T: 1\r\n\r\nNEXT";
    for (size_t step = 1; step <= strlen(s); step++) {
        assert_int_equal(dec(s, step, 100), 1);
        assert_int_equal(wpos - 10, 11);
        assert_memory_equal(buf + 10, "hello world", 11);
        /* The next request starts right after the final CRLF. */
        assert_memory_equal(s + (rpos - 10), "NEXT", 4);
    }
    assert_int_equal(dec("000A\r\n0123456789\r\n0\r\n\r\n", 3, 100), 1);
    assert_int_equal(wpos - 10, 10);
    assert_int_equal(dec("0\r\n\r\n", 1, 100), 1);
    assert_int_equal(wpos, 10);
    assert_int_equal(dec("5 ; x\r\nhello\r\n0\r\n\r\n", 1, 100), 1);
}

static void test_incomplete(void **state)
{
    (void)state;
    assert_int_equal(dec("5\r\nhel", 2, 100), 0);
    assert_int_equal(dec("5\r\nhello\r\n0\r\n", 2, 100), 0);
    assert_int_equal(dec("5\r\nhello\r\n0\r\nX: y\r\n", 2, 100), 0);
}

static void refused(const char *s, int status)
{
    for (size_t step = 1; step <= strlen(s); step += 3) {
        int rc = dec(s, step, 100);
        if (rc != -1 || c.status != status)
            fail_msg("%s (step %zu): rc %d status %d", s, step, rc, c.status);
    }
}

static void test_strict(void **state)
{
    (void)state;
    refused("0x5\r\nhello\r\n0\r\n\r\n", 400);
    refused(" 5\r\nhello\r\n0\r\n\r\n", 400);
    refused("+5\r\nhello\r\n0\r\n\r\n", 400);
    refused("5\nhello\r\n0\r\n\r\n", 400);
    refused("5\r\nhello!\r\n0\r\n\r\n", 400);
    refused("5\r\nhello\n0\r\n\r\n", 400);
    refused("5;a=\x01\r\nhello\r\n0\r\n\r\n", 400);
    refused("10000000000000005\r\nhello\r\n0\r\n\r\n", 400);
    refused("5\r\nhello\r\n0\r\nX: a\r\n b\r\n\r\n", 400);
    refused("5\r\nhello\r\n0\r\nX: a\n\r\n", 400);
    refused("5\r\nhello\r\n0\r\n: a\r\n\r\n", 400);
    refused("5\r\nhello\r\n0\r\n\n", 400);
    refused("\r\n", 400);
    refused("g\r\n", 400);
}

static void test_limits(void **state)
{
    (void)state;
    /* 100 data bytes is the limit: a size over it is refused before any
     * data, and so is the sum of sizes. */
    refused("65\r\n", 413);
    refused("40\r\n0123456789012345678901234567890123456789012345678901234567890123\r\n"
            "25\r\n", 413);
    assert_int_equal(dec("64\r\n0123456789012345678901234567890123456789012345678901234567890"
                         "123456789012345678901234567890123456789\r\n0\r\n\r\n", 7, 100), 1);
    assert_int_equal(wpos - 10, 100);
    /* Trailer fields are bounded. */
    char t[600];
    snprintf(t, sizeof t, "0\r\nX: %0300d\r\n\r\n", 1);
    refused(t, 431);
    /* So is a size line. */
    char line[1100];
    snprintf(line, sizeof line, "5;%01030d\r\nhello\r\n0\r\n\r\n", 1);
    refused(line, 400);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decodes_in_place),
        cmocka_unit_test(test_incomplete),
        cmocka_unit_test(test_strict),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
