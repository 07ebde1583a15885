#ifndef SW_CLUSTER_H_
#define SW_CLUSTER_H_

#include <stddef.h>
#include <stdint.h>

#include "endpoint.h"

/* Redis Cluster's addressing, as pure functions (no socket here; the
 * adapter in redis.c does the I/O): which of the 16384 slots a key hashes
 * to, who owns a slot according to a CLUSTER SLOTS reply, and what a
 * redirection error (MOVED, ASK) names. */

#define SW_CLUSTER_SLOTS 16384

/* CRC16 (XMODEM, as Redis Cluster uses) of `n` bytes. */
uint16_t sw_cluster_crc16(const void *p, size_t n);

/* The slot of a key: only the part between the first '{' and the next
 * '}' is hashed when that part is not empty (a hash tag). */
int sw_cluster_slot(const char *key, size_t n);

/* Does `s` hold a non-empty hash tag? (Then every key that starts with it
 * is in one slot.) */
int sw_cluster_has_tag(const char *s);

/* The master owning `slot` in a CLUSTER SLOTS reply (a hiredis reply);
 * an empty or NULL host means the node that answered, `asked`. 0 with
 * `owner`; 1 when no range covers the slot (the cluster is incomplete)
 * or its master's address is "?" (not known yet); -1 when the reply is
 * not shaped as CLUSTER SLOTS answers. */
int sw_cluster_owner(const void *reply, int slot, const sw_endpoint *asked,
                     sw_endpoint *owner);

enum sw_redirect { SW_REDIRECT_NONE = 0, SW_REDIRECT_MOVED, SW_REDIRECT_ASK };

/* An error reply's text: "MOVED <slot> <host>:<port>" or "ASK ...". The
 * kind, with slot and address (an empty host: the node that answered);
 * NONE for any other error or a malformed one. */
enum sw_redirect sw_cluster_redirect(const char *msg, int *slot, sw_endpoint *to);

#endif
