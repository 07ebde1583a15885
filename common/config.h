#ifndef SW_CONFIG_H_
#define SW_CONFIG_H_

#include <stddef.h>

#include "redis.h"
#include "sink.h"

/* The one INI file shared by spillway-server, spillway-flusher and
 * spillwayctl. Every key may be overridden by SPILLWAY_<SECTION>_<KEY>
 * (upper case; for sinks SPILLWAY_SINK_<NAME>_<KEY>). */
typedef struct sw_config {
    int err;
    char errstr[512];     /* "file:line: reason" after a failed load */

    /* [server] */
    char listen[128];
    int threads;
    long max_body_bytes;
    int max_records;      /* records per request */
    int worker_nice;      /* HTTP workers' nice, relative to the Redis lane */
    long max_queue_records;   /* high-water mark: 429 above it (0 = none) */
    int max_redis_memory_percent;  /* 429 while Redis uses more of its
                                      maxmemory than this (0 = never) */
    int idempotency_ttl_s;
    char tokens_file[256];    /* "" = no authentication */
    char admin_listen[128];   /* "" = admin routes on `listen` */
    char tls_cert[256], tls_key[256];   /* both or neither: HTTPS on `listen` */
    int max_header_bytes;     /* request line plus headers */
    int max_string_bytes;     /* any one string value in a record */
    int max_json_depth;       /* nesting inside a json/jsonb value */
    int request_timeout_ms;   /* whole request: head, then body */
    int header_timeout_ms;    /* a request head, from its first byte (and a new
                                 connection's first byte) */
    int idle_timeout_ms;      /* keep-alive connection with no request */
    int max_connections;      /* open on `listen` at once */
    int max_per_address;      /* of them from one client address (0 = no cap) */
    long max_body_buffer_bytes;   /* bodies being received at once (0 = auto) */
    char trusted_proxies[256];  /* peers whose X-Forwarded-For names the client */
    char tls_ciphers[512];    /* TLS 1.2 suites; "" = forward-secret AEAD ones */
    /* [redis] */
    char redis_host[256];
    int redis_port;
    char prefix[64];
    int status_ttl_s;
    int redis_timeout_ms;
    int allow_eviction;       /* start even if Redis may evict queued jobs */
    char redis_user[128];     /* ACL user; "" = default */
    char redis_password[256]; /* "" = no AUTH */
    char sentinels[256];      /* "host:port,..." of Redis Sentinels; "" = none */
    char master_name[128];    /* the master's name in Sentinel */
    char sentinel_password[256];  /* "" = no AUTH to the Sentinels */
    int min_replica_acks;     /* replicas a job must reach before its 202 */
    char cluster_nodes[256];  /* "host:port,..." of Redis Cluster nodes; "" = none */
    int shards;               /* queue shards (keys.h); 0 = one queue, no shard keys */
    /* [postgres] */
    char conninfo[1024];
    int statement_timeout_ms;
    char pg_password[256];    /* "" = libpq's own (PGPASSWORD, ~/.pgpass) */
    /* [flusher] */
    int batch_max_records;
    long batch_max_bytes;     /* envelope bytes per batch (a larger job goes alone) */
    int flush_interval_ms;
    char flusher_id[64];
    int retry_max_ms;
    int ledger_retention_s;
    int heartbeat_ttl_s;
    char flusher_metrics_listen[128];   /* "" = no listener */
    int max_deliveries;
    long dead_max_jobs;       /* dead letters kept; the oldest go first */
    long dead_max_bytes;      /* envelope bytes of dead letters kept */
    /* [log] */
    int shutdown_grace_ms;    /* after SIGTERM: /readyz 503, still serving */
    int max_waiting;          /* GET ?wait=N at once (0: threads / 2) */
    char log_level[16];
    int log_include_values;   /* PostgreSQL's DETAIL (row contents) in logs */

    sw_sink *sinks;
    int nsinks;
} sw_config;

/* Load `path` over the defaults, then apply environment overrides and
 * check the result. 0, or -1 with cfg->err set and "file:line: reason" in
 * cfg->errstr. Call sw_config_free() in both cases. */
__attribute__((warn_unused_result)) int sw_config_load(sw_config *cfg, const char *path);

/* Load from a string (for tests); `name` stands for the file in errors. */
__attribute__((warn_unused_result))
int sw_config_load_string(sw_config *cfg, const char *name, const char *text);

/* The sink called `name` (length n), or NULL. */
const sw_sink *sw_config_sink(const sw_config *cfg, const char *name, size_t n);

/* The i-th key the parser knows, from 0: its section ("sink.NAME" for a
 * sink's) and name. 0, or -1 past the last. For the docs' tests. */
int sw_config_key(int i, const char **section, const char **name);

/* The [redis] settings as adapter options; the strings point into cfg. */
sw_redis_opts sw_config_redis(const sw_config *cfg);

/* Free the sinks. Accepts NULL. */
void sw_config_free(sw_config *cfg);

#endif
