#ifndef SW_HASH_H_
#define SW_HASH_H_

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a: a request body's fingerprint for idempotency keys (is
 * this repeat the same request?). Not for anything an attacker could gain
 * from colliding: a collision can only make one client's own key answer
 * 200 instead of 409. Pure. */
uint64_t sw_hash64(const void *data, size_t len);

/* The hash as 16 lower-case hex digits plus NUL. */
void sw_hash64_hex(uint64_t h, char out[17]);

#endif
