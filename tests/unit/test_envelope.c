/* The queue envelope and the COPY row, as bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "copyrow.h"
#include "envelope.h"
#include "sink.h"

#define ID "0190a0e4-7b8c-7abc-8123-456789abcdef"

#define SHAPE 0x1122334455667788ull

/* Header of a version 2, 2-column envelope for sink "t" at time
 * 0x0102030405060708 with shape SHAPE, with the record count patched in. */
static size_t header(unsigned char *out, uint32_t nrecords)
{
    const unsigned char fixed[] = {0x02, 0xce, 0, 0, 0, 0, 0xcf, 1, 2, 3, 4, 5, 6, 7, 8};
    size_t n = 0;
    memcpy(out, fixed, sizeof fixed);
    n += sizeof fixed;
    out[n++] = 0xd9;   /* str8: 36 is over fixstr's 31 */
    out[n++] = 36;
    memcpy(out + n, ID, 36);
    n += 36;
    out[n++] = 0xcf;   /* the shape, fixed width at byte 53 */
    for (int i = 0; i < 8; i++)
        out[n++] = (unsigned char)(SHAPE >> (56 - 8 * i));
    out[n++] = 0xa1;
    out[n++] = 't';
    out[n++] = 0x02;   /* two columns */
    sw_envelope_finish((char *)out, nrecords);
    return n;
}

static void test_encode_matches_bytes(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    unsigned char want[128];
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(
        sw_envelope_begin(&pk, ID, "t", SHAPE, 2, 0x0102030405060708LL, 0, SW_OP_WRITE), 0);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_int64(&pk, -1);
    msgpack_pack_str_with_body(&pk, "a\tb", 3);
    sw_envelope_finish(sb.data, 1);
    size_t n = header(want, 1);
    const unsigned char rec[] = {0x92, 0xff, 0xa3, 'a', '\t', 'b'};
    memcpy(want + n, rec, sizeof rec);
    n += sizeof rec;
    assert_int_equal(sb.size, n);
    assert_memory_equal(sb.data, want, n);

    uint32_t count;
    int64_t when;
    assert_int_equal(sw_envelope_peek(sb.data, sb.size, &count, &when), 0);
    assert_int_equal(count, 1);
    assert_int_equal(when, 0x0102030405060708LL);
    char lid[SW_ENVELOPE_ID_LEN + 1];
    assert_int_equal(sw_envelope_list_id(sb.data, sb.size, lid), 36);
    assert_string_equal(lid, ID);
    msgpack_sbuffer_destroy(&sb);
}

/* A job as release 0.1 queued it (bytes from tests/integration/fixtures/
 * redis-0.1.json): version 1, no shape. It must decode for as long as
 * such jobs may wait in a queue. */
static const unsigned char v1_job[] = {
    0x01, 0xce, 0x00, 0x00, 0x00, 0x01, 0xcf, 0x00, 0x06, 0x61, 0x9c, 0x15, 0xd3, 0xa5, 0x18,
    0xd9, 0x24, 0x30, 0x31, 0x61, 0x32, 0x33, 0x34, 0x33, 0x65, 0x2d, 0x65, 0x65, 0x38, 0x30,
    0x2d, 0x37, 0x33, 0x32, 0x63, 0x2d, 0x39, 0x63, 0x34, 0x34, 0x2d, 0x31, 0x33, 0x65, 0x64,
    0x63, 0x37, 0x34, 0x38, 0x66, 0x39, 0x61, 0x35, 0xa6, 0x65, 0x76, 0x65, 0x6e, 0x74, 0x73,
    0x02, 0x92, 0xcd, 0x01, 0x32, 0xa8, 0x71, 0x75, 0x65, 0x75, 0x65, 0x64, 0x2d, 0x36};

