#ifndef SW_LEASE_H_
#define SW_LEASE_H_

#include <signal.h>

#include "config.h"

/* The flusher over queue shards ([redis] shards > 0). Each shard is a
 * whole queue (keys.h); this flusher holds leases on its share of them,
 * ceil(shards / live flushers), and runs one drain (drain.h) per shard
 * held, each a thread with its own Redis and PostgreSQL connections.
 *
 * Once a second it renews its membership (<p>:members) and looks at the
 * live count: holding more than its share, it lets the highest shard go
 * (the drain commits or gives back what it holds, then its lease is
 * deleted); holding fewer, it takes free leases. A dead flusher's leases
 * and membership lapse after heartbeat_ttl_s; the flusher that takes its
 * shard takes over its processing list there, as with one queue. A drain
 * renews its lease with its heartbeat, so a stalled drain loses both and
 * its shard moves on.
 *
 * Leases only share the work out: two flushers on one shard (a lease
 * taken while a stalled holder wakes up) is the many-flushers case, which
 * the processing lists and the ledger keep exactly once. */

/* Run until *stop. Returns 0 after a clean stop, 1 when it could not
 * start, 2 when Redis holds another queue layout. */
int sw_lease_run(const sw_config *cfg, const char *heartbeat, volatile sig_atomic_t *stop);

#endif
