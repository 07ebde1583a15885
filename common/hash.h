#ifndef SW_HASH_H_
#define SW_HASH_H_

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a: what release 0.1 bound an Idempotency-Key to; still
 * read, so keys stored before an upgrade keep answering. Pure. */
uint64_t sw_hash64(const void *data, size_t len);

/* The hash as 16 lower-case hex digits plus NUL. */
void sw_hash64_hex(uint64_t h, char out[17]);

/* SHA-256 over the `n` byte strings parts[i] (lens[i] bytes each), one
 * after the other, as 64 lower-case hex digits plus NUL: what an
 * Idempotency-Key is bound to, so one client cannot make another's
 * request collide. 0, or -1 when libcrypto fails. */
__attribute__((warn_unused_result))
int sw_sha256_hex(int n, const void *const *parts, const size_t *lens, char out[65]);

#endif
