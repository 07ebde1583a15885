#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "auth.h"
#include "config.h"

static sw_config cfg;

static int setup(void **state)
{
    (void)state;
    return sw_config_load_string(&cfg, "t.ini",
                                 "[sink.orders]\ntable = orders\ncolumns = id bigint\n"
                                 "[sink.events]\ntable = events\ncolumns = id bigint\n"
                                 "[sink.order]\ntable = o2\ncolumns = id bigint\n");
}

static int teardown(void **state)
{
    (void)state;
    sw_config_free(&cfg);
    return 0;
}

/* SHA-256("abc") from FIPS 180-2, so the hash is the standard one and a
 * file written by `sha256sum` works too. */
static void test_hash_known_answer(void **state)
{
    (void)state;
    char hex[SW_AUTH_HASH_HEX];
    sw_auth_hash_hex("abc", 3, hex);
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_check_and_allows(void **state)
{
    (void)state;
    char text[512], h1[SW_AUTH_HASH_HEX], h2[SW_AUTH_HASH_HEX];
    sw_auth a;
    enum sw_auth_result res;
    sw_auth_hash_hex("tok-one", 7, h1);
    sw_auth_hash_hex("tok-two", 7, h2);
    snprintf(text, sizeof text, "# comment\n\n%s orders, events\n  %s *  \r\n", h1, h2);
    assert_int_equal(sw_auth_parse(&a, "tokens", text, &cfg), 0);
    assert_int_equal(a.n, 2);

    const sw_auth_entry *e = sw_auth_check(&a, "Bearer tok-one", &res);
    assert_int_equal(res, SW_AUTH_OK);
    assert_ptr_equal(e, &a.entries[0]);
    assert_true(sw_auth_allows(e, "orders", 6));
    assert_true(sw_auth_allows(e, "events", 6));
    /* A prefix of an allowed name is a different sink. */
    assert_false(sw_auth_allows(e, "order", 5));
    assert_false(sw_auth_allows(e, "orders", 5));
    assert_false(sw_auth_allows(e, "", 0));

    e = sw_auth_check(&a, "bearer   tok-two", &res);
    assert_int_equal(res, SW_AUTH_OK);
    assert_true(sw_auth_allows(e, "order", 5));

    assert_null(sw_auth_check(&a, NULL, &res));
    assert_int_equal(res, SW_AUTH_MISSING);
    assert_null(sw_auth_check(&a, "Basic dG9rLW9uZQ==", &res));
    assert_int_equal(res, SW_AUTH_MISSING);
    assert_null(sw_auth_check(&a, "Bearer tok-on", &res));
    assert_int_equal(res, SW_AUTH_INVALID);
    assert_null(sw_auth_check(&a, "Bearer ", &res));
    assert_int_equal(res, SW_AUTH_INVALID);
    /* The hash itself is not a token. */
    char bearer_hash[80];
    snprintf(bearer_hash, sizeof bearer_hash, "Bearer %s", h1);
    assert_null(sw_auth_check(&a, bearer_hash, &res));
    assert_int_equal(res, SW_AUTH_INVALID);
    sw_auth_free(&a);
}

static void test_bad_files(void **state)
{
    (void)state;
    char text[512], h[SW_AUTH_HASH_HEX];
    sw_auth a;
    sw_auth_hash_hex("x", 1, h);

    snprintf(text, sizeof text, "%s orders\n%s ordrs\n", h, h);
    assert_int_equal(sw_auth_parse(&a, "tokens", text, &cfg), -1);
    assert_string_equal(a.errstr, "tokens:2: no sink named \"ordrs\" is configured");
    sw_auth_free(&a);

    assert_int_equal(sw_auth_parse(&a, "tokens", "sw_plaintexttoken orders\n", &cfg), -1);
    assert_non_null(strstr(a.errstr, "tokens:1: expected the token's SHA-256 as 64 hex digits"));
    sw_auth_free(&a);

    snprintf(text, sizeof text, "%s\n", h);
    assert_int_equal(sw_auth_parse(&a, "tokens", text, &cfg), -1);
    assert_non_null(strstr(a.errstr, "tokens:1: expected whitespace and the sinks"));
    sw_auth_free(&a);

    assert_int_equal(sw_auth_parse(&a, "tokens", "# none yet\n", &cfg), -1);
    assert_non_null(strstr(a.errstr, "holds no tokens"));
    sw_auth_free(&a);

    /* A token listed twice: which line would win is not for the file to
     * leave open. */
    snprintf(text, sizeof text, "%s orders\n\n%s *\n", h, h);
    assert_int_equal(sw_auth_parse(&a, "tokens", text, &cfg), -1);
    assert_non_null(strstr(a.errstr, "tokens:3: this token's hash is already on an earlier line"));
    sw_auth_free(&a);

    /* A NUL byte would end the file early: refused with its line. */
    char path[] = "/tmp/sw-tokens-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fprintf(f, "%s orders\n# x", h);
    fputc('\0', f);
    fputs("\n", f);
    fclose(f);
    assert_int_equal(sw_auth_load(&a, path, &cfg), -1);
    if (strstr(a.errstr, ":2: holds a NUL byte") == NULL)
        fail_msg("%s", a.errstr);
    sw_auth_free(&a);
    unlink(path);
    sw_auth_free(NULL);
}

/* 20,000 tokens load in linear time and each is found by its digest (a
 * file grown one realloc per line took minutes in the sanitizer build). */
static void test_many_tokens(void **state)
{
    (void)state;
    enum { N = 20000 };
    size_t cap = (size_t)N * 80 + 1, len = 0;
    char *text = malloc(cap), tok[32], h[SW_AUTH_HASH_HEX], bearer[64];
    assert_non_null(text);
    for (int i = 0; i < N; i++) {
        snprintf(tok, sizeof tok, "token-%d", i);
        sw_auth_hash_hex(tok, strlen(tok), h);
        len += (size_t)snprintf(text + len, cap - len, "%s %s\n", h, i % 2 ? "*" : "events");
    }
    sw_auth a;
    clock_t t0 = clock();
    assert_int_equal(sw_auth_parse(&a, "tokens", text, &cfg), 0);
    assert_int_equal(a.n, N);
    enum sw_auth_result res;
    for (int i = 0; i < N; i += 997) {
        snprintf(bearer, sizeof bearer, "Bearer token-%d", i);
        const sw_auth_entry *e = sw_auth_check(&a, bearer, &res);
        assert_int_equal(res, SW_AUTH_OK);
        assert_ptr_equal(e, &a.entries[i]);
        assert_int_equal(e->all_sinks, i % 2);
    }
    assert_null(sw_auth_check(&a, "Bearer token-20000", &res));
    assert_int_equal(res, SW_AUTH_INVALID);
    double secs = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_true(secs < 5.0);
    sw_auth_free(&a);
    free(text);
}

static void test_new_token(void **state)
{
    (void)state;
    char t1[SW_AUTH_TOKEN_MAX], t2[SW_AUTH_TOKEN_MAX];
    assert_int_equal(sw_auth_token_new(t1), 0);
    assert_int_equal(sw_auth_token_new(t2), 0);
    assert_int_equal(strlen(t1), 67);
    assert_memory_equal(t1, "sw_", 3);
    assert_int_equal(strspn(t1 + 3, "0123456789abcdef"), 64);
    assert_string_not_equal(t1, t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash_known_answer),
        cmocka_unit_test(test_check_and_allows),
        cmocka_unit_test(test_bad_files),
        cmocka_unit_test(test_new_token),
        cmocka_unit_test(test_many_tokens),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
