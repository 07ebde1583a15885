#ifndef SW_LOG_H_
#define SW_LOG_H_

#include <stdarg.h>
#include <stddef.h>

/* One logfmt line per event on stderr: level=info msg="..." key=value...
 * journald adds the time and the unit. */
enum sw_log_level { SW_LOG_DEBUG, SW_LOG_INFO, SW_LOG_WARN, SW_LOG_ERROR };

/* Set the lowest level written. From "debug", "info", "warn", "error";
 * 0, or -1 for an unknown name (the level is unchanged). */
__attribute__((warn_unused_result)) int sw_log_set_level(const char *name);

/* Write one line if `level` is enabled. `kv` is a printf format for the
 * key=value pairs after msg (may be NULL); the caller quotes values that
 * may hold spaces. Every string argument (%s, %.*s) and msg are escaped
 * (quote, backslash, newline, control bytes) so that a value cannot end
 * its quotes or the line: a log line cannot be forged through one.
 * Thread-safe: one write(2) per line, cut at 1 KiB. */
__attribute__((format(printf, 3, 4)))
void sw_log(enum sw_log_level level, const char *msg, const char *kv, ...);

/* Pairs this thread adds to the end of each of its lines, e.g. "shard=3"
 * for a flusher's drain of one queue shard (NULL or "": none); copied, at
 * most 63 bytes. A thread a drain starts takes the drain's on:
 * sw_log_thread_context(saved), `saved` from sw_log_thread_context_get()
 * on the starting thread. */
void sw_log_thread_context(const char *kv);
const char *sw_log_thread_context_get(void);

/* The formatting sw_log applies to `kv`, into `out` (NUL-terminated, cut
 * to `cap`). Returns the length written. Supports the conversions of
 * printf (flags, width, precision, hh h l ll j z t L); for tests. */
__attribute__((format(printf, 3, 0)))
int sw_log_vformat(char *out, size_t cap, const char *fmt, va_list ap);
__attribute__((format(printf, 3, 4)))
int sw_log_format(char *out, size_t cap, const char *fmt, ...);

#define sw_log_debug(...) sw_log(SW_LOG_DEBUG, __VA_ARGS__)
#define sw_log_info(...) sw_log(SW_LOG_INFO, __VA_ARGS__)
#define sw_log_warn(...) sw_log(SW_LOG_WARN, __VA_ARGS__)
#define sw_log_error(...) sw_log(SW_LOG_ERROR, __VA_ARGS__)

#endif
