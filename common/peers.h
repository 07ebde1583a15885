#ifndef SW_PEERS_H_
#define SW_PEERS_H_

#include <stddef.h>
#include <stdint.h>

/* Open connections per client address, so one address cannot take every
 * connection slot. A fixed-size open-addressing table (linear probing,
 * deletion by backward shift: no tombstones), sized for a bounded number
 * of connections. Not thread-safe: the I/O thread owns it. */

typedef struct sw_peer_addr {
    uint8_t b[16];               /* IPv6, or IPv4 mapped (::ffff:a.b.c.d) */
} sw_peer_addr;

typedef struct sw_peers {
    struct sw_peer_slot {
        sw_peer_addr addr;
        uint32_t count;          /* 0: empty */
        uint64_t bytes;          /* held for this address (sw_peers_charge) */
    } *slots;
    size_t mask;
    size_t used;
} sw_peers;

/* A table for at most `max_addresses` distinct addresses at once. 0, or -1
 * when out of memory. */
__attribute__((warn_unused_result)) int sw_peers_init(sw_peers *p, size_t max_addresses);

/* Count one more connection from `a` unless it already has `limit` (0: no
 * limit). Returns the new count, or -1 when refused (at the limit, or
 * the table is full). */
long sw_peers_add(sw_peers *p, const sw_peer_addr *a, uint32_t limit);

/* One connection from `a` ended. */
void sw_peers_remove(sw_peers *p, const sw_peer_addr *a);

/* Add `delta` (negative to give back) to the bytes `a`'s connections
 * hold. A positive delta that would pass `limit` (0: none) changes
 * nothing and returns -1; else 0. `a` must have a connection counted. */
int sw_peers_charge(sw_peers *p, const sw_peer_addr *a, int64_t delta, uint64_t limit);

void sw_peers_free(sw_peers *p);   /* accepts NULL */

#endif
