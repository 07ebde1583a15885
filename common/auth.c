#include "auth.h"

#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "buf.h"
#include "hex.h"

static void sha256(const char *s, size_t n, unsigned char out[32])
{
    unsigned int len = 32;
    /* EVP_Digest only fails when the digest is unavailable, which for
     * SHA-256 in the default provider means a broken libcrypto. */
    if (EVP_Digest(s, n, out, &len, EVP_sha256(), NULL) != 1)
        memset(out, 0, 32);
}

static const char hexdigits[] = "0123456789abcdef";

void sw_auth_hash_hex(const char *token, size_t n, char out[SW_AUTH_HASH_HEX])
{
    unsigned char h[32];
    sha256(token, n, h);
    for (int i = 0; i < 32; i++) {
        out[2 * i] = hexdigits[h[i] >> 4];
        out[2 * i + 1] = hexdigits[h[i] & 15];
    }
    out[64] = '\0';
}

int sw_auth_token_new(char out[SW_AUTH_TOKEN_MAX])
{
    unsigned char r[32];
    size_t got = 0;
    while (got < sizeof r) {
        ssize_t k = getrandom(r + got, sizeof r - got, 0);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        got += (size_t)k;
    }
    memcpy(out, "sw_", 3);
    for (int i = 0; i < 32; i++) {
        out[3 + 2 * i] = hexdigits[r[i] >> 4];
        out[3 + 2 * i + 1] = hexdigits[r[i] & 15];
    }
    out[67] = '\0';
    return 0;
}

/* Parse "hash sinks" into `e`. 0, or -1 with a reason. */
static int parse_line(const char *line, size_t len, const sw_config *cfg, sw_auth_entry *e,
                      char *why, size_t whylen)
{
    size_t i = 0;
    memset(e, 0, sizeof *e);
    for (; i < 64; i++) {
        int hi = i < len ? sw_hex_digit((unsigned char)line[i]) : -1;
        if (hi < 0) {
            snprintf(why, whylen, "expected the token's SHA-256 as 64 hex digits, then its sinks "
                                  "(spillwayctl token new prints the line)");
            return -1;
        }
        e->hash[i / 2] = (unsigned char)(e->hash[i / 2] << 4 | hi);
    }
    unsigned char sh[32];
    sha256((const char *)e->hash, sizeof e->hash, sh);
    for (int k = 0; k < 8; k++) {
        e->scope[2 * k] = hexdigits[sh[k] >> 4];
        e->scope[2 * k + 1] = hexdigits[sh[k] & 15];
    }
    e->scope[16] = '\0';
    if (i == len || (line[i] != ' ' && line[i] != '\t')) {
        snprintf(why, whylen, "expected whitespace and the sinks (\"*\" or \"a,b\") after the hash");
        return -1;
    }
    while (i < len && (line[i] == ' ' || line[i] == '\t'))
        i++;
    const char *sinks = line + i;
    size_t sn = len - i;
    if (sn == 1 && sinks[0] == '*') {
        e->all_sinks = 1;
        return 0;
    }
    if (sn > 0 && sn + 3 > sizeof e->sinks) {
        snprintf(why, whylen, "expected the sinks (\"*\" or \"a,b\") after the hash");
        return -1;
    }
    size_t o = 0;
    e->sinks[o++] = ',';
    const char *p = sinks, *end = sinks + sn;
    while (p < end) {
        const char *comma = memchr(p, ',', (size_t)(end - p));
        const char *stop = comma ? comma : end;
        while (p < stop && (*p == ' ' || *p == '\t'))
            p++;
        size_t n = (size_t)(stop - p);
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        /* "+admin": the dashboard's actions (no sink is named so). */
        if (n == 6 && memcmp(p, "+admin", 6) == 0) {
            e->admin = 1;
            p = stop + 1;
            continue;
        }
        if (n == 1 && p[0] == '*') {
            e->all_sinks = 1;
            p = stop + 1;
            continue;
        }
        if (sw_config_sink(cfg, p, n) == NULL) {
            snprintf(why, whylen, "no sink named \"%.*s\" is configured", (int)(n > 64 ? 64 : n),
                     p);
            return -1;
        }
        memcpy(e->sinks + o, p, n);
        o += n;
        e->sinks[o++] = ',';
        p = stop + 1;
    }
    e->sinks[o] = '\0';
    if (o == 1 && !e->all_sinks && !e->admin) {
        snprintf(why, whylen, "expected the sinks (\"*\" or \"a,b\") after the hash");
        return -1;
    }
    return 0;
}

/* The table slot where `hash` is, or the empty one where it would go. The
 * digest is uniform, so its first bytes are the slot. */
