#ifndef SW_REDIS_H_
#define SW_REDIS_H_

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "cluster.h"
#include "endpoint.h"
#include "keys.h"
#include "scripts.h"
#include "sentinel.h"

/* A thin hiredis adapter with an explicit protocol state, in the manner
 * of hiredis itself: one command, one reply, whose type is checked against
 * what the call expects. A connection whose reply stream is in doubt (an
 * I/O error, a timeout, a reply of the wrong type) is dropped, never used
 * again; nothing ever reads a reply that belongs to another command. One
 * sw_redis per thread: hiredis contexts are not thread-safe.
 *
 * Every Spillway script is a shebang script (scripts.h): Redis checks
 * OOM, READONLY and the like before it runs one, so an error answer means
 * the script did nothing, and the adapter says so. */

enum sw_redis_err {
    SW_REDIS_OK = 0,
    SW_REDIS_ECONNECT,  /* no connection (refused, timed out, AUTH refused): nothing was sent */
    SW_REDIS_EIO,       /* the connection broke or timed out after sending: effect unknown */
    SW_REDIS_EREFUSED,  /* Redis answered an error (READONLY, LOADING, MISCONF, NOPERM...): nothing done */
    SW_REDIS_EOOM,      /* refused: Redis is at maxmemory (OOM); nothing done */
    SW_REDIS_EFULL,     /* refused by the enqueue script: over max_queue_records */
    SW_REDIS_EPROTO,    /* a reply of the wrong type, or a script failed midway: effect unknown */
    SW_REDIS_ENOMEM,    /* out of memory here; nothing sent */
    SW_REDIS_ENOACK,    /* written on the master, but fewer replicas than
                           min_replica_acks confirmed it in time: it may
                           be lost in a failover */
};

/* A few words on `e`, e.g. "Redis refused the command". */
const char *sw_redis_strerror(enum sw_redis_err e);

/* What to do about a failure of class `e` with Redis' error `code` (may
 * be "" or NULL) and text `errstr` (an AUTH refusal is ECONNECT with the
 * reply in the text): one sentence naming the real cause's fix. Pure. */
const char *sw_redis_hint(enum sw_redis_err e, const char *code, const char *errstr);

/* 1 when a command that failed with `e` may still have run (EIO, EPROTO,
 * ENOACK). */
int sw_redis_maybe_done(enum sw_redis_err e);

/* The class of an error reply `msg` (its first word is Redis' code):
 * EOOM, EREFUSED, or EPROTO for an error raised inside a running script
 * (`in_script`), which may have written before it failed. Pure. */
enum sw_redis_err sw_redis_classify(const char *msg, int in_script);

/* Where and how to connect. The strings are copied. */
typedef struct sw_redis_opts {
    const char *host;
    int port;
    int timeout_ms;
    const char *prefix;
    const char *user;        /* ACL user, or "" / NULL for the default */
    const char *password;    /* "" / NULL: no AUTH */
    /* With Sentinel: "host:port,..." of the Sentinels, and the name they
     * know the master by. host and port are then not used. */
    const char *sentinels;   /* "" / NULL: connect to host:port */
    const char *master_name;
    const char *sentinel_password;  /* "" / NULL: no AUTH to the Sentinels */
    int min_replica_acks;    /* sw_redis_wait_replicas(): replicas a write
                                must reach (0: none) */
    /* With Redis Cluster: "host:port,..." of nodes to learn the slot map
     * from. Every key shares the prefix's hash tag, so one slot: the
     * adapter follows its owner (CLUSTER SLOTS, MOVED, ASK, TRYAGAIN). */
    const char *cluster_nodes;   /* "" / NULL: not a cluster */
} sw_redis_opts;

/* Cluster mode: where the one slot of our keys lives. */
typedef struct sw_cluster_route {
    sw_endpoint seeds[SW_ENDPOINTS_MAX];
    int nseeds;
    int slot;                  /* of the prefix's hash tag */
    sw_endpoint owner;         /* as last learned; port 0 = not known */
    int moved;                 /* owner just named by a MOVED: no need to ask */
    int asked;                 /* the last reply was an ASK to ask_to */
    sw_endpoint ask_to;
    void *ask_ctx;             /* the connection a write of this call went
                                  on by ASK, kept for its WAIT; NULL */
} sw_cluster_route;