static void test_decode_release_01(void **state)
{
    (void)state;
    sw_envelope env;
    char err[128], lid[SW_ENVELOPE_ID_LEN + 1];
    sw_value v[2];
    assert_int_equal(sw_envelope_decode(v1_job, sizeof v1_job, &env, err, sizeof err), 0);
    assert_int_equal(env.version, 1);
    assert_true(env.shape == 0);
    assert_string_equal(env.job_id, "01a2343e-ee80-732c-9c44-13edc748f9a5");
    assert_string_equal(env.sink, "events");
    assert_int_equal(env.nrecords, 1);
    assert_int_equal(env.ncolumns, 2);
    assert_true(env.enqueued_us == 0x0006619c15d3a518LL);
    const unsigned char *cur = env.records;
    assert_int_equal(sw_envelope_next(&env, &cur, v), 0);
    assert_int_equal(v[0].kind, SW_V_INT);
    assert_int_equal(v[0].i, 306);
    assert_int_equal(v[1].kind, SW_V_STR);
    assert_memory_equal(v[1].s, "queued-6", 8);
    /* The scripts find its id at the same bytes as in version 2. */
    assert_int_equal(sw_envelope_list_id(v1_job, sizeof v1_job, lid), 36);
    assert_string_equal(lid, env.job_id);
    assert_int_equal(sw_envelope_list_id("junk", 4, lid), 0);
    assert_string_equal(lid, "");
}

static void test_decode_values(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t n = header(buf, 2);
    const unsigned char recs[] = {
        0x92, 0xc0, 0xc3,                               /* [nil, true] */
        0x92, 0xd1, 0xff, 0x00,                          /* [int16 -256, */
        0xcb, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0,              /*  1.5] */
    };
    memcpy(buf + n, recs, sizeof recs);
    n += sizeof recs;
    sw_envelope env;
    char err[128];
    sw_value v[2];
    assert_int_equal(sw_envelope_decode(buf, n, &env, err, sizeof err), 0);
    assert_string_equal(env.job_id, ID);
    assert_string_equal(env.sink, "t");
    assert_int_equal(env.version, 2);
    assert_true(env.shape == SHAPE);
    assert_int_equal(env.ncolumns, 2);
    assert_int_equal(env.nrecords, 2);
    const unsigned char *cur = env.records;
    assert_int_equal(sw_envelope_next(&env, &cur, v), 0);
    assert_int_equal(v[0].kind, SW_V_NULL);
    assert_int_equal(v[1].kind, SW_V_BOOL);
    assert_int_equal(v[1].i, 1);
    assert_int_equal(sw_envelope_next(&env, &cur, v), 0);
    assert_int_equal(v[0].kind, SW_V_INT);
    assert_int_equal(v[0].i, -256);
    assert_int_equal(v[1].kind, SW_V_FLOAT);
    assert_true(v[1].f == 1.5);
    assert_int_equal(sw_envelope_next(&env, &cur, v), -1);
}

