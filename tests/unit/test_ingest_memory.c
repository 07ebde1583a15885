/* What a request's body costs while it is turned into an envelope: the
 * peak of bytes allocated during sw_ingest_build, counted through the
 * sanitizer's allocation hooks (the suite's Debug build). The bound: the
 * envelope (about the body's size) plus one string's worth, never a
 * document. The previous release built the whole document with jansson:
 * the same hooks measured 71x and 40x the body for the two refused shapes
 * below and 12-13x for accepted bodies. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config.h"
#include "ingest.h"

#if defined(__SANITIZE_ADDRESS__)
int __sanitizer_install_malloc_and_free_hooks(void (*)(const volatile void *, size_t),
                                              void (*)(const volatile void *));
size_t __sanitizer_get_allocated_size(const volatile void *);

static long cur, peak;
static int counting;

static void on_malloc(const volatile void *p, size_t n)
{
    (void)p;
    if (counting) {
        cur += (long)n;
        if (cur > peak)
            peak = cur;
    }
}

static void on_free(const volatile void *p)
{
    if (counting && p)
        cur -= (long)__sanitizer_get_allocated_size(p);
}
#endif

static sw_config cfg;
static char *body;
#define MIB (1 << 20)

/* Peak bytes allocated while building; the status (0: accepted). */
static long measure(const char *ct, size_t len, int *status, long *records)
{
    sw_ingest_limits lim = {10000, {65536, 32}};
    msgpack_sbuffer sb;
    sw_record_work w = {0};
    sw_problem p = {0};
    msgpack_sbuffer_init(&sb);
#if defined(__SANITIZE_ADDRESS__)
    cur = peak = 0;
    counting = 1;
#endif
    *records = sw_ingest_build(&cfg.sinks[0], SW_OP_WRITE, ct, body, len, &lim,
                               "0190a0e4-7b8c-7abc-8123-456789abcdef", 1, &sb, &w, &p);
#if defined(__SANITIZE_ADDRESS__)
    counting = 0;
#endif
    *status = p.status;
    msgpack_sbuffer_destroy(&sb);
    sw_record_work_free(&w);
#if defined(__SANITIZE_ADDRESS__)
    printf("    %s, %zu bytes: status %d, %ld records, peak %ld bytes (%.2fx)\n", ct, len,
           p.status, *records, peak, (double)peak / (double)len);
    return peak;
#else
    return 0;
#endif
}

static void test_refused_shapes_cost_little(void **state)
{
    (void)state;
    int st;
    long n;
    size_t len = 0;
    /* [{},{},...]: 350,000 records, refused by the pre-scan's count. */
    body[len++] = '[';
    while (len < MIB - 4) {
        memcpy(body + len, "{},", 3);
        len += 3;
    }
    body[len - 1] = ']';
    assert_true(measure("application/json", len, &st, &n) <= 64 * 1024);
    assert_int_equal(st, 413);
    /* One record whose jsonb value is 1 MiB of [],[],...: refused as too
     * long while it is read, at max_string_bytes. */
    len = (size_t)sprintf(body, "{\"id\":1,\"body\":[");
    while (len < MIB - 6) {
        memcpy(body + len, "[],", 3);
        len += 3;
    }
    memcpy(body + len - 1, "]}", 2);
    len++;
    assert_true(measure("application/json", len, &st, &n) <= 4 * 65536);
    assert_int_equal(st, 422);
}

static void test_accepted_bodies_cost_their_envelope(void **state)
{
    (void)state;
    int st;
    long n;
    size_t len = 0;
    body[len++] = '[';
    for (int i = 0; i < 9000; i++)
        len += (size_t)sprintf(body + len, "{\"id\":%d,\"payload\":\"hello %d\",\"n\":\"12.50\","
                               "\"t\":\"2026-01-31T12:00:00Z\",\"body\":{\"k\":[1,2,3]}},", i, i);
    body[len - 1] = ']';
    assert_true(measure("application/json", len, &st, &n) <= (long)(2 * len) + 65536);
    assert_int_equal(n, 9000);
    /* Objects with many keys in a jsonb value: their keys are tracked
     * for repeats one object at a time. */
    len = 0;
    body[len++] = '[';
    for (int i = 0; i < 100; i++) {
        len += (size_t)sprintf(body + len, "{\"id\":%d,\"body\":{", i);
        for (int k = 0; k < 800; k++)
            len += (size_t)sprintf(body + len, "\"k%d\":%d,", k, k);
        body[len - 1] = '}';
        body[len++] = '}';
        body[len++] = ',';
    }
    body[len - 1] = ']';
    assert_true(measure("application/json", len, &st, &n) <= (long)(2 * len) + 65536);
    assert_int_equal(n, 100);
    /* NDJSON, many fields per line: lines are records, commas are not. */
    len = 0;
    for (int i = 0; i < 9000; i++)
        len += (size_t)sprintf(body + len, "{\"id\":%d,\"payload\":\"p%d\",\"n\":1.5,\"body\":"
                               "[true,null,{\"a\":1,\"b\":2}]}\n", i, i);
    assert_true(measure("application/x-ndjson", len, &st, &n) <= (long)(2 * len) + 65536);
    assert_int_equal(n, 9000);
}

static int setup(void **state)
{
    (void)state;
#if defined(__SANITIZE_ADDRESS__)
    __sanitizer_install_malloc_and_free_hooks(on_malloc, on_free);
#else
    printf("    (not a sanitizer build: peaks are not measured, only statuses)\n");
#endif
    body = malloc(MIB + 64);
    return body == NULL || sw_config_load_string(&cfg, "m.ini",
                                                 "[sink.ev]\ntable = ev\ncolumns = id bigint "
                                                 "not null, payload text, body jsonb, n numeric, "
                                                 "t timestamptz\n") != 0;
}

static int teardown(void **state)
{
    (void)state;
    free(body);
    sw_config_free(&cfg);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused_shapes_cost_little),
        cmocka_unit_test(test_accepted_bodies_cost_their_envelope),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