static size_t slot_of(const sw_auth *a, const unsigned char hash[32])
{
    size_t i = 0;
    for (int k = 0; k < 8; k++)
        i = i << 8 | hash[k];
    i &= a->mask;
    while (a->slots[i] != 0 &&
           CRYPTO_memcmp(a->entries[a->slots[i] - 1].hash, hash, 32) != 0)
        i = (i + 1) & a->mask;
    return i;
}

int sw_auth_parse(sw_auth *a, const char *name, const char *text, const sw_config *cfg)
{
    char why[160];
    int lineno = 0;
    size_t lines = 1;
    memset(a, 0, sizeof *a);
    /* Sized once from the line count: loading is linear in the file. */
    for (const char *q = text; *q; q++)
        lines += *q == '\n';
    size_t cap = 16;
    while (cap < 2 * lines)
        cap *= 2;
    a->entries = calloc(lines, sizeof *a->entries);
    a->slots = calloc(cap, sizeof *a->slots);
    a->mask = cap - 1;
    if (a->entries == NULL || a->slots == NULL) {
        snprintf(why, sizeof why, "out of memory");
        goto fail;
    }
    const char *line = text;
    while (*line) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        lineno++;
        size_t l = len;
        while (l > 0 && (line[l - 1] == '\r' || line[l - 1] == ' ' || line[l - 1] == '\t'))
            l--;
        size_t s = 0;
        while (s < l && (line[s] == ' ' || line[s] == '\t'))
            s++;
        if (s < l && line[s] != '#') {
            sw_auth_entry *e = &a->entries[a->n];
            if (parse_line(line + s, l - s, cfg, e, why, sizeof why) != 0)
                goto fail;
            size_t i = slot_of(a, e->hash);
            if (a->slots[i] != 0) {
                snprintf(why, sizeof why, "this token's hash is already on an earlier line; "
                                          "list each token once");
                goto fail;
            }
            a->slots[i] = ++a->n;
        }
        line += len + (nl != NULL);
    }
    if (a->n == 0) {
        snprintf(a->errstr, sizeof a->errstr,
                 "%s: holds no tokens, so every request would be refused; add one with "
                 "spillwayctl token new", name);
        a->err = 1;
        return -1;
    }
    return 0;
fail:
    a->err = 1;
    snprintf(a->errstr, sizeof a->errstr, "%s:%d: %s", name, lineno, why);
    return -1;
}

int sw_auth_load(sw_auth *a, const char *path, const sw_config *cfg)
{
    sw_buf text = SW_BUF_INIT;
    int rc = -1;
    memset(a, 0, sizeof *a);
    if (sw_buf_read_file(&text, path, 1 << 20) != 0) {
        a->err = 1;
        if (errno == EFBIG)
            snprintf(a->errstr, sizeof a->errstr, "%s: larger than 1 MiB", path);
        else
            snprintf(a->errstr, sizeof a->errstr, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    int nul = sw_buf_nul_line(&text);
    if (nul) {
        a->err = 1;
        snprintf(a->errstr, sizeof a->errstr, "%s:%d: holds a NUL byte; the file must be text",
                 path, nul);
        goto out;
    }
    rc = sw_auth_parse(a, path, text.data, cfg);
out:
    sw_buf_free(&text);
    return rc;
}

void sw_auth_free(sw_auth *a)
{
    if (a == NULL)
        return;
    free(a->entries);
    free(a->slots);
    a->entries = NULL;
    a->slots = NULL;
    a->n = 0;
}

const sw_auth_entry *sw_auth_check(const sw_auth *a, const char *authorization,
                                   enum sw_auth_result *res)
{
    unsigned char h[32];
    const sw_auth_entry *found = NULL;
    if (authorization == NULL || strncasecmp(authorization, "Bearer ", 7) != 0) {
        *res = SW_AUTH_MISSING;
        return NULL;
    }
    const char *tok = authorization + 7;
    while (*tok == ' ')
        tok++;
    size_t n = strlen(tok);
    while (n > 0 && tok[n - 1] == ' ')
        n--;
    if (n == 0 || n >= SW_AUTH_TOKEN_MAX) {
        *res = SW_AUTH_INVALID;
        return NULL;
    }
    sha256(tok, n, h);
    if (a->n > 0) {
        size_t i = slot_of(a, h);
        if (a->slots[i] != 0)
            found = &a->entries[a->slots[i] - 1];
    }
    *res = found ? SW_AUTH_OK : SW_AUTH_INVALID;
    return found;
}

int sw_auth_allows(const sw_auth_entry *e, const char *sink, size_t n)
{
    if (e->all_sinks)
        return 1;
    if (n == 0 || n > SW_NAME_MAX)
        return 0;
    for (const char *p = strstr(e->sinks, ","); p && p[1]; p = strchr(p + 1, ',')) {
        if (strncmp(p + 1, sink, n) == 0 && p[1 + n] == ',')
            return 1;
    }
    return 0;
}
