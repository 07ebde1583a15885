#include "parking.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "park.h"
#include "pause.h"
#include "queue.h"

#define LOOK_EVERY_MS 1000

/* The paused set last logged in this process (a hash of its flags): a
 * flusher with many shards has a drain, and a view, per shard, and one
 * line per change is enough. */
static _Atomic uint64_t logged_set;

struct sw_parking {
    const sw_config *cfg;
    sw_redis *base;             /* NULL: the queue's connection */
    int unknown;                /* reads failing (logged once) */
    int64_t next_ms;
    unsigned char *paused, *now;
    sw_sink_figures *fig;
    const char **names;
    int npaused;
};

sw_parking *sw_parking_new(const sw_config *cfg, const sw_redis_opts *base)
{
    sw_parking *p = calloc(1, sizeof *p);
    size_t n = (size_t)cfg->nsinks + 1;
    if (p == NULL)
        return NULL;
    p->cfg = cfg;
    p->paused = calloc(n, 1);
    p->now = calloc(n, 1);
    p->fig = calloc(n, sizeof *p->fig);
    p->names = calloc(n, sizeof *p->names);
    if (base)
        p->base = sw_redis_new(base);
    if (p->paused == NULL || p->now == NULL || p->fig == NULL || p->names == NULL ||
        (base && p->base == NULL)) {
        sw_parking_free(p);
        return NULL;
    }
    return p;
}

void sw_parking_free(sw_parking *p)
{
    if (p == NULL)
        return;
    sw_redis_free(p->base);
    free(p->paused);
    free(p->now);
    free(p->fig);
    free(p->names);
    free(p);
}

/* FNV-1a of the flags. */
static uint64_t set_hash(const unsigned char *f, int n)
{
    uint64_t h = 14695981039346656037ULL;
    for (int k = 0; k < n; k++)
        h = (h ^ f[k]) * 1099511628211ULL;
    return h;
}

/* Take the new view in p->now, logging what changed unless another drain
 * of this process logged this very set last. */
static void adopt(sw_parking *p)
{
    int n = p->cfg->nsinks;
    uint64_t was = set_hash(p->paused, n), now = set_hash(p->now, n);
    int log = now != was && atomic_exchange(&logged_set, now) != now;
    p->npaused = 0;
    for (int k = 0; k < n; k++) {
        const char *name = p->cfg->sinks[k].name;
        if (p->now[k] != p->paused[k] && log) {
            if (p->now[k])
                sw_log_warn("sink flushing paused", "sink=%s action=\"setting its jobs aside "
                            "(parked) until spillwayctl sink resume %s --flush\"", name, name);
            else
                sw_log_info("sink flushing resumed", "sink=%s", name);
        }
        p->paused[k] = p->now[k];
        if (p->paused[k])
            p->names[p->npaused++] = name;
    }
}

void sw_parking_tick(sw_parking *p, sw_redis *queue)
{
    if (sw_clock_mono_ms() < p->next_ms)
        return;
    p->next_ms = sw_clock_mono_ms() + LOOK_EVERY_MS;
    sw_redis *r = p->base ? p->base : queue;
    if (sw_pause_flags(r, SW_PAUSE_FLUSH, p->cfg, p->now) != 0) {
        if (!p->unknown++ && r->err != SW_REDIS_ECONNECT && r->err != SW_REDIS_EIO)
            sw_log_warn("cannot read paused sinks", "error=\"%s\" note=\"the last known state "
                        "holds until it can be read\"", r->errstr);
        return;
    }
    p->unknown = 0;
    adopt(p);
    /* Parked jobs of sinks that run: given back (every flusher of the
     * queue may try; the script makes the second a no-op). */
    memset(p->fig, 0, (size_t)p->cfg->nsinks * sizeof *p->fig);
    if (sw_queue_sink_figures(queue, p->cfg, p->fig) < 0)
        return;
    for (int k = 0; k < p->cfg->nsinks; k++) {
        if (p->paused[k] || p->fig[k].parked <= 0)
            continue;
        const char *name = p->cfg->sinks[k].name;
        long n = sw_park_unpark(queue, name);
        if (n < 0)
            sw_log_warn("cannot give parked jobs back", "sink=%s error=\"%s\" action=\"trying "
                        "again in a second\"", name, queue->errstr);
        else if (n > 0)
            sw_log_info("parked jobs given back to the queue", "sink=%s jobs=%ld", name, n);
    }
}

const char *const *sw_parking_paused(const sw_parking *p, int *n)
{
    *n = p->npaused;
    return p->names;
}
