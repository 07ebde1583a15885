#include "liveness.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "notify.h"
#include "processing.h"
#include "redis.h"

struct sw_liveness {
    const sw_config *cfg;
    char fid[64], value[160];
    sw_redis *redis;
    _Atomic int64_t deadline_ms;     /* the main loop's promise */
    _Atomic int64_t pg_deadline_ms;  /* the PostgreSQL thread's; INT64_MAX idle */
    _Atomic int64_t quiet_until_ms;  /* no takeovers before */
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    int stop;
    atomic_int *lease, *stalled;   /* see sw_liveness_start */
    char log_context[64];          /* the starting drain's (log.h) */
};

/* Renew the shard lease (with the heartbeat, so both lapse together when
 * the loop stalls). A lease found another's is let go: set *lease. */
static void renew_lease(sw_liveness *l)
{
    int held = sw_proc_lease(l->redis, l->fid, (int64_t)l->cfg->heartbeat_ttl_s * 1000, 1);
    if (held == 0 && !atomic_load(l->lease)) {
        sw_log_warn("shard lease held by another flusher", "key=%s action=\"letting the "
                    "shard go\"", l->redis->keys.lease);
        atomic_store(l->lease, 1);
    }
}

static void *run(void *arg)
{
    sw_liveness *l = arg;
    int redis_down = 0, stalled = 0;
    sw_log_thread_context(l->log_context);
    pthread_mutex_lock(&l->lock);
    while (!l->stop) {
        pthread_mutex_unlock(&l->lock);
        int64_t now = sw_clock_mono_ms();
        if (now > atomic_load(&l->deadline_ms) || now > atomic_load(&l->pg_deadline_ms)) {
            /* The main loop is past what it announced: stop vouching for
             * it, so its batch is taken over and systemd restarts it. */
            if (!stalled)
                sw_log_error("main loop stalled", "action=\"letting the heartbeat lapse and "
                             "the watchdog fire\"");
            stalled = 1;
            if (l->stalled)
                atomic_store(l->stalled, 1);
        } else {
            if (stalled)
                sw_log_info("main loop moving again", NULL);
            stalled = 0;
            if (l->stalled)
                atomic_store(l->stalled, 0);
            if (l->lease == NULL)
                sw_notify_watchdog();
            if (sw_proc_heartbeat(l->redis, l->fid, l->value, l->cfg->heartbeat_ttl_s, 0) < 0) {
                if (!redis_down)
                    sw_log_warn("heartbeat failed", "error=\"%s\" action=\"retrying every "
                                "200 ms\"", l->redis->errstr);
                redis_down = 1;
                atomic_store(&l->quiet_until_ms,
                             sw_clock_mono_ms() + (int64_t)l->cfg->heartbeat_ttl_s * 1000 + 1000);
            } else {
                if (redis_down)
                    sw_log_info("heartbeat renewed again", NULL);
                redis_down = 0;
                if (l->lease)
                    renew_lease(l);
            }
        }
        /* Every second; every 200 ms while Redis fails, so the heartbeat is
         * back as soon as Redis is. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        ts.tv_nsec += redis_down ? 200000000L : 0;
        ts.tv_sec += redis_down ? 0 : 1;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&l->lock);
        while (!l->stop && pthread_cond_timedwait(&l->wake, &l->lock, &ts) != ETIMEDOUT) {
        }
    }
    pthread_mutex_unlock(&l->lock);
    return NULL;
}

sw_liveness *sw_liveness_start(const sw_config *cfg, const sw_redis_opts *ro, const char *fid,
                               const char *value, atomic_int *lease, atomic_int *stalled)
{
    sw_liveness *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    l->cfg = cfg;
    snprintf(l->fid, sizeof l->fid, "%s", fid);
    snprintf(l->value, sizeof l->value, "%s", value);
    l->lease = lease;
    l->stalled = stalled;
    snprintf(l->log_context, sizeof l->log_context, "%s", sw_log_thread_context_get());
    l->redis = sw_redis_new(ro);
    atomic_init(&l->deadline_ms, sw_clock_mono_ms() + 30000);
    atomic_init(&l->pg_deadline_ms, INT64_MAX);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->lock, NULL);
    pthread_cond_init(&l->wake, &ca);
    pthread_condattr_destroy(&ca);
    if (l->redis == NULL || pthread_create(&l->thread, NULL, run, l) != 0) {
        sw_redis_free(l->redis);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->wake);
        free(l);
        return NULL;
    }
    return l;
}

int64_t sw_liveness_quiet_until(const sw_liveness *l)
{
    return l ? atomic_load(&l->quiet_until_ms) : 0;
}

void sw_liveness_busy(sw_liveness *l, int64_t ms)
{
    if (l)
        atomic_store(&l->deadline_ms, sw_clock_mono_ms() + ms);
}

void sw_liveness_pg(sw_liveness *l, int64_t ms)
{
    if (l)
        atomic_store(&l->pg_deadline_ms, ms < 0 ? INT64_MAX : sw_clock_mono_ms() + ms);
}

void sw_liveness_stop(sw_liveness *l, int lapse)
{
    if (l == NULL)
        return;
    pthread_mutex_lock(&l->lock);
    l->stop = 1;
    pthread_cond_signal(&l->wake);
    pthread_mutex_unlock(&l->lock);
    pthread_join(l->thread, NULL);
    /* Nothing is held, so the heartbeat should lapse at once; if Redis is
     * gone it lapses by its TTL instead. */
    if (lapse && sw_proc_heartbeat(l->redis, l->fid, l->value, 1, 0) < 0)
        sw_log_debug("heartbeat not shortened", "error=\"%s\"", l->redis->errstr);
    sw_redis_free(l->redis);
    pthread_mutex_destroy(&l->lock);
    pthread_cond_destroy(&l->wake);
    free(l);
}
