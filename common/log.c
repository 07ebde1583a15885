#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
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

/* A line being built in a fixed buffer; output past the end is dropped. */
typedef struct line {
    char *p;
    size_t len, cap;
} line;

static void put(line *l, const char *s, size_t n)
{
    if (n > l->cap - l->len)
        n = l->cap - l->len;
    memcpy(l->p + l->len, s, n);
    l->len += n;
}

/* A value, escaped so that it cannot end its quotes or the line. */
static void put_escaped(line *l, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < n && s[i]; i++) {
        unsigned char c = (unsigned char)s[i];
        char e[4] = {'\\', 0, 0, 0};
        size_t en = 2;
        switch (c) {
        case '"': e[1] = '"'; break;
        case '\\': e[1] = '\\'; break;
        case '\n': e[1] = 'n'; break;
        case '\r': e[1] = 'r'; break;
        case '\t': e[1] = 't'; break;
        default:
            if (c >= 0x20 && c != 0x7f) {
                put(l, (const char *)&c, 1);
                continue;
            }
            e[1] = 'x';
            e[2] = hex[c >> 4];
            e[3] = hex[c & 15];
            en = 4;
        }
        put(l, e, en);
    }
}

int sw_log_vformat(char *out, size_t cap, const char *fmt, va_list ap)
{
    line l = {out, 0, cap ? cap - 1 : 0};
    for (const char *f = fmt; *f;) {
        if (*f != '%') {
            const char *pct = strchr(f, '%');
            size_t n = pct ? (size_t)(pct - f) : strlen(f);
            put(&l, f, n);
            f += n;
            continue;
        }
        /* One conversion: %[flags][width][.precision][length]conv. */
        const char *start = f++;
        int width = -1, prec = -1, star_w = 0, star_p = 0;
        f += strspn(f, "-+ #0");
        if (*f == '*') {
            star_w = 1;
            f++;
        } else {
            for (width = 0; *f >= '0' && *f <= '9'; f++)
                width = width * 10 + (*f - '0');
        }
        if (*f == '.') {
            f++;
            if (*f == '*') {
                star_p = 1;
                f++;
            } else {
                for (prec = 0; *f >= '0' && *f <= '9'; f++)
                    prec = prec * 10 + (*f - '0');
            }
        }
        char length[3] = "";
        size_t ln = strspn(f, "hljztL");
        if (ln > 2)
            ln = 2;
        memcpy(length, f, ln);
        f += ln;
        char conv = *f ? *f++ : '\0';
        if (star_w)
            width = va_arg(ap, int);
        if (star_p)
            prec = va_arg(ap, int);
        char spec[32], buf[64];
        size_t sn = (size_t)(f - start);
        if (sn >= sizeof spec)
            break;
        memcpy(spec, start, sn);
        spec[sn] = '\0';
        int n = 0;
        switch (conv) {
        case '%':
            put(&l, "%", 1);
            continue;
        case 's': {
            /* Its width is not honoured: the value is escaped, and a
             * width in bytes would count the escapes. */
            const char *s = va_arg(ap, const char *);
            if (s == NULL)
                s = "(null)";
            put_escaped(&l, s, prec >= 0 ? (size_t)prec : strlen(s));
            continue;
        }
        case 'c':
            n = snprintf(buf, sizeof buf, "%c", (char)va_arg(ap, int));
            break;
        case 'p':
            n = snprintf(buf, sizeof buf, "%p", va_arg(ap, void *));
            break;
        case 'd': case 'i': case 'u': case 'x': case 'X': case 'o': {
            /* Format as the widest type of the right signedness. */
            int sgn = conv == 'd' || conv == 'i';
            intmax_t sv = 0;
            uintmax_t uv = 0;
            if (strcmp(length, "ll") == 0) {
                if (sgn) sv = va_arg(ap, long long); else uv = va_arg(ap, unsigned long long);
            } else if (strcmp(length, "l") == 0) {
                if (sgn) sv = va_arg(ap, long); else uv = va_arg(ap, unsigned long);
            } else if (strcmp(length, "z") == 0) {
                if (sgn) sv = (intmax_t)va_arg(ap, size_t); else uv = va_arg(ap, size_t);
            } else if (strcmp(length, "j") == 0) {
                if (sgn) sv = va_arg(ap, intmax_t); else uv = va_arg(ap, uintmax_t);
            } else if (strcmp(length, "t") == 0) {
                if (sgn) sv = va_arg(ap, ptrdiff_t); else uv = (uintmax_t)va_arg(ap, ptrdiff_t);
            } else {
                if (sgn) sv = va_arg(ap, int); else uv = va_arg(ap, unsigned);
            }
            /* Rewrite the length modifier as j, keeping flags and width. */
            char js[40];
            size_t body = sn - 1 - ln;
            memcpy(js, spec, body);
            js[body] = 'j';
            js[body + 1] = conv;
            js[body + 2] = '\0';
            if (star_w || star_p)
                n = sgn ? snprintf(buf, sizeof buf, "%jd", sv) : snprintf(buf, sizeof buf, "%ju", uv);
            else if (sgn)
                n = snprintf(buf, sizeof buf, js, sv);
            else
                n = snprintf(buf, sizeof buf, js, uv);
            break;
        }
        case 'f': case 'F': case 'e': case 'E': case 'g': case 'G': case 'a': case 'A': {
            double d = strcmp(length, "L") == 0 ? (double)va_arg(ap, long double)
                                                : va_arg(ap, double);
            if (star_w || star_p)
                n = snprintf(buf, sizeof buf, "%.*f", prec >= 0 ? prec : 6, d);
            else
                n = snprintf(buf, sizeof buf, spec, d);
            break;
        }
        default:
            /* Not a conversion this knows: stop rather than misread args. */
            put(&l, start, sn);
            f = "";
            continue;
        }
        (void)width;
        if (n > 0)
            put(&l, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
    }
    if (cap)
        out[l.len] = '\0';
    return (int)l.len;
}

int sw_log_format(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = sw_log_vformat(out, cap, fmt, ap);
    va_end(ap);
    return n;
}

static _Thread_local char context[64];

void sw_log_thread_context(const char *kv)
{
    snprintf(context, sizeof context, "%s", kv ? kv : "");
}

const char *sw_log_thread_context_get(void)
{
    return context;
}

/* journald stamps each line itself; anything else (a terminal, a file, a
 * container's log) gets ts= first. systemd sets JOURNAL_STREAM to the
 * device and inode of the stream it gave us, so a stderr redirected
 * elsewhere by the unit still gets stamps. */
static pthread_once_t stamp_once = PTHREAD_ONCE_INIT;
static int stamp;

static void decide_stamp(void)
{
    const char *js = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;
    stamp = !(js && sscanf(js, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
              (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino);
}

static void put_stamp(line *l)
{
    struct timespec ts;
    struct tm tm;
    char t[48];
    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL)
        return;
    size_t n = strftime(t, sizeof t, "ts=%Y-%m-%dT%H:%M:%S", &tm);
    n += (size_t)snprintf(t + n, sizeof t - n, ".%03ldZ ", ts.tv_nsec / 1000000);
    put(l, t, n < sizeof t ? n : sizeof t - 1);
}

void sw_log(enum sw_log_level level, const char *msg, const char *kv, ...)
{
    if (level < min_level)
        return;
    char buf[1024];
    line l = {buf, 0, sizeof buf - 1};
    pthread_once(&stamp_once, decide_stamp);
    if (stamp)
        put_stamp(&l);
    put(&l, "level=", 6);
    put(&l, names[level], strlen(names[level]));
    put(&l, " msg=\"", 6);
    put_escaped(&l, msg, strlen(msg));
    put(&l, "\"", 1);
    if (kv != NULL) {
        put(&l, " ", 1);
        va_list ap;
        va_start(ap, kv);
        l.len += (size_t)sw_log_vformat(buf + l.len, l.cap - l.len + 1, kv, ap);
        va_end(ap);
    }
    if (context[0] != '\0') {
        put(&l, " ", 1);
        put(&l, context, strlen(context));
    }
    buf[l.len++] = '\n';
    ssize_t w = write(STDERR_FILENO, buf, l.len);
    (void)w;
}
