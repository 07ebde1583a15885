#ifndef SW_NOTIFY_H_
#define SW_NOTIFY_H_

/* systemd's notify protocol (Type=notify), through libsystemd's
 * sd_notify. Without NOTIFY_SOCKET (not under systemd) every call is a
 * no-op. Not thread-safe: call from the main thread. */

/* READY=1 with a STATUS line: the daemon really serves now. */
void sw_notify_ready(const char *status);

/* STATUS=<text>, for `systemctl status`. Sent only when it changed. */
void sw_notify_status(const char *status);

/* WATCHDOG=1, at most twice per WatchdogSec; no-op when no watchdog is
 * set. Call it from the main loop, so a wedged loop stops feeding it. */
void sw_notify_watchdog(void);

/* RELOADING=1: a reload has begun; send sw_notify_ready() when done. */
void sw_notify_reloading(void);

/* STOPPING=1: shutdown has begun. */
void sw_notify_stopping(void);

#endif
