#include "pipeline.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Jobs per Redis call; a larger backlog goes out in several calls. */
#define MAX_GROUP 256

struct sw_pipeline {
    _Atomic(sw_pipeline_req *) head;   /* newest first (a Treiber stack) */
    sem_t wake;                        /* posted when head goes from empty */
    atomic_int stop;
    pthread_t thread;
    int started;
    sw_redis *redis;
    int ttl_s, idem_ttl_s;
    long max_queued;
    sw_redis_job jobs[MAX_GROUP];
};

static void answer(sw_pipeline *p, sw_pipeline_req **group, int n, int rc)
{
    for (int i = 0; i < n; i++) {
        sw_pipeline_req *r = group[i];
        memcpy(r->job.prev, p->jobs[i].prev, sizeof r->job.prev);
        r->err = rc == 0 ? SW_REDIS_OK : p->redis->err;
        if (rc != 0)
            memcpy(r->errstr, p->redis->errstr, sizeof r->errstr);
        sem_post(&r->done);
    }
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
            for (; fifo && n < MAX_GROUP; fifo = fifo->next) {
                group[n] = fifo;
                p->jobs[n++] = fifo->job;
            }
            int rc = sw_redis_enqueue(p->redis, n, p->jobs, p->ttl_s, p->idem_ttl_s,
                                      p->max_queued);
            answer(p, group, n, rc);
        }
    }
    return NULL;
}

sw_pipeline *sw_pipeline_new(const sw_redis_opts *o, int ttl_s, int idem_ttl_s,
                             long max_queued)
{
    sw_pipeline *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    atomic_init(&p->head, NULL);
    atomic_init(&p->stop, 0);
    p->ttl_s = ttl_s;
    p->idem_ttl_s = idem_ttl_s;
    p->max_queued = max_queued;
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
    sem_destroy(&p->wake);
    sw_redis_free(p->redis);
    free(p);
}

int sw_pipeline_enqueue(sw_pipeline *p, sw_pipeline_req *req)
{
    if (sem_init(&req->done, 0, 0) != 0) {
        req->err = SW_REDIS_EREPLY;
        strcpy(req->errstr, "sem_init failed");
        return -1;
    }
    sw_pipeline_req *old = atomic_load(&p->head);
    do {
        req->next = old;
    } while (!atomic_compare_exchange_weak(&p->head, &old, req));
    if (old == NULL)
        sem_post(&p->wake);
    while (sem_wait(&req->done) != 0 && errno == EINTR) {
    }
    sem_destroy(&req->done);
    return req->err == SW_REDIS_OK ? 0 : -1;
}
