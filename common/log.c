#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static enum sw_log_level min_level = SW_LOG_INFO;
static const char *const names[] = {"debug", "info", "warn", "error"};

int sw_log_set_level(const char *name)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(name, names[i]) == 0) {
            min_level = (enum sw_log_level)i;
            return 0;
        }
    }
    return -1;
}

void sw_log(enum sw_log_level level, const char *msg, const char *kv, ...)
{
    if (level < min_level)
        return;
    char line[1024];
    int n = snprintf(line, sizeof line, "level=%s msg=\"%s\"", names[level], msg);
    if (n < 0)
        return;
    size_t len = (size_t)n < sizeof line ? (size_t)n : sizeof line - 1;
    if (kv != NULL && len < sizeof line - 2) {
        line[len++] = ' ';
        va_list ap;
        va_start(ap, kv);
        n = vsnprintf(line + len, sizeof line - len, kv, ap);
        va_end(ap);
        if (n > 0)
            len += (size_t)n < sizeof line - len ? (size_t)n : sizeof line - len - 1;
    }
    if (len > sizeof line - 2)
        len = sizeof line - 2;
    line[len++] = '\n';
    ssize_t w = write(STDERR_FILENO, line, len);
    (void)w;
}
