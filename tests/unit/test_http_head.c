#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "http_head.h"

static const sw_http_limits lim = {8192, "[server] max_header_bytes"};
static sw_http_head h;

/* Read `s` whole; the result of sw_http_head_read. */
static long rd(const char *s)
{
    size_t scanned = 0;
    memset(&h, 0xa5, sizeof h);
    return sw_http_head_read(&h, s, strlen(s), &scanned, &lim);
}

/* Read `s` one byte at a time, as a trickling client sends it: the same
 * verdict as reading it whole. */
static long rd_bytewise(const char *s)
{
    size_t scanned = 0, n = strlen(s);
    long rc = 0;
    for (size_t i = 1; i <= n && rc == 0; i++)
        rc = sw_http_head_read(&h, s, i, &scanned, &lim);
    return rc;
}

static void refused(const char *s, int status, const char *needle)
{
    long rc = rd(s);
    if (rc != -1 || h.status != status || (needle && strstr(h.detail, needle) == NULL))
        fail_msg("%s: rc %ld status %d detail \"%s\"", s, rc, h.status, h.detail);
    assert_int_equal(rd_bytewise(s), -1);
    assert_int_equal(h.status, status);
}

static void test_simple_get(void **state)
{
    (void)state;
    const char *s = "GET /v1/queue?x=1 HTTP/1.1\r\nHost: a\r\nX-Pad:  v w \t\r\n\r\nNEXT";
    assert_int_equal(rd(s), (long)(strlen(s) - 4));
    assert_int_equal(h.method_len, 3);
    assert_memory_equal(h.method, "GET", 3);
    assert_int_equal(h.target_len, 13);
    assert_memory_equal(h.target, "/v1/queue?x=1", 13);
    assert_int_equal(h.minor, 1);
    assert_int_equal(h.nfields, 2);
    size_t n;
    const char *v = sw_http_head_value(&h, "x-PAD", &n);
    assert_non_null(v);
    assert_int_equal(n, 3);
    assert_memory_equal(v, "v w", 3);
    assert_null(sw_http_head_value(&h, "x-pa", &n));
    assert_int_equal(h.framing, SW_HTTP_NO_BODY);
    assert_int_equal(h.keep_alive, 1);
    assert_int_equal(h.expect_continue, 0);
    assert_int_equal(rd_bytewise(s), (long)(strlen(s) - 4));
}

static void test_incomplete_waits(void **state)
{
    (void)state;
    assert_int_equal(rd(""), 0);
    assert_int_equal(rd("GET / HTTP/1.1\r\nHost: a\r\n"), 0);
    assert_int_equal(rd("GET / HTTP/1.1\r\nHost: a\r\n\r"), 0);
    /* The scan resumes where it stopped and still sees the end. */
    const char *s = "GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    size_t scanned = 0;
    assert_int_equal(sw_http_head_read(&h, s, 25, &scanned, &lim), 0);
    assert_int_equal(scanned, 25);
    assert_int_equal(sw_http_head_read(&h, s, 26, &scanned, &lim), 0);
    assert_int_equal(scanned, 25);       /* a trailing CR is looked at again */
    assert_int_equal(sw_http_head_read(&h, s, 27, &scanned, &lim), 27);
}

