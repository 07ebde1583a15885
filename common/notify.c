#include "notify.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <systemd/sd-daemon.h>

#include "clock.h"
#include "log.h"

static char last_status[256];
static int64_t next_watchdog_ms;
static int watchdog_checked;
static uint64_t watchdog_usec;

static void notify(const char *msg)
{
    int rc = sd_notify(0, msg);
    if (rc < 0)
        sw_log_warn("sd_notify failed", "error=%d", rc);
}

void sw_notify_ready(const char *status)
{
    char msg[300];
    snprintf(msg, sizeof msg, "READY=1\nSTATUS=%s", status);
    snprintf(last_status, sizeof last_status, "%s", status);
    notify(msg);
}

void sw_notify_status(const char *status)
{
    char msg[300];
    if (strcmp(status, last_status) == 0)
        return;
    snprintf(last_status, sizeof last_status, "%s", status);
    snprintf(msg, sizeof msg, "STATUS=%s", status);
    notify(msg);
}

void sw_notify_watchdog(void)
{
    if (!watchdog_checked) {
        watchdog_checked = 1;
        if (sd_watchdog_enabled(0, &watchdog_usec) <= 0)
            watchdog_usec = 0;
    }
    if (watchdog_usec == 0)
        return;
    int64_t now = sw_clock_mono_ms();
    if (now < next_watchdog_ms)
        return;
    next_watchdog_ms = now + (int64_t)(watchdog_usec / 2000);
    notify("WATCHDOG=1");
}

void sw_notify_reloading(void)
{
    notify("RELOADING=1");
}

void sw_notify_stopping(void)
{
    notify("STOPPING=1");
}