typedef struct sw_redis {
    enum sw_redis_err err;
    char code[24];             /* the first word of Redis' error reply, or "" */
    char errstr[256];          /* "<what>: <detail>" */
    void *ctx;                 /* redisContext, NULL while disconnected */
    char host[256];            /* with Sentinel: the master last resolved */
    int port;
    sw_sentinel *sentinel;     /* NULL: host:port is fixed */
    sw_cluster_route *route;   /* NULL: not a cluster */
    int min_replica_acks;
    int timeout_ms;
    char user[128], password[256];
    sw_keys keys;
    char sha[SW_SCRIPT_COUNT][41];  /* loaded scripts, "" until loaded */
    int64_t next_connect_ms;   /* do not retry connecting before this */
    uint64_t connects;         /* connections made so far: a new one means a new server state */
    _Atomic uint64_t *reconnects;  /* optional: counts connects after the first */
    _Atomic uint64_t *redirects;   /* optional: [0] TRYAGAIN, [SW_REDIRECT_MOVED],
                                      [SW_REDIRECT_ASK] replies met (cluster) */
} sw_redis;

/* A new, not yet connected adapter; NULL when out of memory or when
 * o->sentinels does not parse (the config checks it first). Connects (and
 * authenticates, when o->password is set) lazily on first use and again
 * after a dropped connection; with Sentinels, each connection asks them
 * for the master first and checks with ROLE that it is one, so a
 * failover is followed on the next connection (errors that mean "not the
 * master any more", READONLY among them, drop the connection). */
sw_redis *sw_redis_new(const sw_redis_opts *o);
void sw_redis_free(sw_redis *r);   /* accepts NULL */

/* Connect now if not connected. 0, or -1 with err = ECONNECT. */
__attribute__((warn_unused_result)) int sw_redis_connect(sw_redis *r);

/* The same, after replacing an idle connection the peer closed (as every
 * write does first): so `connects` tells whether the next write goes to a
 * new connection. 0, or -1. */
__attribute__((warn_unused_result)) int sw_redis_connect_for_write(sw_redis *r);

/* Drop the connection (the next call reconnects). */
void sw_redis_disconnect(sw_redis *r);

/* A script's arguments: keys first, then the rest, each a pointer and a
 * length the caller keeps alive until the call returns; numbers are
 * formatted into storage of the builder's own. The vector keeps its first
 * SW_REDIS_ARGS_HEAD slots for EVALSHA, the sha and the key count, so a
 * call sends it without a copy. */
#define SW_REDIS_ARGS_HEAD 3
typedef struct sw_redis_args {
    const char **v;             /* v[HEAD..HEAD+n): the arguments */
    size_t *len;
    int n, cap;
    int nkeys;                  /* for scripts: how many of v[] are KEYS */
    struct sw_redis_nums *nums; /* private */
    int oom;
} sw_redis_args;

void sw_redis_args_init(sw_redis_args *a);
void sw_redis_args_free(sw_redis_args *a);      /* accepts NULL */
void sw_redis_args_str(sw_redis_args *a, const char *s);
void sw_redis_args_bin(sw_redis_args *a, const void *p, size_t n);
void sw_redis_args_int(sw_redis_args *a, long long v);
/* Mark everything added so far as the script's KEYS. */
void sw_redis_args_end_keys(sw_redis_args *a);

/* Reply types a call may expect (hiredis' REDIS_REPLY_* values). */
enum sw_reply_type {
    SW_REPLY_ANY = 0, SW_REPLY_STRING = 1, SW_REPLY_ARRAY = 2, SW_REPLY_INTEGER = 3,
    SW_REPLY_NIL = 4, SW_REPLY_STATUS = 5,
    SW_REPLY_STRING_OR_NIL = 100,
};

