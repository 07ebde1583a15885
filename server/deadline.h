#ifndef SW_DEADLINE_H_
#define SW_DEADLINE_H_

#include <stdint.h>

/* A watchdog that cuts off request bodies which arrive too slowly.
 *
 * civetweb bounds the request head by request_timeout_ms, but a body read
 * (mg_read) only bounds the wait for each piece; a chunked body sent one
 * tiny chunk at a time keeps one mg_read call going for ever, and the
 * worker with it. So each worker arms a slot with a deadline and its
 * connection's addresses before reading; a thread shuts down the socket
 * of any slot past its deadline, which makes the read fail at once.
 * civetweb does not expose a connection's socket, so the watchdog finds
 * it by its peer and local port among the process' descriptors: costly,
 * but only for a connection already over its time. */
typedef struct sw_deadline sw_deadline;

/* Start the watchdog with `nslots` slots. NULL when out of memory or
 * when the thread cannot start. */
sw_deadline *sw_deadline_new(int nslots);

/* Stop the thread and free. Accepts NULL. */
void sw_deadline_free(sw_deadline *d);

/* Claim a slot for the calling worker: its index, or -1 when all are
 * taken (that worker's reads then go unguarded). Thread-safe. */
int sw_deadline_claim(sw_deadline *d);

/* Guard the body read of the connection from `peer_addr`:`peer_port` to
 * our `local_port` until `deadline_ms` (sw_clock_mono_ms() time). */
void sw_deadline_arm(sw_deadline *d, int slot, int64_t deadline_ms, const char *peer_addr,
                     int peer_port, int local_port);

/* End the guard. Returns 1 when the watchdog cut the connection off. */
int sw_deadline_disarm(sw_deadline *d, int slot);

/* Stop reading the connection from `peer_addr`:`peer_port` to our
 * `local_port` now (shutdown SHUT_RD); what was written still goes out.
 * After a handler refuses a body it has not read, civetweb would read and
 * discard the rest to keep the connection: all of a 413's gigabyte, or a
 * smuggled request's chunked body. With reading stopped it closes the
 * connection instead. 1 when the socket was found. */
int sw_deadline_stop_reading(const char *peer_addr, int peer_port, int local_port);

#endif
