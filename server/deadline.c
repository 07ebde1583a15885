#include "deadline.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "clock.h"
#include "log.h"

typedef struct slot {
    pthread_mutex_t lock;     /* between its worker and the watchdog only */
    int armed, fired;
    int64_t deadline_ms;
    char peer[48];
    int peer_port, local_port;
} slot;

struct sw_deadline {
    slot *slots;
    int nslots;
    atomic_int claimed;
    atomic_int stop;
    pthread_t thread;
    int started;
};

static int port_of(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)(const void *)ss)->sin_port);
    if (ss->ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)(const void *)ss)->sin6_port);
    return -1;
}

static void addr_of(const struct sockaddr_storage *ss, char *out, size_t len)
{
    out[0] = '\0';
    if (ss->ss_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)ss)->sin_addr, out,
                  (socklen_t)len);
    else if (ss->ss_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)ss)->sin6_addr, out,
                  (socklen_t)len);
}

/* shutdown(how) the socket connected from peer:peer_port to local_port. */
static int cut(const char *peer_addr, int peer_port, int local_port, int how)
{
    DIR *dir = opendir("/proc/self/fd");
    struct dirent *de;
    int done = 0;
    if (dir == NULL)
        return 0;
    while (!done && (de = readdir(dir)) != NULL) {
        char *end;
        long fd = strtol(de->d_name, &end, 10);
        if (*end != '\0' || fd < 0 || fd == dirfd(dir))
            continue;
        struct sockaddr_storage peer, local;
        socklen_t pl = sizeof peer, ll = sizeof local;
        char text[64];
        if (getpeername((int)fd, (struct sockaddr *)&peer, &pl) != 0 ||
            getsockname((int)fd, (struct sockaddr *)&local, &ll) != 0)
            continue;
        addr_of(&peer, text, sizeof text);
        if (port_of(&peer) == peer_port && port_of(&local) == local_port &&
            strcmp(text, peer_addr) == 0) {
            shutdown((int)fd, how);
            done = 1;
        }
    }
    closedir(dir);
    return done;
}

static void *watch(void *arg)
{
    sw_deadline *d = arg;
    struct timespec tick = {0, 100 * 1000 * 1000};
    while (!atomic_load(&d->stop)) {
        nanosleep(&tick, NULL);
        int64_t now = sw_clock_mono_ms();
        int n = atomic_load(&d->claimed);
        for (int i = 0; i < n && i < d->nslots; i++) {
            slot *s = &d->slots[i];
            /* Held across the cut, so the worker cannot finish this
             * request and start another on the same socket meanwhile. */
            pthread_mutex_lock(&s->lock);
            if (s->armed && !s->fired && now > s->deadline_ms) {
                s->fired = 1;
                if (cut(s->peer, s->peer_port, s->local_port, SHUT_RDWR))
                    sw_log_warn("request too slow; connection closed", "peer=%s:%d", s->peer,
                                s->peer_port);
            }
            pthread_mutex_unlock(&s->lock);
        }
    }
    return NULL;
}

sw_deadline *sw_deadline_new(int nslots)
{
    sw_deadline *d = calloc(1, sizeof *d);
    if (d == NULL)
        return NULL;
    d->slots = calloc((size_t)nslots, sizeof *d->slots);
    if (d->slots == NULL) {
        sw_deadline_free(d);
        return NULL;
    }
    d->nslots = nslots;
    for (int i = 0; i < nslots; i++)
        pthread_mutex_init(&d->slots[i].lock, NULL);
    atomic_init(&d->claimed, 0);
    atomic_init(&d->stop, 0);
    if (pthread_create(&d->thread, NULL, watch, d) != 0) {
        sw_deadline_free(d);
        return NULL;
    }
    d->started = 1;
    return d;
}

void sw_deadline_free(sw_deadline *d)
{
    if (d == NULL)
        return;
    if (d->started) {
        atomic_store(&d->stop, 1);
        pthread_join(d->thread, NULL);
    }
    for (int i = 0; d->slots && i < d->nslots; i++)
        pthread_mutex_destroy(&d->slots[i].lock);
    free(d->slots);
    free(d);
}

int sw_deadline_claim(sw_deadline *d)
{
    int i = atomic_fetch_add(&d->claimed, 1);
    return i < d->nslots ? i : -1;
}

void sw_deadline_arm(sw_deadline *d, int i, int64_t deadline_ms, const char *peer_addr,
                     int peer_port, int local_port)
{
    if (i < 0)
        return;
    slot *s = &d->slots[i];
    pthread_mutex_lock(&s->lock);
    s->armed = 1;
    s->fired = 0;
    s->deadline_ms = deadline_ms;
    strncpy(s->peer, peer_addr, sizeof s->peer - 1);
    s->peer[sizeof s->peer - 1] = '\0';
    s->peer_port = peer_port;
    s->local_port = local_port;
    pthread_mutex_unlock(&s->lock);
}

int sw_deadline_disarm(sw_deadline *d, int i)
{
    if (i < 0)
        return 0;
    slot *s = &d->slots[i];
    pthread_mutex_lock(&s->lock);
    int fired = s->fired;
    s->armed = 0;
    s->fired = 0;
    pthread_mutex_unlock(&s->lock);
    return fired;
}

int sw_deadline_stop_reading(const char *peer_addr, int peer_port, int local_port)
{
    return cut(peer_addr, peer_port, local_port, SHUT_RD);
}