/* Run one command, a printf-style line (hiredis' format: each %s is one
 * argument, whatever it holds), and return its reply (free with
 * sw_redis_reply_free), or NULL with err/code/errstr set. The reply must
 * be of type `want`; anything else drops the connection (EPROTO).
 * `reads`: the command writes nothing, so after an I/O error on a
 * connection that was not fresh it is sent once more on a new one (the
 * first command after a Redis restart then does not fail). */
__attribute__((format(printf, 5, 6)))
void *sw_redis_callf(sw_redis *r, const char *what, enum sw_reply_type want, int reads,
                     const char *fmt, ...);

/* Run script `s` with KEYS and ARGV from `a` by EVALSHA, loading it when
 * Redis does not know it (NOSCRIPT after a restart or SCRIPT FLUSH) and
 * trying again. Otherwise as sw_redis_callf(). Fills the head slots of
 * `a`'s argument vector. */
void *sw_redis_eval(sw_redis *r, enum sw_script s, const char *what, enum sw_reply_type want,
                    sw_redis_args *a);

/* Replies: type, integer, string, elements. */
int sw_redis_reply_type(const void *reply);
long long sw_redis_reply_int(const void *reply);
const char *sw_redis_reply_str(const void *reply, size_t *len);
size_t sw_redis_reply_len(const void *reply);
const void *sw_redis_reply_at(const void *reply, size_t i);
/* The i-th element as a string (NULL when it is not one). */
const char *sw_redis_reply_item(const void *reply, size_t i, size_t *len);
void sw_redis_reply_free(void *reply);   /* accepts NULL */

/* Check that every element of an array reply is of type `want`; on a
 * mismatch drop the connection and fail (EPROTO). 0, or -1. */
__attribute__((warn_unused_result))
int sw_redis_check_elements(sw_redis *r, const void *reply, enum sw_reply_type want,
                            const char *what);

/* Record a protocol failure found by a caller (a reply whose shape is
 * wrong): EPROTO, and the connection is dropped. */
void sw_redis_fail_proto(sw_redis *r, const char *what, const char *detail);

/* What a 202 is worth: Redis' persistence and eviction settings. */
typedef struct sw_redis_persistence {
    char appendonly[16];
    char appendfsync[16];
    char policy[32];        /* maxmemory-policy */
} sw_redis_persistence;

/* Read them with CONFIG GET. 0, or -1 (also when CONFIG is disabled). */
__attribute__((warn_unused_result))
int sw_redis_read_persistence(sw_redis *r, sw_redis_persistence *d);

/* One sentence on what can be lost under `d`, for logs and /readyz. */
const char *sw_redis_persistence_text(const sw_redis_persistence *d);

/* 1 when the eviction policy may evict any key, queued jobs included
 * (allkeys-*). volatile-* policies touch only keys with a TTL: job
 * statuses and idempotency keys, never the queue. */
int sw_redis_persistence_evicts(const sw_redis_persistence *d);

/* Redis' memory, from INFO memory: what it uses (everything Spillway and
 * anyone else keeps there) and its maxmemory (0: none set). */
typedef struct sw_redis_memory {
    long long used;
    long long max;
} sw_redis_memory;

/* 0, or -1. */
__attribute__((warn_unused_result)) int sw_redis_read_memory(sw_redis *r, sw_redis_memory *m);

/* After writes on this connection: wait (WAIT) until min_replica_acks
 * replicas hold them, for at most half of timeout_ms (the socket timeout
 * bounds the rest). 0, also when min_replica_acks is 0; -1 with ENOACK
 * when fewer confirmed (the writes stand on the master, and may be lost
 * in a failover), or another error. */
__attribute__((warn_unused_result)) int sw_redis_wait_replicas(sw_redis *r);

/* Would this server take writes? ROLE says master (a server that refuses
 * ROLE to our ACL user is given the benefit of the doubt); with
 * min_replica_acks, WAIT is allowed and enough replicas are connected;
 * in a cluster, cluster_state is ok. 0, or -1 with err; a refusal is
 * EREFUSED with code READONLY, NOREPLICAS, NOPERM or CLUSTERDOWN. */
__attribute__((warn_unused_result)) int sw_redis_writable(sw_redis *r);

/* PING. 0, or -1. */
__attribute__((warn_unused_result)) int sw_redis_ping(sw_redis *r);

#endif