static void expect_bad(const unsigned char *buf, size_t n, const char *want)
{
    sw_envelope env;
    char err[128];
    assert_int_equal(sw_envelope_decode(buf, n, &env, err, sizeof err), -1);
    if (strstr(err, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", err, want);
}

static void test_decode_rejects(void **state)
{
    (void)state;
    unsigned char buf[256];
    size_t n = header(buf, 1);
    const unsigned char rec[] = {0x92, 0xc0, 0xa3, 'a', 'b', 'c'};
    memcpy(buf + n, rec, sizeof rec);
    /* Every truncation of a good envelope is refused, never over-read. */
    for (size_t cut = 0; cut < n + sizeof rec; cut++) {
        sw_envelope env;
        char err[128];
        assert_int_equal(sw_envelope_decode(buf, cut, &env, err, sizeof err), -1);
    }
    expect_bad(buf, n + sizeof rec + 1, "trailing bytes");
    /* A count the bytes cannot hold is refused before any walk. */
    sw_envelope_finish((char *)buf, 0xffffffffu);
    expect_bad(buf, n + sizeof rec, "exceeds the");
    sw_envelope_finish((char *)buf, 1);
    buf[n] = 0x93;   /* three values where the sink has two */
    expect_bad(buf, n + sizeof rec, "expected an array of 2 values");
    buf[n] = 0x92;
    buf[n + 1] = 0xc1;   /* never-used msgpack byte */
    expect_bad(buf, n + sizeof rec, "bad type");
    buf[0] = 0x04;
    expect_bad(buf, n + sizeof rec, "not a version 1, 2 or 3 envelope");
    buf[0] = 0x02;
    buf[53] = 0xce;   /* the shape's fixed-width marker */
    expect_bad(buf, n + sizeof rec, "bad envelope header");
    buf[53] = 0xcf;

    /* The fuzzer's find: a forged header claiming more columns than any
     * caller's value array holds (here 0x7304, with no records). */
    static const unsigned char forged[] = {
        0x01, 0xce, 0x00, 0x00, 0x00, 0x00, 0xcf, 0x35, 0x36, 0x37, 0x39, 0x35, 0xaa, 0xaa,
        0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa, 0xaa,
        0xaa, 0xaa, 0x61, 0x62, 0xc8, 0xc8, 0xc8, 0xc8, 0xc8, 0xcd, 0x73, 0x04};
    expect_bad(forged, sizeof forged, "bad envelope header");
    n = header(buf, 0);
    buf[n - 1] = 0xcc;   /* uint8 129: one column too many */
    buf[n] = 129;
    expect_bad(buf, n + 1, "bad envelope header");
    buf[n] = 128;
    /* A job id of the right length but not a UUID. */
    buf[17 + 8] = ',';   /* the first dash (the id starts at 17) */
    expect_bad(buf, n + 1, "bad job id");
    buf[17 + 8] = '-';
    sw_envelope env;
    char err[128];
    assert_int_equal(sw_envelope_decode(buf, n + 1, &env, err, sizeof err), 0);
    assert_int_equal(env.ncolumns, SW_ENVELOPE_MAX_COLUMNS);
}

/* A one-record job (key column k, then v) in `sb`. */
static void kv_job(msgpack_sbuffer *sb, const char *k, int64_t v)
{
    msgpack_packer pk;
    msgpack_sbuffer_clear(sb);
    msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    assert_int_equal(sw_envelope_begin(&pk, ID, "kv", SHAPE, 2, 1, 0, SW_OP_WRITE), 0);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, k, strlen(k));
    msgpack_pack_int64(&pk, v);
    sw_envelope_finish(sb->data, 1);
}

/* Jobs to one key hash alike whatever else they hold; the shard is
 * written into the envelope's id. */
static void test_first_key_hash_and_shard(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    const unsigned char key_k[] = {1, 0}, no_key[] = {0, 0}, key_v[] = {0, 1};
    uint64_t a, b, c;
    kv_job(&sb, "alpha", 1);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, sb.size, key_k, 2, &a), 1);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, sb.size, no_key, 2, &c), 0);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, sb.size - 3, key_v, 2, &c), -1);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, 10, key_k, 2, &c), -1);
    kv_job(&sb, "alpha", 99);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, sb.size, key_k, 2, &b), 1);
    assert_true(a == b);
    kv_job(&sb, "alphb", 1);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, sb.size, key_k, 2, &c), 1);
    assert_true(a != c);
    assert_int_equal(sw_envelope_set_shard(sb.data, sb.size, 42), 0);
    char lid[SW_ENVELOPE_ID_LEN + 1];
    assert_int_equal(sw_envelope_list_id(sb.data, sb.size, lid), 36);
    assert_memory_equal(lid + 21, "2a", 2);
    assert_memory_equal(lid, ID, 21);
    assert_string_equal(lid + 23, ID + 23);
    assert_int_equal(sw_envelope_set_shard(sb.data, 20, 1), -1);
    msgpack_sbuffer_destroy(&sb);
}

static void test_copyrow(void **state)
{
    (void)state;
    sw_sink s;
    char err[128];
    memset(&s, 0, sizeof s);
    assert_int_equal(sw_sink_parse_columns(&s, "a text, b bigint, c boolean, d double precision, e text",
                                           err, sizeof err), 0);
    sw_value v[5] = {
        {.kind = SW_V_STR, .s = "x\\y\tz\nw\r", .n = 8},
        {.kind = SW_V_INT, .i = -7},
        {.kind = SW_V_BOOL, .i = 1},
        {.kind = SW_V_FLOAT, .f = 0.5},
        {.kind = SW_V_NULL},
    };
    sw_buf out = SW_BUF_INIT;
    assert_int_equal(sw_copyrow_append(&out, 42, 3, &s, v), 0);
    const char want[] = "42\t3\tx\\\\y\\tz\\nw\\r\t-7\tt\t0.5\t\\N\n";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    sw_buf_free(&out);
    sw_sink_clear(&s);
}

