/* logfmt lines: values cannot end their quotes or the line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "log.h"

static void test_strings_are_escaped(void **state)
{
    (void)state;
    char out[256];
    sw_log_format(out, sizeof out, "error=\"%s\" n=%d", "x\" level=error msg=\"forged\n\\", 3);
    assert_string_equal(out, "error=\"x\\\" level=error msg=\\\"forged\\n\\\\\" n=3");
    sw_log_format(out, sizeof out, "v=\"%.*s\"", 3, "a\r\tbcdef");
    assert_string_equal(out, "v=\"a\\r\\t\"");
    /* A written precision bounds the read: the bytes need no NUL. */
    static const char unterminated[4] = {'a', 'b', 'c', 'd'};
    sw_log_format(out, sizeof out, "p=%.3s", unterminated);
    assert_string_equal(out, "p=abc");
    sw_log_format(out, sizeof out, "c=\"%s\"", "\x01\x7f\xc3\xa9");
    assert_string_equal(out, "c=\"\\x01\\x7f\xc3\xa9\"");
}

static void test_other_conversions_unchanged(void **state)
{
    (void)state;
    char out[256];
    sw_log_format(out, sizeof out, "%d %ld %lld %zu %u %x %05.2f %.3f %c %% %s", -1, 2L, -3LL,
                  (size_t)4, 5u, 255u, 3.14159, 0.5, 'q', "end");
    assert_string_equal(out, "-1 2 -3 4 5 ff 03.14 0.500 q % end");
    sw_log_format(out, sizeof out, "%-4d|%3s|", 7, "ab");
    assert_string_equal(out, "7   |ab|");   /* a string's width is not honoured */
}

static void test_cut_to_capacity(void **state)
{
    (void)state;
    char out[8];
    int n = sw_log_format(out, sizeof out, "%s", "0123456789");
    assert_int_equal(n, 7);
    assert_string_equal(out, "0123456");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_strings_are_escaped),
        cmocka_unit_test(test_other_conversions_unchanged),
        cmocka_unit_test(test_cut_to_capacity),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
