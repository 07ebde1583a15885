#include "http_pool.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"

/* A request that waited this long for a worker is counted and logged. */
#define WAIT_NOTICE_MS 100
/* At most one "waited" log line per this many ms per pool. */
#define WAIT_LOG_EVERY_MS 10000

struct sw_pool {
    const char *name;
    sw_pool_fns fns;
    int nice;
    pthread_mutex_t lock;
    pthread_cond_t more;
    sw_pool_item *head, *tail;      /* under lock */
    int queued;                     /* under lock */
    int stopping;                   /* under lock */
    pthread_t *threads;
    int nthreads;                   /* started */
    atomic_int busy;
    _Atomic uint64_t waited;
    /* The log line, under lock. */
    int64_t logged_ms;
    uint64_t unlogged;
    int64_t worst_ms;
};

static void note_wait(sw_pool *p, int64_t waited_ms)
{
    atomic_fetch_add_explicit(&p->waited, 1, memory_order_relaxed);
    int64_t now = sw_clock_mono_ms();
    pthread_mutex_lock(&p->lock);
    p->unlogged++;
    if (waited_ms > p->worst_ms)
        p->worst_ms = waited_ms;
    int log = now - p->logged_ms >= WAIT_LOG_EVERY_MS;
    uint64_t n = p->unlogged;
    int64_t worst = p->worst_ms;
    int busy = atomic_load(&p->busy), queued = p->queued;
    if (log) {
        p->logged_ms = now;
        p->unlogged = 0;
        p->worst_ms = 0;
    }
    pthread_mutex_unlock(&p->lock);
    if (log)
        sw_log_warn("requests waited for a worker", "pool=%s waited=%llu worst_ms=%lld "
                    "workers=%d busy=%d queued=%d action=\"%s\"", p->name,
                    (unsigned long long)n, (long long)worst, p->nthreads, busy, queued,
                    "every worker was busy: raise [server] threads, or look at what "
                    "they wait on (Redis latency)");
}

static void *worker(void *arg)
{
    sw_pool *p = arg;
    if (p->nice > 0 && setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), p->nice) != 0)
        sw_log_warn("cannot lower worker priority", "pool=%s nice=%d", p->name, p->nice);
    void *state = p->fns.start ? p->fns.start(p->fns.ctx) : NULL;
    for (;;) {
        pthread_mutex_lock(&p->lock);
        while (p->head == NULL && !p->stopping)
            pthread_cond_wait(&p->more, &p->lock);
        sw_pool_item *it = p->head;
        if (it == NULL) {
            pthread_mutex_unlock(&p->lock);
            break;
        }
        p->head = it->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued--;
        atomic_store(&it->queued, 0);
        atomic_fetch_add_explicit(&p->busy, 1, memory_order_relaxed);
        pthread_mutex_unlock(&p->lock);
        int64_t waited = sw_clock_mono_ms() - it->since_ms;
        if (waited >= WAIT_NOTICE_MS)
            note_wait(p, waited);
        p->fns.run(p->fns.ctx, state, it);
        atomic_fetch_sub_explicit(&p->busy, 1, memory_order_relaxed);
    }
    if (p->fns.stop)
        p->fns.stop(p->fns.ctx, state);
    return NULL;
}

sw_pool *sw_pool_start(const char *name, int threads, int nice, const sw_pool_fns *fns)
{
    sw_pool *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->name = name;
    p->fns = *fns;
    p->nice = nice;
    pthread_mutex_init(&p->lock, NULL);
    pthread_cond_init(&p->more, NULL);
    atomic_init(&p->busy, 0);
    atomic_init(&p->waited, 0);
    p->logged_ms = sw_clock_mono_ms() - WAIT_LOG_EVERY_MS;
    p->threads = calloc((size_t)threads, sizeof *p->threads);
    if (p->threads == NULL) {
        sw_pool_stop(p);
        return NULL;
    }
    for (int i = 0; i < threads; i++) {
        if (pthread_create(&p->threads[i], NULL, worker, p) != 0) {
            sw_log_error("cannot start a worker thread", "pool=%s", name);
            sw_pool_stop(p);
            return NULL;
        }
        p->nthreads++;
    }
    return p;
}

void sw_pool_push(sw_pool *p, sw_pool_item *it)
{
    /* An item is in one queue at most, once. */
    int was_queued = atomic_exchange(&it->queued, 1);
    assert(!was_queued);
    (void)was_queued;
    it->next = NULL;
    it->since_ms = sw_clock_mono_ms();
    pthread_mutex_lock(&p->lock);
    if (p->tail)
        p->tail->next = it;
    else
        p->head = it;
    p->tail = it;
    p->queued++;
    pthread_cond_signal(&p->more);
    pthread_mutex_unlock(&p->lock);
}

void sw_pool_stop(sw_pool *p)
{
    if (p == NULL)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    pthread_cond_broadcast(&p->more);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->nthreads; i++)
        pthread_join(p->threads[i], NULL);
    free(p->threads);
    pthread_cond_destroy(&p->more);
    pthread_mutex_destroy(&p->lock);
    free(p);
}

void sw_pool_stats_get(sw_pool *p, sw_pool_stats *s)
{
    int64_t now = sw_clock_mono_ms();
    pthread_mutex_lock(&p->lock);
    s->threads = p->nthreads;
    s->queued = p->queued;
    s->oldest_wait_s = p->head ? (double)(now - p->head->since_ms) / 1000.0 : 0;
    pthread_mutex_unlock(&p->lock);
    s->busy = atomic_load_explicit(&p->busy, memory_order_relaxed);
    s->waited = atomic_load_explicit(&p->waited, memory_order_relaxed);
}
