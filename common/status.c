#include "status.h"

#include <stdatomic.h>
#include <string.h>

#include "clock.h"
#include "jobid.h"

int sw_status_json(sw_buf *out, const sw_status *st)
{
    char when[32];
    int rc = 0;
    sw_buf_reset(out);
    sw_clock_format(st->enqueued_us, when);
    rc |= sw_buf_printf(out, "{\"job_id\":\"%s\",\"status\":\"%s\",\"sink\":\"%s\","
                             "\"records\":%lld,\"enqueued_at\":\"%s\"",
                        st->job_id, st->status, st->sink, st->records, when);
    if (st->committed_us) {
        sw_clock_format(st->committed_us, when);
        rc |= sw_buf_printf(out, ",\"%s\":\"%s\"", st->error ? "failed_at" : "committed_at", when);
    }
    if (st->error) {
        rc |= sw_buf_puts(out, ",\"error\":");
        rc |= sw_buf_json_str(out, st->error, strlen(st->error));
    }
    rc |= sw_buf_puts(out, "}");
    return rc ? -1 : 0;
}

const char *sw_status_sink(const char *json, size_t len, size_t *n)
{
    static const char key[] = "\"sink\":\"";
    const size_t kn = sizeof key - 1;
    const char *p = NULL;
    for (size_t i = 0; p == NULL && i + kn <= len; i++) {
        if (memcmp(json + i, key, kn) == 0)
            p = json + i + kn;
    }
    if (p == NULL)
        return NULL;
    const char *q = memchr(p, '"', len - (size_t)(p - json));
    if (q == NULL)
        return NULL;
    *n = (size_t)(q - p);
    return p;
}

int sw_status_compact(sw_buf *out, char state, long long records, const char *sink,
                      long long delta_ms)
{
    sw_buf_reset(out);
    if (state == 'c')
        return sw_buf_printf(out, "c%lld %s %lld", records, sink, delta_ms) ? -1 : 0;
    return sw_buf_printf(out, "q%lld %s", records, sink) ? -1 : 0;
}

/* A decimal run at s[*i..n): its value, or -1 when there is none or it
 * is longer than 18 digits. */
static long long number(const char *s, size_t n, size_t *i)
{
    long long v = 0;
    size_t from = *i;
    while (*i < n && s[*i] >= '0' && s[*i] <= '9' && *i - from < 18)
        v = v * 10 + (s[(*i)++] - '0');
    return *i > from && (*i == n || s[*i] < '0' || s[*i] > '9') ? v : -1;
}

int sw_status_expand(sw_buf *out, const char *job_id, const char *v, size_t n)
{
    char sink[64];
    size_t i = 1;
    if (n < 4 || (v[0] != 'q' && v[0] != 'c'))
        return 0;
    long long records = number(v, n, &i);
    if (records < 0 || i >= n || v[i++] != ' ')
        return 0;
    size_t from = i;
    while (i < n && v[i] != ' ')
        i++;
    if (i == from || i - from >= sizeof sink)
        return 0;
    memcpy(sink, v + from, i - from);
    sink[i - from] = '\0';
    long long delta = 0;
    if (v[0] == 'c') {
        if (i >= n || v[i++] != ' ' || (delta = number(v, n, &i)) < 0)
            return 0;
    }
    if (i != n)
        return 0;
    int64_t enq = (int64_t)sw_jobid_time_ms(job_id) * 1000;
    sw_status st = {job_id, v[0] == 'c' ? "committed" : "queued", sink, records, enq,
                    v[0] == 'c' ? enq + delta * 1000 : 0, NULL};
    return sw_status_json(out, &st) == 0 ? 1 : -1;
}

/* The rate tracker behind sw_status_shift: jobs counted in the current
 * one-second window, and the shift chosen from the last one. Races
 * between threads at a window's edge lose a count or two; a shift is a
 * layout hint, never a correctness matter. */
static _Atomic int64_t window_ms;
static _Atomic int64_t window_jobs;
static _Atomic int current_shift = 15;

static _Atomic int64_t last_ms;

void sw_status_last(int64_t *ms, int *shift)
{
    *ms = atomic_load_explicit(&last_ms, memory_order_relaxed);
    *shift = atomic_load_explicit(&current_shift, memory_order_relaxed);
}

int sw_status_shift(int64_t now_ms)
{
    int64_t start = atomic_load_explicit(&window_ms, memory_order_relaxed);
    atomic_fetch_add_explicit(&window_jobs, 1, memory_order_relaxed);
    if (now_ms - start >= 1000 &&
        atomic_compare_exchange_strong(&window_ms, &start, now_ms)) {
        int64_t jobs = atomic_exchange(&window_jobs, 0);
        double per_ms = start > 0 ? (double)jobs / (double)(now_ms - start) : 0.0;
        /* The smallest bucket of 2^s ms that holds the target at this
         * rate; an idle process uses the widest. */
        int s = 0;
        while (s < 15 && per_ms * (double)(1 << s) < SW_STATUS_BUCKET_JOBS)
            s++;
        atomic_store_explicit(&current_shift, s, memory_order_relaxed);
    }
    atomic_store_explicit(&last_ms, now_ms, memory_order_relaxed);
    return atomic_load_explicit(&current_shift, memory_order_relaxed);
}