static void test_framing(void **state)
{
    (void)state;
    assert_true(rd("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0029\r\n\r\n") > 0);
    assert_int_equal(h.framing, SW_HTTP_LENGTH);
    assert_int_equal(h.content_length, 29);
    assert_true(rd("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  ChUnKeD \r\n\r\n") > 0);
    assert_int_equal(h.framing, SW_HTTP_CHUNKED);
    assert_true(rd("POST /a HTTP/1.1\r\nHost: a\r\ncontent-length: 99999999999999999999\r\n\r\n")
                > 0);
    assert_int_equal(h.content_length, UINT64_MAX);
    assert_true(rd("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n")
                > 0);
    assert_int_equal(h.content_length, UINT64_MAX);

    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n",
            400, "more than once");
    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked"
            "\r\n\r\n", 400, "both");
    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 0x10\r\n\r\n", 400, "digits");
    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\n", 400, NULL);
    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400, NULL);
    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", 400, NULL);
    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length: 2 9\r\n\r\n", 400, NULL);
    refused("POST /a HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400, NULL);
    refused("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400,
            "exactly");
    refused("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 400,
            NULL);
    refused("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip\r\n\r\n", 501, "chunked");
    refused("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501, NULL);
    refused("POST /a HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n"
            "Transfer-Encoding: chunked\r\n\r\n", 400, NULL);
    refused("POST /a HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n", 400, "HTTP/1.0");
}

static void test_lines(void **state)
{
    (void)state;
    refused("\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "empty line");
    refused("GET / HTTP/1.1\nHost: a\r\n\r\n", 400, "bare LF");
    refused("GET / HTTP/1.1\r\nHost: a\n\n", 400, "bare LF");
    refused("GET / HTTP/1.1\r\nX: a\rb\r\nHost: a\r\n\r\n", 400, "CR");
    refused("GET / HTTP/1.1\r\nX: a\x01\r\nHost: a\r\n\r\n", 400, "control");
    refused("GET / HTTP/1.1\r\nX: a\x7f\r\nHost: a\r\n\r\n", 400, "control");
    refused("GET / HTTP/1.1\r\nX: a\r\n b\r\nHost: a\r\n\r\n", 400, "obs-fold");
    refused("GET / HTTP/1.1\r\nX: a\r\n\tb\r\nHost: a\r\n\r\n", 400, "obs-fold");
    refused("GET / HTTP/1.1\r\n \r\nHost: a\r\n\r\n", 400, "obs-fold");
    refused("GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400, "colon");
    refused("GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", 400, "colon");
    refused("GET / HTTP/1.1\r\n: a\r\nHost: a\r\n\r\n", 400, "empty name");
    refused("GET / HTTP/1.1\r\n\xffX: a\r\nHost: a\r\n\r\n", 400, "name");
    refused("GET / HTTP/1.1\r\nX Y: a\r\nHost: a\r\n\r\n", 400, NULL);
    refused("GET / HTTP/1.1\r\nNoColon\r\nHost: a\r\n\r\n", 400, NULL);
    /* obs-text is allowed in values (and only there). */
    assert_true(rd("GET / HTTP/1.1\r\nX: caf\xc3\xa9\r\nHost: a\r\n\r\n") > 0);
}

static void test_request_line(void **state)
{
    (void)state;
    refused("GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400, "single spaces");
    refused("GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL);
    refused("GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400, NULL);
    refused("GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "absolute");
    refused("GET a/b HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL);
    refused("GET /caf\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", 400, "percent-encode");
    refused("GET / http/1.1\r\nHost: a\r\n\r\n", 400, NULL);
    refused("GET / HTTP/1\r\nHost: a\r\n\r\n", 400, NULL);
    refused("GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505, NULL);
    refused("GET / HTTP/9.9\r\nHost: a\r\n\r\n", 505, NULL);
    refused("GET /\r\nHost: a\r\n\r\n", 400, NULL);
    refused("G(T / HTTP/1.1\r\nHost: a\r\n\r\n", 400, NULL);
    assert_true(rd("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n") > 0);
    assert_true(rd("GET / HTTP/1.2\r\nHost: a\r\n\r\n") > 0);
    assert_int_equal(h.minor, 1);
}

static void test_host_and_singletons(void **state)
{
    (void)state;
    refused("GET / HTTP/1.1\r\n\r\n", 400, "Host");
    refused("GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "host");
    refused("GET / HTTP/1.1\r\nHost: a\r\nAuthorization: a\r\nauthorization: b\r\n\r\n", 400,
            "authorization");
    refused("GET / HTTP/1.1\r\nHost: a\r\nContent-Type: a\r\nCONTENT-TYPE: a\r\n\r\n", 400,
            NULL);
    refused("GET / HTTP/1.1\r\nHost: a\r\nIdempotency-Key: a\r\nIdempotency-Key: b\r\n\r\n",
            400, NULL);
    /* Other fields may repeat. */
    assert_true(rd("GET / HTTP/1.1\r\nHost: a\r\nAccept: a\r\nAccept: b\r\n\r\n") > 0);
    assert_int_equal(h.nfields, 3);
    /* HTTP/1.0 needs no Host, and closes unless asked not to. */
    assert_true(rd("GET / HTTP/1.0\r\n\r\n") > 0);
    assert_int_equal(h.minor, 0);
    assert_int_equal(h.keep_alive, 0);
    assert_true(rd("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
    assert_int_equal(h.keep_alive, 1);
    assert_true(rd("GET / HTTP/1.1\r\nHost: a\r\nConnection: foo, close\r\n\r\n") > 0);
    assert_int_equal(h.keep_alive, 0);
    assert_true(rd("GET / HTTP/1.1\r\nHost:\r\n\r\n") > 0);
}

static void test_expect_and_limits(void **state)
{
    (void)state;
    assert_true(rd("POST / HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 3"
                   "\r\n\r\n") > 0);
    assert_int_equal(h.expect_continue, 1);
    refused("POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417, NULL);
    /* HTTP/1.0 has no expectations: ignored, whatever they say. */
    assert_true(rd("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n") > 0);
    assert_int_equal(h.expect_continue, 0);
    assert_true(rd("POST / HTTP/1.0\r\nExpect: 200-ok\r\n\r\n") > 0);

    char big[9000];
    snprintf(big, sizeof big, "GET / HTTP/1.1\r\nHost: a\r\nX: %08300d\r\n\r\n", 1);
    refused(big, 431, "8192");
    /* The limit applies before the end is seen, too. */
    big[8200] = '\0';
    assert_int_equal(rd(big), -1);
    assert_int_equal(h.status, 431);
    assert_non_null(strstr(h.detail, "over 8192 bytes ([server] max_header_bytes)"));

    char many[4096];
    size_t n = (size_t)snprintf(many, sizeof many, "GET / HTTP/1.1\r\nHost: a\r\n");
    for (int i = 0; i < SW_HTTP_MAX_FIELDS - 1; i++)
        n += (size_t)snprintf(many + n, sizeof many - n, "X%d: v\r\n", i);
    snprintf(many + n, sizeof many - n, "\r\n");
    assert_true(rd(many) > 0);
    assert_int_equal(h.nfields, SW_HTTP_MAX_FIELDS);
    snprintf(many + n, sizeof many - n, "Y: v\r\n\r\n");
    refused(many, 431, "header fields");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_simple_get),
        cmocka_unit_test(test_incomplete_waits),
        cmocka_unit_test(test_framing),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_request_line),
        cmocka_unit_test(test_host_and_singletons),
        cmocka_unit_test(test_expect_and_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
