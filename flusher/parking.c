#include "parking.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "pause.h"

#define LOOK_EVERY_MS 1000

/* The paused set last logged in this process (a hash of its flags): a
 * flusher with many shards has a drain, and a view, per shard, and one
 * line per change is enough. */
static _Atomic uint64_t logged_set;

struct sw_parking {
    const sw_config *cfg;
    sw_redis *base;             /* NULL: the queue's connection */
    int unknown;                /* reads failing (logged once) */
    int ready;                  /* read once */
    int64_t next_ms;
    unsigned char *paused, *now;
    const char **names;
    sw_sink_view view;
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
    p->names = calloc(n, sizeof *p->names);
    if (base)
        p->base = sw_redis_new(base);
    if (p->paused == NULL || p->now == NULL || p->names == NULL || (base && p->base == NULL)) {
        sw_parking_free(p);
        return NULL;
    }
    for (int k = 0; k < cfg->nsinks; k++)
        p->names[k] = cfg->sinks[k].name;
    p->view = (sw_sink_view){p->names, p->paused, cfg->nsinks};
    return p;
}

void sw_parking_free(sw_parking *p)
{
    if (p == NULL)
        return;
    sw_redis_free(p->base);
    free(p->paused);
    free(p->now);
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
    for (int k = 0; k < n; k++) {
        const char *name = p->cfg->sinks[k].name;
        if (p->now[k] != p->paused[k] && log) {
            if (p->now[k])
                sw_log_warn("sink flushing paused", "sink=%s action=\"setting its jobs aside "
                            "(parked) until spillwayctl sink resume %s --flush\"", name, name);
            else
                sw_log_info("sink flushing resumed", "sink=%s action=\"its parked jobs flush "
                            "first, oldest first\"", name);
        }
        p->paused[k] = p->now[k];
    }
}

void sw_parking_tick(sw_parking *p, sw_redis *queue)
{
    if (sw_clock_mono_ms() < p->next_ms)
        return;
    /* Until the first read, try every loop: nothing is claimed before. */
    p->next_ms = sw_clock_mono_ms() + (p->ready ? LOOK_EVERY_MS : 200);
    sw_redis *r = p->base ? p->base : queue;
    if (sw_pause_flags(r, SW_PAUSE_FLUSH, p->cfg, p->now) != 0) {
        if (!p->unknown++)
            sw_log_warn("cannot read paused sinks", "error=\"%s\" note=\"%s\"", r->errstr,
                        p->ready ? "the last known state holds until it can be read"
                                 : "nothing is claimed until it can be read");
        return;
    }
    p->unknown = 0;
    p->ready = 1;
    adopt(p);
}

const sw_sink_view *sw_parking_view(const sw_parking *p)
{
    return p->ready ? &p->view : NULL;
}

const sw_sink_view *sw_parking_sinks(const sw_parking *p)
{
    return &p->view;
}
