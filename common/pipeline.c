#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

/* Jobs and envelope bytes per Redis call; a larger backlog goes out in
 * several calls, and a job larger than the byte bound goes alone. */
#define MAX_GROUP 256
#define MAX_GROUP_BYTES (4u << 20)

struct sw_pipeline {
    _Atomic(sw_pipeline_req *) head;   /* newest first (a Treiber stack) */
    sem_t wake;                        /* posted when head goes from empty */
    atomic_int stop;
    pthread_t thread;
    int started;
    sw_redis *redis;
    int ttl_s, idem_ttl_s;
    long max_queued;
    const sw_pipeline_shape *shapes;
    int nshapes;
    uint64_t shapes_on;                /* the connection they were recorded on */
    sw_queue_job jobs[MAX_GROUP];
};

static void answer(sw_pipeline *p, sw_pipeline_req **group, int n, int rc)
{
    for (int i = 0; i < n; i++) {
        sw_pipeline_req *r = group[i];
        memcpy(r->job.prev, p->jobs[i].prev, sizeof r->job.prev);
        r->err = rc == 0 ? SW_REDIS_OK : p->redis->err;
        if (rc != 0) {
            memcpy(r->code, p->redis->code, sizeof r->code);
            memcpy(r->errstr, p->redis->errstr, sizeof r->errstr);
        }
        r->on_done(r);
    }
}

/* On a new connection, record the sinks' shapes there first. */
static int shapes_ready(sw_pipeline *p)
{
    if (sw_redis_connect_for_write(p->redis) != 0)
        return -1;
    if (p->shapes_on == p->redis->connects)
        return 0;
    for (int i = 0; i < p->nshapes; i++) {
        if (sw_queue_register_shape(p->redis, p->shapes[i].fingerprint, p->shapes[i].columns) != 0)
            return -1;
    }
    p->shapes_on = p->redis->connects;
    return 0;
}

static void *lane(void *arg)
{
    sw_pipeline *p = arg;
    sw_pipeline_req *group[MAX_GROUP];
    for (;;) {
        while (sem_wait(&p->wake) != 0 && errno == EINTR) {
        }
        /* Taking the whole list at once is what makes the stack ABA-safe:
         * nobody ever pops a single node. */
        sw_pipeline_req *list = atomic_exchange(&p->head, NULL);
        if (list == NULL) {
            if (atomic_load(&p->stop))
                break;
            continue;
        }
        sw_pipeline_req *fifo = NULL;
        while (list) {
            sw_pipeline_req *next = list->next;
            list->next = fifo;
            fifo = list;
            list = next;
        }
        while (fifo) {
            int n = 0;
            size_t bytes = 0;
            int64_t now = sw_clock_mono_ms();
            while (fifo && n < MAX_GROUP && (n == 0 || bytes + fifo->job.env_len <= MAX_GROUP_BYTES)) {
                sw_pipeline_req *r = fifo;
                fifo = fifo->next;
                if (now > r->deadline_ms) {
                    /* Waited past its bound (the lane was stuck on Redis):
                     * answered without being sent. */
                    r->err = SW_REDIS_ECONNECT;
                    r->code[0] = '\0';
                    r->job.prev[0] = '\0';
                    snprintf(r->errstr, sizeof r->errstr, "enqueue: the Redis lane did not "
                             "take the job in time ([redis] timeout_ms)");
                    r->on_done(r);
                    continue;
                }
                group[n] = r;
                p->jobs[n++] = r->job;
                bytes += r->job.env_len;
            }
            if (n == 0)
                continue;
            int rc = shapes_ready(p);
            /* The jobs were not sent, whatever befell the shapes. */
            if (rc != 0 && sw_redis_maybe_done(p->redis->err))
                p->redis->err = SW_REDIS_ECONNECT;
            if (rc == 0)
                rc = sw_queue_enqueue(p->redis, n, p->jobs, p->ttl_s, p->idem_ttl_s,
                                      p->max_queued);
            /* One WAIT covers the whole group: it counts every write made
             * on the connection so far. */
            if (rc == 0 && sw_redis_wait_replicas(p->redis) != 0)
                rc = -1;
            answer(p, group, n, rc);
        }
    }
    return NULL;
}

sw_pipeline *sw_pipeline_new(const sw_redis_opts *o, int ttl_s, int idem_ttl_s,
                             long max_queued, const sw_pipeline_shape *shapes, int nshapes)
{
    sw_pipeline *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    atomic_init(&p->head, NULL);
    atomic_init(&p->stop, 0);
    p->ttl_s = ttl_s;
    p->idem_ttl_s = idem_ttl_s;
    p->max_queued = max_queued;
    p->shapes = shapes;
    p->nshapes = nshapes;
    if (sem_init(&p->wake, 0, 0) != 0) {
        free(p);
        return NULL;
    }
    p->redis = sw_redis_new(o);
    if (p->redis == NULL || pthread_create(&p->thread, NULL, lane, p) != 0) {
        sw_pipeline_free(p);
        return NULL;
    }
    p->started = 1;
    return p;
}

void sw_pipeline_count_reconnects(sw_pipeline *p, _Atomic uint64_t *counter,
                                  _Atomic uint64_t *redirects)
{
    p->redis->reconnects = counter;
    p->redis->redirects = redirects;
}

void sw_pipeline_free(sw_pipeline *p)
{
    if (p == NULL)
        return;
    if (p->started) {
        /* The lane answers what is on the list before it sees the stop. */
        atomic_store(&p->stop, 1);
        sem_post(&p->wake);
        pthread_join(p->thread, NULL);
    }
    sem_destroy(&p->wake);
    sw_redis_free(p->redis);
    free(p);
}

void sw_pipeline_submit(sw_pipeline *p, sw_pipeline_req *req, int wait_ms)
{
    req->err = SW_REDIS_OK;
    req->code[0] = '\0';
    req->deadline_ms = sw_clock_mono_ms() + wait_ms;
    sw_pipeline_req *old = atomic_load(&p->head);
    do {
        req->next = old;
    } while (!atomic_compare_exchange_weak(&p->head, &old, req));
    if (old == NULL)
        sem_post(&p->wake);
}
