/* The argument builder of sw_redis_eval() (redis.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "redis.h"

/* Argument builder. Numbers live in blocks that never move. */
#define NUMS_PER_BLOCK 64
struct sw_redis_nums {
    struct sw_redis_nums *next;
    int used;
    char v[NUMS_PER_BLOCK][24];
};

void sw_redis_args_init(sw_redis_args *a)
{
    memset(a, 0, sizeof *a);
}

void sw_redis_args_free(sw_redis_args *a)
{
    if (a == NULL)
        return;
    free(a->v);
    free(a->len);
    while (a->nums) {
        struct sw_redis_nums *n = a->nums->next;
        free(a->nums);
        a->nums = n;
    }
    memset(a, 0, sizeof *a);
}

void sw_redis_args_bin(sw_redis_args *a, const void *p, size_t n)
{
    if (a->oom)
        return;
    if (a->n + SW_REDIS_ARGS_HEAD >= a->cap) {
        int cap = a->cap ? a->cap * 2 : 32;
        const char **v = realloc(a->v, (size_t)cap * sizeof *v);
        if (v)
            a->v = v;
        size_t *len = v ? realloc(a->len, (size_t)cap * sizeof *len) : NULL;
        if (len)
            a->len = len;
        if (v == NULL || len == NULL) {
            a->oom = 1;
            return;
        }
        a->cap = cap;
    }
    a->v[SW_REDIS_ARGS_HEAD + a->n] = p;
    a->len[SW_REDIS_ARGS_HEAD + a->n++] = n;
}

void sw_redis_args_str(sw_redis_args *a, const char *s)
{
    sw_redis_args_bin(a, s, strlen(s));
}

void sw_redis_args_int(sw_redis_args *a, long long v)
{
    if (a->oom)
        return;
    if (a->nums == NULL || a->nums->used == NUMS_PER_BLOCK) {
        struct sw_redis_nums *b = malloc(sizeof *b);
        if (b == NULL) {
            a->oom = 1;
            return;
        }
        b->used = 0;
        b->next = a->nums;
        a->nums = b;
    }
    char *s = a->nums->v[a->nums->used++];
    int n = snprintf(s, 24, "%lld", v);
    sw_redis_args_bin(a, s, (size_t)n);
}

void sw_redis_args_end_keys(sw_redis_args *a)
{
    a->nkeys = a->n;
}
