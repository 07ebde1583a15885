#ifndef SW_CLOCK_H_
#define SW_CLOCK_H_

#include <stddef.h>
#include <stdint.h>

/* Wall-clock time in microseconds since the Unix epoch. */
int64_t sw_clock_now_us(void);

/* Monotonic time in milliseconds, for timeouts and intervals. */
int64_t sw_clock_mono_ms(void);

/* Format `us` (Unix microseconds) as RFC 3339 UTC with millisecond
 * precision, e.g. "2026-11-23T06:44:04.123Z". `out` needs 25 bytes. */
void sw_clock_format(int64_t us, char out[32]);

/* Sleep for `ms` milliseconds; returns early on a signal. */
void sw_clock_sleep_ms(int64_t ms);

#endif
