/* The pull reader: tokens, the strict rules it shares with jansson, and
 * what it keeps of long strings. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "json_reader.h"

static sw_buf str;

/* The token types of `text`, as letters: { } [ ] k s i r t f n, E at the
 * end (or X and the error). */
static const char *shape(const char *text, size_t len, int depth)
{
    static char out[256];
    sw_json_reader r;
    sw_json_token t;
    size_t n = 0;
    sw_json_reader_init(&r, text, len, depth, 16, &str);
    for (;;) {
        enum sw_json_type ty = sw_json_next(&r, &t);
        static const char letters[] = "E{}[]ksirtfnX";
        out[n++] = letters[ty];
        if (ty == SW_JSON_EOF || ty == SW_JSON_ERROR || n > 200)
            break;
    }
    out[n] = '\0';
    if (out[n - 1] == 'X')
        snprintf(out + n, sizeof out - n, ":%s", r.error);
    return out;
}

#define SHAPE(text, want) assert_string_equal(shape(text, strlen(text), 8), want)
#define BAD(text, needle) do { const char *got_ = shape(text, sizeof(text) - 1, 8); \
        if (strstr(got_, "X:") == NULL || strstr(got_, needle) == NULL) \
            fail_msg("%s: got %s", #text, got_); } while (0)

static void test_tokens(void **state)
{
    (void)state;
    SHAPE("{}", "{}E");
    SHAPE(" [1, -2.5e3, \"x\", true, false, null, {\"a\": []}] \n", "[irstfn{k[]}]E");
    SHAPE("7", "iE");
    SHAPE("[[[]]]", "[[[]]]E");
    BAD("", "empty");
    BAD("[1,]", "invalid token");
    BAD("[1 2]", "',' or ']'");
    BAD("{\"a\" 1}", "':'");
    BAD("{\"a\":1,}", "string or '}'");
    BAD("{1:2}", "string or '}'");
    BAD("[1] [2]", "end of input");
    BAD("[1", "premature end");
    BAD("tru", "invalid token");
    BAD("nul", "invalid token");
    BAD("'x'", "invalid token");
}

static void test_numbers(void **state)
{
    (void)state;
    sw_json_reader r;
    sw_json_token t;
    const char *text = "[0, -0, 9223372036854775807, -9223372036854775808, 1.5, 1e-400]";
    sw_json_reader_init(&r, text, strlen(text), 4, 64, &str);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_ARRAY);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_INTEGER);
    assert_int_equal(t.integer, 0);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_INTEGER);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_INTEGER);
    assert_true(t.integer == INT64_MAX);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_INTEGER);
    assert_true(t.integer == INT64_MIN);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_REAL);
    assert_true(t.real == 1.5);
    /* Underflow is a tiny number, not an error (as jansson). */
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_REAL);
    assert_true(t.real < 1e-300);
    BAD("9223372036854775808", "too big integer");
    BAD("-9223372036854775809", "too big negative integer");
    BAD("1e400", "overflow");
    BAD("01", "leading zeros");
    BAD("-", "invalid token");
    BAD("1.", "point");
    BAD("1e", "exponent");
    BAD(".5", "invalid token");
    BAD("+1", "invalid token");
}

static void test_strings(void **state)
{
    (void)state;
    sw_json_reader r;
    sw_json_token t;
    const char *text = "\"a\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\xc3\xa9\"";
    sw_json_reader_init(&r, text, strlen(text), 4, 64, &str);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_STRING);
    assert_int_equal(t.len, 17);
    assert_memory_equal(t.str, "a\"\\/\b\f\n\r\t\xc3\xa9\xf0\x9f\x98\x80\xc3\xa9", 17);
    assert_int_equal(t.truncated, 0);
    BAD("\"\\u0000\"", "\\u0000");
    BAD("\"\\ud800\"", "high surrogate");
    BAD("\"\\udc00\"", "low surrogate");
    BAD("\"\\ud800\\u0041\"", "high surrogate");
    BAD("\"\\x\"", "invalid escape");
    BAD("\"\\u12g4\"", "four hex digits");
    BAD("\"a\tb\"", "control character 0x09");
    BAD("\"a\x00" "b\"", "control character 0x00");
    BAD("\"\xff\"", "unable to decode byte 0xff");
    BAD("\"\xc0\xaf\"", "unable to decode byte 0xc0");        /* overlong */
    BAD("\"\xe0\x80\xaf\"", "unable to decode byte 0xe0");    /* overlong */
    BAD("\"\xed\xa0\x80\"", "unable to decode byte 0xed");    /* a surrogate */
    BAD("\"\xf4\x90\x80\x80\"", "unable to decode byte 0xf4"); /* past U+10FFFF */
    BAD("\"\xc3\"", "unable to decode");                     /* cut short */
    BAD("\"abc", "premature end");
}

/* A string past the limit keeps a bounded prefix and reports its length. */
static void test_long_string(void **state)
{
    (void)state;
    static char text[100010];
    sw_json_reader r;
    sw_json_token t;
    text[0] = '"';
    memset(text + 1, 'x', 100000);
    text[100001] = '"';
    sw_json_reader_init(&r, text, 100002, 4, 16, &str);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_STRING);
    assert_int_equal(t.len, 100000);
    assert_int_equal(t.truncated, 1);
    assert_true(str.len <= 20);
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_EOF);
}

static void test_depth_and_position(void **state)
{
    (void)state;
    assert_string_equal(shape("[[[[[[[[]]]]]]]]", 16, 8), "[[[[[[[[]]]]]]]]E");
    sw_json_reader r;
    sw_json_token t;
    const char *deep = "[[[[[[[[[]]]]]]]]]";
    sw_json_reader_init(&r, deep, strlen(deep), 8, 16, &str);
    while (sw_json_next(&r, &t) != SW_JSON_ERROR) {
    }
    assert_int_equal(r.nesting, 1);
    const char *two = "{\"a\": 1,\n  \"b\": x}";
    sw_json_reader_init(&r, two, strlen(two), 8, 16, &str);
    while (sw_json_next(&r, &t) != SW_JSON_ERROR) {
    }
    long line, col;
    sw_json_error_pos(&r, &line, &col);
    assert_int_equal(line, 2);
    assert_int_equal(col, 8);
    /* After an error, the same. */
    assert_int_equal(sw_json_next(&r, &t), SW_JSON_ERROR);
}

static int teardown(void **state)
{
    (void)state;
    sw_buf_free(&str);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens),
        cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_strings),
        cmocka_unit_test(test_long_string),
        cmocka_unit_test(test_depth_and_position),
    };
    return cmocka_run_group_tests(tests, NULL, teardown);
}
