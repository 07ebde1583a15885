#include "lease.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "clock.h"
#include "drain.h"
#include "hash.h"
#include "log.h"
#include "notify.h"
#include "processing.h"
#include "shards.h"
#include "stats.h"

#define TICK_MS 1000
/* How long the holder renews a starting drain's lease (its PostgreSQL
 * connection, the sinks' check, its id) before the drain's own heartbeat
 * thread takes over: past it, a drain stuck starting lets its shard go. */
#define STARTUP_MS 60000

/* A shard this flusher drains. States: idle (running 0); running (a
 * thread in sw_drain_run); releasing (running, release set); ended
 * (running, ended set: joined next tick, then its lease deleted). */
typedef struct held {
    int running;
    pthread_t thread;
    int64_t started_ms;     /* monotonic */
    atomic_int release;     /* let go: asked by us, or the lease is lost */
    atomic_int ended;       /* the thread returned */
    atomic_int stalled;     /* -1 starting (no heartbeat thread yet), then
                               0 moving / 1 stalled (liveness.h) */
    int status;
    sw_drain_opts o;
} held;

typedef struct manager {
    const sw_config *cfg;
    volatile sig_atomic_t *stop;
    sw_redis *base;          /* the configured prefix: layout, members */
    sw_shards *q;            /* each shard's keys: leases */
    held h[SW_SHARDS_MAX];
    int redis_down;          /* Redis failed in the last tick (logged once) */
    int failing;             /* ...and in this one so far */
    int failed;              /* a drain could not start: the sinks do not
                                match their tables, or our id is taken */
} manager;

static void *drain_thread(void *arg)
{
    held *h = arg;
    char ctx[32];
    snprintf(ctx, sizeof ctx, "shard=%d", h->o.shard);
    sw_log_thread_context(ctx);
    h->status = sw_drain_run(&h->o);
    atomic_store(&h->ended, 1);
    return NULL;
}

static int start(manager *m, int k, const char *heartbeat)
{
    held *h = &m->h[k];
    atomic_store(&h->release, 0);
    atomic_store(&h->ended, 0);
    atomic_store(&h->stalled, -1);
    h->started_ms = sw_clock_mono_ms();
    h->o = (sw_drain_opts){m->cfg, heartbeat, m->stop, k, &h->release, &h->stalled};
    if (pthread_create(&h->thread, NULL, drain_thread, h) != 0) {
        sw_log_error("cannot start a drain thread", "shard=%d", k);
        return -1;
    }
    h->running = 1;
    return 0;
}

/* Join shard k's thread and delete its lease (if Redis fails, it lapses). */
static void reap(manager *m, int k)
{
    held *h = &m->h[k];
    pthread_join(h->thread, NULL);
    h->running = 0;
    if (h->status != 0) {
        sw_log_error("drain could not start", "shard=%d action=\"stopping\"", k);
        m->failed = 1;
    }
    if (sw_proc_lease(m->q->q[k], m->cfg->flusher_id, 0, 0) < 0)
        sw_log_debug("lease not deleted", "shard=%d error=\"%s\"", k, m->q->q[k]->errstr);
}

static void redis_failed(manager *m, sw_redis *r, const char *what)
{
    if (!m->redis_down && !m->failing)
        sw_log_warn("redis failed", "op=\"%s\" cause=\"%s\" error=\"%s\" hint=\"%s\" "
                    "action=\"keeping the shards held, retrying each second\"", what,
                    r->code[0] ? r->code : sw_redis_strerror(r->err), r->errstr,
                    sw_redis_hint(r->err, r->code, r->errstr));
    m->failing = 1;
}

