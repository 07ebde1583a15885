#include "envelope.h"

#include <stdio.h>
#include <string.h>

#include "hash.h"
#include "jobid.h"

static void put_be64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (56 - 8 * i));
}

int sw_envelope_begin(msgpack_packer *pk, const char *job_id, const char *sink,
                      uint64_t shape, uint32_t ncolumns, int64_t enqueued_us, int v3,
                      enum sw_op op)
{
    /* msgpack_pack_uint32/64 and str would pick the shortest forms; the
     * Redis scripts need fixed widths and offsets, so write those bytes
     * directly. */
    unsigned char head[SW_ENVELOPE_SINK_OFFSET_V3];
    size_t n = SW_ENVELOPE_SINK_OFFSET;
    if (strlen(job_id) != SW_ENVELOPE_ID_LEN)
        return -1;
    v3 = v3 || op != SW_OP_WRITE;
    head[0] = v3 ? SW_ENVELOPE_V3 : SW_ENVELOPE_VERSION;
    head[1] = 0xce;
    memset(head + 2, 0, 4);
    head[6] = 0xcf;
    put_be64(head + 7, (uint64_t)enqueued_us);
    head[SW_ENVELOPE_ID_OFFSET] = 0xd9;
    head[SW_ENVELOPE_ID_OFFSET + 1] = SW_ENVELOPE_ID_LEN;
    memcpy(head + SW_ENVELOPE_ID_OFFSET + 2, job_id, SW_ENVELOPE_ID_LEN);
    head[SW_ENVELOPE_SHAPE_OFFSET] = 0xcf;
    put_be64(head + SW_ENVELOPE_SHAPE_OFFSET + 1, shape);
    if (v3) {
        head[SW_ENVELOPE_SEQ_OFFSET] = 0xcf;
        put_be64(head + SW_ENVELOPE_SEQ_OFFSET + 1, 0);
        head[SW_ENVELOPE_KIND_OFFSET] = (unsigned char)op;
        n = SW_ENVELOPE_SINK_OFFSET_V3;
    }
    if (pk->callback(pk->data, (const char *)head, n) != 0 ||
        msgpack_pack_str_with_body(pk, sink, strlen(sink)) != 0 ||
        msgpack_pack_uint32(pk, ncolumns) != 0)
        return -1;
    return 0;
}

int sw_envelope_pack_absent(msgpack_packer *pk)
{
    static const char absent[3] = {(char)0xd4, 1, 0};
    return pk->callback(pk->data, absent, sizeof absent);
}

void sw_envelope_finish(char *data, uint32_t nrecords)
{
    unsigned char *p = (unsigned char *)data + SW_ENVELOPE_COUNT_OFFSET + 1;
    p[0] = (unsigned char)(nrecords >> 24);
    p[1] = (unsigned char)(nrecords >> 16);
    p[2] = (unsigned char)(nrecords >> 8);
    p[3] = (unsigned char)nrecords;
}

int sw_envelope_peek(const void *data, size_t len, uint32_t *nrecords, int64_t *enqueued_us)
{
    const unsigned char *p = data;
    if (len < SW_ENVELOPE_HEAD_LEN || p[0] < 1 || p[0] > SW_ENVELOPE_V3 || p[1] != 0xce ||
        p[6] != 0xcf)
        return -1;
    *nrecords = (uint32_t)p[2] << 24 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 8 | p[5];
    uint64_t t = 0;
    for (int i = 0; i < 8; i++)
        t = t << 8 | p[7 + i];
    *enqueued_us = (int64_t)t;
    return 0;
}

