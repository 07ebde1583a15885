#include "committer.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "log.h"

/* States, under `lock`: IDLE -> (hand) HANDED -> (thread) DONE -> (result
 * taken) IDLE. The main loop alone moves IDLE->HANDED and DONE->IDLE,
 * the thread alone HANDED->DONE. */
enum { IDLE, HANDED, DONE };

struct sw_committer {
    sw_commit_fn fn;
    void *ctx;
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work, over;
    int state, quit;
    sw_batch *b;
    int n, fresh, rc;
    char log_context[64];      /* the starting drain's (log.h) */
};

static void *run(void *arg)
{
    sw_committer *c = arg;
    sw_log_thread_context(c->log_context);
    pthread_mutex_lock(&c->lock);
    for (;;) {
        while (c->state != HANDED && !c->quit)
            pthread_cond_wait(&c->work, &c->lock);
        if (c->state != HANDED)
            break;
        sw_batch *b = c->b;
        int n = c->n, fresh = c->fresh;
        pthread_mutex_unlock(&c->lock);
        int rc = c->fn(c->ctx, b, n, fresh);
        pthread_mutex_lock(&c->lock);
        c->rc = rc;
        c->state = DONE;
        pthread_cond_signal(&c->over);
    }
    pthread_mutex_unlock(&c->lock);
    return NULL;
}

sw_committer *sw_committer_start(sw_commit_fn fn, void *ctx)
{
    sw_committer *c = calloc(1, sizeof *c);
    if (c == NULL)
        return NULL;
    c->fn = fn;
    c->ctx = ctx;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->work, NULL);
    pthread_cond_init(&c->over, &ca);
    pthread_condattr_destroy(&ca);
    snprintf(c->log_context, sizeof c->log_context, "%s", sw_log_thread_context_get());
    if (pthread_create(&c->thread, NULL, run, c) != 0) {
        pthread_mutex_destroy(&c->lock);
        pthread_cond_destroy(&c->work);
        pthread_cond_destroy(&c->over);
        free(c);
        return NULL;
    }
    return c;
}

void sw_committer_hand(sw_committer *c, sw_batch *b, int n, int fresh)
{
    pthread_mutex_lock(&c->lock);
    c->b = b;
    c->n = n;
    c->fresh = fresh;
    c->state = HANDED;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->lock);
}

int sw_committer_busy(const sw_committer *c)
{
    sw_committer *m = (sw_committer *)c;
    pthread_mutex_lock(&m->lock);
    int busy = m->state != IDLE;
    pthread_mutex_unlock(&m->lock);
    return busy;
}

int sw_committer_result(sw_committer *c, int wait_ms, int *rc)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += wait_ms / 1000;
    until.tv_nsec += (long)(wait_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->lock);
    while (c->state == HANDED && wait_ms > 0 &&
           pthread_cond_timedwait(&c->over, &c->lock, &until) != ETIMEDOUT) {
    }
    int got = c->state == DONE;
    if (got) {
        *rc = c->rc;
        c->state = IDLE;
    }
    pthread_mutex_unlock(&c->lock);
    return got;
}

void sw_committer_drain(sw_committer *c)
{
    int rc;
    pthread_mutex_lock(&c->lock);
    while (c->state == HANDED)
        pthread_cond_wait(&c->over, &c->lock);
    pthread_mutex_unlock(&c->lock);
    (void)sw_committer_result(c, 0, &rc);
}

void sw_committer_stop(sw_committer *c)
{
    if (c == NULL)
        return;
    pthread_mutex_lock(&c->lock);
    c->quit = 1;
    pthread_cond_signal(&c->work);
    pthread_mutex_unlock(&c->lock);
    pthread_join(c->thread, NULL);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->work);
    pthread_cond_destroy(&c->over);
    free(c);
}