/* One look at the members and leases; returns how many shards run. */
static int look(manager *m, const char *heartbeat)
{
    const sw_config *cfg = m->cfg;
    int n = m->q->n, running = 0, stalled = 0;
    for (int k = 0; k < n; k++) {
        if (m->h[k].running && atomic_load(&m->h[k].ended))
            reap(m, k);
        if (m->h[k].running) {
            running += !atomic_load(&m->h[k].release);
            stalled |= atomic_load(&m->h[k].stalled) > 0;
        }
    }
    /* systemd's watchdog fires when any drain of ours is stalled. */
    if (!stalled)
        sw_notify_watchdog();
    if (m->failed)
        return running;
    /* Renew the leases of drains still starting, for STARTUP_MS at most:
     * once a drain's heartbeat thread runs, it renews its lease, and stops
     * when the drain stalls. */
    for (int k = 0; k < n; k++) {
        held *h = &m->h[k];
        if (!h->running || atomic_load(&h->release) || atomic_load(&h->stalled) >= 0 ||
            sw_clock_mono_ms() - h->started_ms > STARTUP_MS)
            continue;
        int mine = sw_proc_lease(m->q->q[k], cfg->flusher_id,
                                 (int64_t)cfg->heartbeat_ttl_s * 1000, 1);
        if (mine == 0) {
            sw_log_warn("shard lease held by another flusher", "shard=%d action=\"letting "
                        "the shard go\"", k);
            atomic_store(&h->release, 1);
            running--;
        } else if (mine < 0) {
            redis_failed(m, m->q->q[k], "lease");
        }
    }
    long live = sw_proc_members(m->base, cfg->flusher_id, (int64_t)cfg->heartbeat_ttl_s * 1000);
    if (live < 0) {
        redis_failed(m, m->base, "members");
        return running;
    }
    long share = (n + (live > 0 ? live : 1) - 1) / (live > 0 ? live : 1);
    if (running > share) {
        /* One at a time, highest first: the others' next tick sees it free. */
        for (int k = n - 1; k >= 0; k--)
            if (m->h[k].running && !atomic_load(&m->h[k].release)) {
                sw_log_info("letting a shard go", "shard=%d held=%d share=%ld flushers=%ld", k,
                            running, share, live);
                atomic_store(&m->h[k].release, 1);
                running--;
                break;
            }
        return running;
    }
    /* Start at a place of our own, so flushers starting together try
     * different shards first. */
    int first = (int)(sw_hash64(cfg->flusher_id, strlen(cfg->flusher_id)) % (uint64_t)n);
    for (int i = 0; i < n && running < share && !*m->stop; i++) {
        int k = (first + i) % n;
        if (m->h[k].running)
            continue;
        int got = sw_proc_lease(m->q->q[k], cfg->flusher_id,
                                (int64_t)cfg->heartbeat_ttl_s * 1000, 1);
        if (got < 0) {
            redis_failed(m, m->q->q[k], "lease");
            break;
        }
        if (got == 1 && start(m, k, heartbeat) == 0)
            running++;
    }
    return running;
}

/* look(), then one log line per change of Redis' state (any of its
 * calls failing, or none). */
static int tick(manager *m, const char *heartbeat)
{
    m->failing = 0;
    int running = look(m, heartbeat);
    if (m->redis_down && !m->failing)
        sw_log_info("redis available again", NULL);
    m->redis_down = m->failing;
    return running;
}

int sw_lease_run(const sw_config *cfg, const char *heartbeat, volatile sig_atomic_t *stop)
{
    manager m;
    int status = 1;
    memset(&m, 0, sizeof m);
    m.cfg = cfg;
    m.stop = stop;
    sw_redis_opts ro = sw_config_redis(cfg);
    m.base = sw_redis_new(&ro);
    m.q = sw_shards_new(&ro, cfg->shards);
    if (m.base == NULL || m.q == NULL) {
        sw_log_error("out of memory", NULL);
        goto out;
    }
    m.base->reconnects = sw_stats_redis_reconnects();
    sw_shards_count(m.q, sw_stats_redis_reconnects(), sw_stats_redis_redirects());
    /* The layout guard, before any shard is touched. */
    for (;;) {
        enum sw_layout l = sw_shards_check_layout(m.base, cfg->shards);
        if (l == SW_LAYOUT_OK)
            break;
        if (l == SW_LAYOUT_MISMATCH) {
            status = 2;
            goto out;
        }
        redis_failed(&m, m.base, "layout");
        for (int i = 0; i < 10 && !*stop; i++)
            sw_clock_sleep_ms(100);
        if (*stop) {
            status = 0;
            goto out;
        }
    }
    m.redis_down = m.failing;   /* the first tick says when it answers again */
    sw_log_info("flusher started", "id=%s shards=%d batch_max_records=%d flush_interval_ms=%d "
                "version=%s", cfg->flusher_id, cfg->shards, cfg->batch_max_records,
                cfg->flush_interval_ms, SW_VERSION);
    char ready[160];
    snprintf(ready, sizeof ready, "flusher %s draining a share of %d shards of %s",
             cfg->flusher_id,
             cfg->shards, cfg->prefix);
    sw_notify_ready(ready);
    while (!*stop && !m.failed) {
        sw_stats_shards_held(tick(&m, heartbeat));
        for (int t = 0; t < TICK_MS && !*stop; t += 50)
            sw_clock_sleep_ms(50);
    }
    sw_notify_stopping();
    status = m.failed;
out:
    /* Leave first, so the others count us out while our drains finish. */
    if (m.base && status != 2 && sw_proc_members(m.base, cfg->flusher_id, 0) < 0)
        sw_log_debug("membership not ended", "error=\"%s\"", m.base->errstr);
    /* *stop reaches every drain: each commits or gives back what it holds;
     * each lease goes as soon as its drain is done. */
    for (int k = 0; m.q && k < m.q->n; k++)
        atomic_store(&m.h[k].release, 1);
    for (int left = 1; left;) {
        left = 0;
        for (int k = 0; m.q && k < m.q->n; k++) {
            if (m.h[k].running && atomic_load(&m.h[k].ended))
                reap(&m, k);
            left |= m.h[k].running;
        }
        if (left)
            sw_clock_sleep_ms(20);
    }
    status |= m.failed;
    if (status == 0)
        sw_log_info("flusher stopped", NULL);
    sw_shards_free(m.q);
    sw_redis_free(m.base);
    return status;
}
