#ifndef SW_AUTH_H_
#define SW_AUTH_H_

#include <stddef.h>

#include "config.h"

/* Bearer-token authentication for the /v1 API. The tokens file holds one
 * line per token: the SHA-256 of the token in hex, then the sinks it may
 * use, comma-separated, or "*" for all of them; "+admin" among them lets
 * the token run the dashboard's actions (/v1/admin/...). '#' starts a
 * comment.
 * Only hashes are stored, so the file is not a secret. A presented token
 * is hashed and looked up by its digest in a hash table (the digest is
 * uniform, and public knowledge of the stored ones tells nothing about a
 * token); each comparison with a candidate runs in constant time. */

#define SW_AUTH_HASH_HEX 65    /* 64 hex digits and a NUL */
#define SW_AUTH_TOKEN_MAX 256

typedef struct sw_auth_entry {
    unsigned char hash[32];
    char scope[17];      /* 16 hex digits of SHA-256(hash): scopes the
                            token's Idempotency-Keys, names nothing secret */
    int all_sinks;
    int admin;           /* "+admin" in the list: the dashboard's actions */
    char sinks[512];     /* ",orders,events," for a cheap membership test */
} sw_auth_entry;

typedef struct sw_auth {
    int err;
    char errstr[256];    /* "file:line: reason" after a failed load */
    sw_auth_entry *entries;
    int n;
    int *slots;          /* open addressing: entry index + 1, 0 = empty */
    size_t mask;
} sw_auth;

enum sw_auth_result { SW_AUTH_OK, SW_AUTH_MISSING, SW_AUTH_INVALID };

/* Read the tokens file at `path`; every sink named must be one of cfg's.
 * 0, or -1 with err/errstr set. Call sw_auth_free() in both cases. */
__attribute__((warn_unused_result))
int sw_auth_load(sw_auth *a, const char *path, const sw_config *cfg);

/* The same from a string; `name` stands for the file in errors. */
__attribute__((warn_unused_result))
int sw_auth_parse(sw_auth *a, const char *name, const char *text, const sw_config *cfg);

/* Free the entries. Accepts NULL. */
void sw_auth_free(sw_auth *a);

/* Check an Authorization header value (NULL when absent). Returns the
 * matching entry (owned by `a`) with *res = SW_AUTH_OK, or NULL with
 * *res saying whether the token was missing or wrong. */
const sw_auth_entry *sw_auth_check(const sw_auth *a, const char *authorization,
                                   enum sw_auth_result *res);

/* 1 when `e` may use the sink called `sink` (length n). */
int sw_auth_allows(const sw_auth_entry *e, const char *sink, size_t n);

/* SHA-256 of `token` as lower-case hex into `out`. */
void sw_auth_hash_hex(const char *token, size_t n, char out[SW_AUTH_HASH_HEX]);

/* A fresh random token ("sw_" and 64 hex digits) from getrandom(2).
 * 0, or -1 when the kernel gives no randomness. */
__attribute__((warn_unused_result)) int sw_auth_token_new(char out[SW_AUTH_TOKEN_MAX]);

#endif