/* Version 3: the sequence and the operation at their offsets, absent
 * values, and a delete routed to its key's shard like a write. */
static void test_version_3(void **state)
{
    (void)state;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    sw_envelope env;
    sw_value v[2];
    char err[128];
    const unsigned char key_k[] = {1, 0};
    uint64_t hw, hd;
    msgpack_sbuffer_init(&sb);
    kv_job(&sb, "alpha", 1);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, sb.size, key_k, 2, &hw), 1);
    msgpack_sbuffer_clear(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    assert_int_equal(sw_envelope_begin(&pk, ID, "kv", SHAPE, 2, 5, 0, SW_OP_DELETE), 0);
    msgpack_pack_array(&pk, 2);
    msgpack_pack_str_with_body(&pk, "alpha", 5);
    assert_int_equal(sw_envelope_pack_absent(&pk), 0);
    sw_envelope_finish(sb.data, 1);
    unsigned char *b = (unsigned char *)sb.data;
    assert_int_equal(b[0], 3);
    assert_int_equal(b[SW_ENVELOPE_SEQ_OFFSET], 0xcf);
    assert_int_equal(b[SW_ENVELOPE_KIND_OFFSET], SW_OP_DELETE);
    assert_int_equal(b[SW_ENVELOPE_SINK_OFFSET_V3], 0xa2);
    /* What the enqueue script does: a sequence into its eight bytes. */
    b[SW_ENVELOPE_SEQ_OFFSET + 7] = 0x01;
    b[SW_ENVELOPE_SEQ_OFFSET + 8] = 0x02;
    assert_int_equal(sw_envelope_decode(sb.data, sb.size, &env, err, sizeof err), 0);
    assert_int_equal(env.version, 3);
    assert_int_equal(env.op, SW_OP_DELETE);
    assert_int_equal(env.seq, 0x0102);
    assert_string_equal(env.sink, "kv");
    assert_string_equal(env.job_id, ID);
    const unsigned char *cur = env.records;
    assert_int_equal(sw_envelope_next(&env, &cur, v), 0);
    assert_int_equal(v[0].kind, SW_V_STR);
    assert_int_equal(v[1].kind, SW_V_ABSENT);
    assert_int_equal(sw_envelope_first_key_hash(sb.data, sb.size, key_k, 2, &hd), 1);
    assert_true(hw == hd);

    sw_sink s;
    memset(&s, 0, sizeof s);
    assert_int_equal(sw_sink_parse_columns(&s, "k text, v bigint", err, sizeof err), 0);
    s.mode = SW_MODE_MERGE;   /* absent is "left as it is" only there */
    sw_buf out = SW_BUF_INIT;
    assert_int_equal(sw_copyrow_append_keyed(&out, 4, 2, 258, 1, &s, v), 0);
    const char want[] = "4\t2\t258\tt\t10\talpha\t\\N\n";
    assert_int_equal(out.len, strlen(want));
    assert_memory_equal(out.data, want, out.len);
    s.mode = SW_MODE_UPSERT;   /* a merge job flushed after the sink changed */
    sw_buf_reset(&out);
    assert_int_equal(sw_copyrow_append_keyed(&out, 4, 2, 258, 0, &s, v), 0);
    assert_memory_equal(out.data, "4\t2\t258\tf\t11\t", 13);
    sw_buf_free(&out);
    sw_sink_clear(&s);

    /* An absent value in a version 2 envelope, or an operation past
     * delete, is corrupt. */
    b[SW_ENVELOPE_KIND_OFFSET] = 2;
    assert_int_equal(sw_envelope_decode(sb.data, sb.size, &env, err, sizeof err), -1);
    msgpack_sbuffer_destroy(&sb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_encode_matches_bytes),
        cmocka_unit_test(test_decode_values),
        cmocka_unit_test(test_decode_release_01),
        cmocka_unit_test(test_decode_rejects),
        cmocka_unit_test(test_copyrow),
        cmocka_unit_test(test_first_key_hash_and_shard),
        cmocka_unit_test(test_version_3),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