uint32_t sw_envelope_script_count(const void *data, size_t len)
{
    if (len < SW_ENVELOPE_HEAD_LEN)
        return 0;
    const unsigned char *p = (const unsigned char *)data + SW_ENVELOPE_COUNT_OFFSET + 1;
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* A bounded reader: every read checks the bytes that remain. */
typedef struct reader {
    const unsigned char *p, *end;
} reader;

static int need(reader *r, size_t n)
{
    return (size_t)(r->end - r->p) >= n ? 0 : -1;
}

static uint64_t be(const unsigned char *p, int n)
{
    uint64_t v = 0;
    for (int i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Read one scalar value. Arrays and maps are not values here. */
static int read_value(reader *r, sw_value *v)
{
    if (need(r, 1) != 0)
        return -1;
    unsigned char t = *r->p++;
    int len_bytes = 0;
    if (t <= 0x7f) {
        v->kind = SW_V_INT; v->i = t; return 0;
    }
    if (t >= 0xe0) {
        v->kind = SW_V_INT; v->i = (int8_t)t; return 0;
    }
    if (t >= 0xa0 && t <= 0xbf) {
        v->n = t & 0x1f;
        goto str_body;
    }
    switch (t) {
    case 0xc0: v->kind = SW_V_NULL; return 0;
    case 0xd4:   /* fixext1: only the absent marker */
        if (need(r, 2) != 0 || r->p[0] != 1 || r->p[1] != 0) return -1;
        r->p += 2;
        v->kind = SW_V_ABSENT;
        return 0;
    case 0xc2: v->kind = SW_V_BOOL; v->i = 0; return 0;
    case 0xc3: v->kind = SW_V_BOOL; v->i = 1; return 0;
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        int n = 1 << (t - 0xcc);
        if (need(r, (size_t)n) != 0) return -1;
        uint64_t u = be(r->p, n);
        r->p += n;
        if (u > INT64_MAX) return -1;
        v->kind = SW_V_INT; v->i = (int64_t)u;
        return 0;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        int n = 1 << (t - 0xd0);
        if (need(r, (size_t)n) != 0) return -1;
        uint64_t u = be(r->p, n);
        r->p += n;
        int shift = 64 - 8 * n;
        v->kind = SW_V_INT;
        v->i = shift ? (int64_t)(u << shift) >> shift : (int64_t)u;
        return 0;
    }
    case 0xcb: {
        if (need(r, 8) != 0) return -1;
        uint64_t u = be(r->p, 8);
        r->p += 8;
        memcpy(&v->f, &u, sizeof v->f);
        v->kind = SW_V_FLOAT;
        return 0;
    }
    case 0xd9: len_bytes = 1; break;
    case 0xda: len_bytes = 2; break;
    case 0xdb: len_bytes = 4; break;
    default: return -1;
    }
    if (need(r, (size_t)len_bytes) != 0)
        return -1;
    v->n = (size_t)be(r->p, len_bytes);
    r->p += len_bytes;
str_body:
    if (need(r, v->n) != 0)
        return -1;
    v->kind = SW_V_STR;
    v->s = (const char *)r->p;
    r->p += v->n;
    return 0;
}

static int read_array_header(reader *r, uint32_t *n)
{
    if (need(r, 1) != 0)
        return -1;
    unsigned char t = *r->p++;
    if (t >= 0x90 && t <= 0x9f) {
        *n = t & 0x0f;
        return 0;
    }
    int nb = t == 0xdc ? 2 : t == 0xdd ? 4 : 0;
    if (nb == 0 || need(r, (size_t)nb) != 0)
        return -1;
    *n = (uint32_t)be(r->p, nb);
    r->p += nb;
    return 0;
}

static int read_str(reader *r, char *out, size_t outlen)
{
    sw_value v;
    if (read_value(r, &v) != 0 || v.kind != SW_V_STR || v.n >= outlen)
        return -1;
    memcpy(out, v.s, v.n);
    out[v.n] = '\0';
    return 0;
}

/* The header after the fixed head: id, then by version the shape, the
 * sequence and the operation, then the sink name. */
static int read_header(reader *r, sw_envelope *env)
{
    if (read_str(r, env->job_id, sizeof env->job_id) != 0)
        return -1;
    if (env->version >= 2) {
        if (need(r, 9) != 0 || r->p[0] != 0xcf)
            return -1;
        env->shape = be(r->p + 1, 8);
        r->p += 9;
    }
    if (env->version >= 3) {
        if (need(r, 10) != 0 || r->p[0] != 0xcf || r->p[9] > SW_OP_DELETE)
            return -1;
        env->seq = be(r->p + 1, 8);
        env->op = (enum sw_op)r->p[9];
        r->p += 10;
    }
    return read_str(r, env->sink, sizeof env->sink);
}

int sw_envelope_decode(const void *data, size_t len, sw_envelope *env, char *errstr,
                       size_t errlen)
{
    reader r = {data, (const unsigned char *)data + len};
    sw_value v;
    memset(env, 0, sizeof *env);
    if (sw_envelope_peek(data, len, &env->nrecords, &env->enqueued_us) != 0) {
        snprintf(errstr, errlen, "not a version 1, 2 or 3 envelope");
        return -1;
    }
    env->version = ((const unsigned char *)data)[0];
    r.p += SW_ENVELOPE_HEAD_LEN;
    if (read_header(&r, env) != 0 || read_value(&r, &v) != 0 || v.kind != SW_V_INT || v.i < 1 ||
        v.i > SW_ENVELOPE_MAX_COLUMNS) {
        snprintf(errstr, errlen, "bad envelope header");
        return -1;
    }
    /* The id names Redis keys and goes to PostgreSQL as a uuid: only the
     * shape the server writes. */
    if (!sw_jobid_valid(env->job_id, strlen(env->job_id))) {
        snprintf(errstr, errlen, "bad job id in envelope header");
        return -1;
    }
    env->ncolumns = (uint32_t)v.i;
    /* Each record takes at least 1 + ncolumns bytes: check the claimed
     * count against what is present before walking it. */
    if ((uint64_t)env->nrecords * (1 + env->ncolumns) > (uint64_t)len) {
        snprintf(errstr, errlen, "record count %u exceeds the %zu bytes present",
                 env->nrecords, len);
        return -1;
    }
    env->records = r.p;
    for (uint32_t i = 0; i < env->nrecords; i++) {
        uint32_t n;
        if (read_array_header(&r, &n) != 0 || n != env->ncolumns) {
            snprintf(errstr, errlen, "record %u: expected an array of %u values", i,
                     env->ncolumns);
            return -1;
        }
        for (uint32_t c = 0; c < n; c++) {
            if (read_value(&r, &v) != 0 || (v.kind == SW_V_ABSENT && env->version < 3)) {
                snprintf(errstr, errlen, "record %u value %u: truncated or bad type", i, c);
                return -1;
            }
        }
    }
    if (r.p != r.end) {
        snprintf(errstr, errlen, "%zu trailing bytes", (size_t)(r.end - r.p));
        return -1;
    }
    env->end = r.end;
    return 0;
}

size_t sw_envelope_list_id(const void *data, size_t len, char out[SW_ENVELOPE_ID_LEN + 1])
{
    const unsigned char *p = data;
    out[0] = '\0';
    if (len < SW_ENVELOPE_ID_OFFSET + 2 + SW_ENVELOPE_ID_LEN || p[SW_ENVELOPE_ID_OFFSET] != 0xd9 ||
        p[SW_ENVELOPE_ID_OFFSET + 1] != SW_ENVELOPE_ID_LEN)
        return 0;
    memcpy(out, p + SW_ENVELOPE_ID_OFFSET + 2, SW_ENVELOPE_ID_LEN);
    out[SW_ENVELOPE_ID_LEN] = '\0';
    return SW_ENVELOPE_ID_LEN;
}

int sw_envelope_next(const sw_envelope *env, const unsigned char **cursor, sw_value *vals)
{
    reader r = {*cursor, env->end};
    uint32_t n;
    if (r.p >= r.end || read_array_header(&r, &n) != 0 || n != env->ncolumns)
        return -1;
    for (uint32_t c = 0; c < n; c++) {
        if (read_value(&r, &vals[c]) != 0)
            return -1;
    }
    *cursor = r.p;
    return 0;
}

int sw_envelope_first_key_hash(const void *data, size_t len, const unsigned char *is_key,
                               int nkey_flags, uint64_t *out)
{
    reader r = {data, (const unsigned char *)data + len};
    uint32_t nrecords, n;
    int64_t t;
    sw_envelope env;
    sw_value v;
    if (sw_envelope_peek(data, len, &nrecords, &t) != 0)
        return -1;
    memset(&env, 0, sizeof env);
    env.version = ((const unsigned char *)data)[0];
    r.p += SW_ENVELOPE_HEAD_LEN;
    if (read_header(&r, &env) != 0 || read_value(&r, &v) != 0)
        return -1;
    if (nrecords == 0)
        return 0;
    if (read_array_header(&r, &n) != 0)
        return -1;
    uint64_t h = 1469598103934665603ULL;
    int keyed = 0;
    for (uint32_t c = 0; c < n; c++) {
        if (read_value(&r, &v) != 0)
            return -1;
        if ((int)c >= nkey_flags || !is_key[c])
            continue;
        /* Numbers big-endian, so every server routes a key alike. */
        unsigned char num[8];
        uint64_t bits = 0, part = 0;
        if (v.kind == SW_V_STR) {
            part = sw_hash64(v.s, v.n);
        } else if (v.kind != SW_V_NULL) {
            if (v.kind == SW_V_FLOAT) {
                double f = v.f == 0 ? 0 : v.f;   /* -0.0 is 0.0 */
                memcpy(&bits, &f, sizeof bits);
            } else {
                bits = (uint64_t)v.i;
            }
            for (int b = 0; b < 8; b++)
                num[b] = (unsigned char)(bits >> (56 - 8 * b));
            part = sw_hash64(num, sizeof num);
        }
        h = (h ^ part ^ (uint64_t)v.kind) * 1099511628211ULL;
        keyed = 1;
    }
    *out = h;
    return keyed;
}

int sw_envelope_set_shard(void *data, size_t len, int shard)
{
    unsigned char *p = data;
    if (len < SW_ENVELOPE_ID_OFFSET + 2 + SW_ENVELOPE_ID_LEN || p[SW_ENVELOPE_ID_OFFSET] != 0xd9 ||
        p[SW_ENVELOPE_ID_OFFSET + 1] != SW_ENVELOPE_ID_LEN)
        return -1;
    sw_jobid_set_shard((char *)p + SW_ENVELOPE_ID_OFFSET + 2, shard);
    return 0;
}
