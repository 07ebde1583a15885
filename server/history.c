#include "history.h"

void sw_history_init(sw_history *h)
{
    pthread_mutex_init(&h->lock, NULL);
    h->head = h->n = 0;
}

void sw_history_destroy(sw_history *h)
{
    pthread_mutex_destroy(&h->lock);
}

void sw_history_add(sw_history *h, const sw_history_sample *s)
{
    pthread_mutex_lock(&h->lock);
    h->s[h->head] = *s;
    h->head = (h->head + 1) % SW_HISTORY_SAMPLES;
    if (h->n < SW_HISTORY_SAMPLES)
        h->n++;
    pthread_mutex_unlock(&h->lock);
}

int sw_history_json(sw_history *h, sw_buf *out)
{
    int rc = sw_buf_puts(out, "[");
    pthread_mutex_lock(&h->lock);
    for (int i = 0; i < h->n && rc == 0; i++) {
        const sw_history_sample *s =
            &h->s[(h->head - h->n + i + SW_HISTORY_SAMPLES) % SW_HISTORY_SAMPLES];
        rc = sw_buf_printf(out, "%s[%lld,%lld,%lld,%lld,%lld,%lld,%lld,%lld]", i ? "," : "",
                           (long long)s->t_ms, s->depth, s->in_flight, s->accepted, s->committed,
                           s->oldest_age_ms, s->p50_ms, s->p99_ms);
    }
    pthread_mutex_unlock(&h->lock);
    return rc | sw_buf_puts(out, "]");
}
