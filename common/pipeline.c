#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Jobs and envelope bytes per Redis call; a larger backlog goes out in
 * several calls, and a job larger than the byte bound goes alone. */
#define MAX_GROUP 256
#define MAX_GROUP_BYTES (4u << 20)

enum { REQ_WAITING, REQ_TAKEN, REQ_ABANDONED };

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

sw_pipeline_req *sw_pipeline_req_new(void)
{
    sw_pipeline_req *r = calloc(1, sizeof *r);
    if (r && sem_init(&r->done, 0, 0) != 0) {
        free(r);
        return NULL;
    }
    return r;
}

void sw_pipeline_req_free(sw_pipeline_req *r)
{
    if (r == NULL)
        return;
    sem_destroy(&r->done);
    free(r);
}

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
        sem_post(&r->done);
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
            while (fifo && n < MAX_GROUP && (n == 0 || bytes + fifo->job.env_len <= MAX_GROUP_BYTES)) {
                sw_pipeline_req *r = fifo;
                fifo = fifo->next;
                int waiting = REQ_WAITING;
                if (!atomic_compare_exchange_strong(&r->state, &waiting, REQ_TAKEN)) {
                    /* Its worker gave up before we got here and left it
                     * to us; nothing of it is read. */
                    sw_pipeline_req_free(r);
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

void sw_pipeline_count_reconnects(sw_pipeline *p, _Atomic uint64_t *counter)
{
    p->redis->reconnects = counter;
}

void sw_pipeline_free(sw_pipeline *p)
{
    if (p == NULL)
        return;
    if (p->started) {
        atomic_store(&p->stop, 1);
        sem_post(&p->wake);
        pthread_join(p->thread, NULL);
    }
    /* Withdrawn requests still on the list belong to us. */
    sw_pipeline_req *list = atomic_exchange(&p->head, NULL);
    while (list) {
        sw_pipeline_req *next = list->next;
        if (atomic_load(&list->state) == REQ_ABANDONED)
            sw_pipeline_req_free(list);
        list = next;
    }
    sem_destroy(&p->wake);
    sw_redis_free(p->redis);
    free(p);
}

int sw_pipeline_enqueue(sw_pipeline *p, sw_pipeline_req **reqp, int wait_ms)
{
    sw_pipeline_req *req = *reqp;
    atomic_store(&req->state, REQ_WAITING);
    req->err = SW_REDIS_OK;
    req->code[0] = '\0';
    sw_pipeline_req *old = atomic_load(&p->head);
    do {
        req->next = old;
    } while (!atomic_compare_exchange_weak(&p->head, &old, req));
    if (old == NULL)
        sem_post(&p->wake);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += wait_ms / 1000;
    ts.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    int rc;
    while ((rc = sem_timedwait(&req->done, &ts)) != 0 && errno == EINTR) {
    }
    if (rc != 0) {
        int waiting = REQ_WAITING;
        if (atomic_compare_exchange_strong(&req->state, &waiting, REQ_ABANDONED)) {
            /* Not taken: it will never be sent. The lane frees it. */
            *reqp = sw_pipeline_req_new();
            if (*reqp) {
                (*reqp)->err = SW_REDIS_ECONNECT;
                snprintf((*reqp)->errstr, sizeof (*reqp)->errstr,
                         "enqueue: the Redis lane did not take the job within %d ms "
                         "([redis] timeout_ms)", wait_ms);
            }
            return -1;
        }
        /* Taken: the answer is on its way, bounded by the lane's Redis
         * timeout. */
        while (sem_wait(&req->done) != 0 && errno == EINTR) {
        }
    }
    return req->err == SW_REDIS_OK ? 0 : -1;
}
