#include "waits.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "jobid.h"
#include "log.h"
#include "shards.h"
#include "waitlist.h"

#define SWEEP_EVERY_MS 10000

typedef struct slot {
    int used, woken;
    char id[SW_JOBID_LEN + 1];
    pthread_cond_t cond;
} slot;

typedef struct reader {
    sw_waits *w;
    int shard;
    pthread_t thread;
    int started;
} reader;

struct sw_waits {
    const sw_config *cfg;
    pthread_mutex_t lock;       /* slots, count, draining */
    slot *slots;
    int max, count, draining;
    atomic_int stop;
    reader readers[SW_SHARDS_MAX];
    int nreaders;
};

/* A finished job read from the stream: wake who waits for it. */
static void finished(void *ctx, const char *id, size_t len)
{
    sw_waits *w = ctx;
    if (len != SW_JOBID_LEN)
        return;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->max && w->count > 0; i++) {
        slot *s = &w->slots[i];
        if (s->used && !s->woken && memcmp(s->id, id, len) == 0) {
            s->woken = 1;
            pthread_cond_signal(&s->cond);
        }
    }
    pthread_mutex_unlock(&w->lock);
}

static void *read_loop(void *arg)
{
    reader *rd = arg;
    sw_waits *w = rd->w;
    const sw_config *cfg = w->cfg;
    char prefix[64], last[64] = "";
    char ctx[32];
    if (cfg->shards > 0) {
        snprintf(ctx, sizeof ctx, "shard=%d", rd->shard);
        sw_log_thread_context(ctx);
    }
    sw_redis_opts base = sw_config_redis(cfg);
    sw_redis_opts o = sw_shards_opts(&base, cfg->shards, rd->shard, prefix);
    sw_redis *r = sw_redis_new(&o);
    if (r == NULL)
        sw_log_error("out of memory", "action=\"waiting requests answer at their deadline\"");
    /* Block for less than a reply may take, so a silent Redis is seen. */
    int block = cfg->redis_timeout_ms / 2 > 1 ? cfg->redis_timeout_ms / 2 : 1;
    int64_t next_sweep = 0;
    int failing = 0;
    while (r && !atomic_load(&w->stop)) {
        /* Start at the newest entry, once it can be read. */
        if ((last[0] == '\0' && sw_waitlist_tail(r, last) != 0) ||
            (last[0] != '\0' && sw_waitlist_read(r, last, block, finished, w) < 0)) {
            if (!failing++)
                sw_log_warn("cannot read finished jobs", "error=\"%s\" note=\"waiting requests "
                            "answer at their deadline until it can be read\"", r->errstr);
            for (int i = 0; i < 10 && !atomic_load(&w->stop); i++)
                sw_clock_sleep_ms(50);
            continue;
        }
        if (failing)
            sw_log_info("reading finished jobs again", NULL);
        failing = 0;
        if (sw_clock_mono_ms() >= next_sweep) {
            next_sweep = sw_clock_mono_ms() + SWEEP_EVERY_MS;
            /* A minute late: another server's clock may be ahead. */
            if (sw_waitlist_sweep(r, sw_clock_now_us() / 1000 - 60000) != 0)
                sw_log_debug("cannot sweep the waiters", "error=\"%s\"", r->errstr);
        }
    }
    sw_redis_free(r);
    return NULL;
}

sw_waits *sw_waits_start(const sw_config *cfg, int max)
{
    sw_waits *w = calloc(1, sizeof *w);
    if (w == NULL)
        return NULL;
    w->cfg = cfg;
    w->max = max > 0 ? max : 0;
    pthread_mutex_init(&w->lock, NULL);
    w->slots = calloc((size_t)w->max + 1, sizeof *w->slots);
    if (w->slots == NULL) {
        sw_waits_stop(w);
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    for (int i = 0; i < w->max; i++)
        pthread_cond_init(&w->slots[i].cond, &ca);
    pthread_condattr_destroy(&ca);
    int n = cfg->shards > 0 ? cfg->shards : 1;
    for (int k = 0; k < n; k++) {
        reader *rd = &w->readers[k];
        rd->w = w;
        rd->shard = k;
        if (pthread_create(&rd->thread, NULL, read_loop, rd) != 0) {
            sw_waits_stop(w);
            return NULL;
        }
        rd->started = 1;
        w->nreaders = k + 1;
    }
    return w;
}

void sw_waits_drain(sw_waits *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->draining = 1;
    for (int i = 0; i < w->max; i++)
        if (w->slots[i].used)
            pthread_cond_signal(&w->slots[i].cond);
    pthread_mutex_unlock(&w->lock);
}

void sw_waits_stop(sw_waits *w)
{
    if (w == NULL)
        return;
    atomic_store(&w->stop, 1);
    sw_waits_drain(w);
    for (int k = 0; k < w->nreaders; k++)
        if (w->readers[k].started)
            pthread_join(w->readers[k].thread, NULL);
    for (int i = 0; w->slots && i < w->max; i++)
        pthread_cond_destroy(&w->slots[i].cond);
    free(w->slots);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int sw_waits_enter(sw_waits *w, const char *job_id, int *slot_out)
{
    int rc = -1;
    pthread_mutex_lock(&w->lock);
    for (int i = 0; i < w->max && w->count < w->max; i++) {
        slot *s = &w->slots[i];
        if (s->used)
            continue;
        s->used = 1;
        s->woken = 0;
        snprintf(s->id, sizeof s->id, "%s", job_id);
        w->count++;
        *slot_out = i;
        rc = 0;
        break;
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

int sw_waits_wait(sw_waits *w, int i, int64_t deadline_ms)
{
    slot *s = &w->slots[i];
    struct timespec until = {(time_t)(deadline_ms / 1000), (long)(deadline_ms % 1000) * 1000000};
    pthread_mutex_lock(&w->lock);
    while (!s->woken && !w->draining) {
        if (pthread_cond_timedwait(&s->cond, &w->lock, &until) == ETIMEDOUT)
            break;
    }
    int woken = s->woken;
    pthread_mutex_unlock(&w->lock);
    return woken;
}

void sw_waits_leave(sw_waits *w, int i)
{
    pthread_mutex_lock(&w->lock);
    w->slots[i].used = 0;
    w->count--;
    pthread_mutex_unlock(&w->lock);
}

int sw_waits_count(sw_waits *w)
{
    pthread_mutex_lock(&w->lock);
    int n = w->count;
    pthread_mutex_unlock(&w->lock);
    return n;
}
