/* spillway-server: accepts writes over HTTP and queues them in Redis. */
#include <malloc.h>
#include <jansson.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "http.h"
#include "log.h"
#include "notify.h"
#include "queue.h"
#include "redis.h"
#include "history.h"
#include "pause.h"
#include "shards.h"
#include "status.h"

static volatile sig_atomic_t stop, reload;

static void on_signal(int sig)
{
    if (sig == SIGHUP)
        reload = 1;
    else
        stop = stop < 2 ? stop + 1 : 2;   /* a second one: no grace */
}

/* A sample of the queue for the dashboard's chart (history.h): the
 * overview's totals, on Redis' clock. Skipped when Redis does not answer. */
/* Every sink's commit latencies summed over the queues into lat. 0, -1. */
static int total_latency(const sw_config *cfg, sw_shards *q, uint64_t *lat)
{
    sw_sink_figures *fig = calloc((size_t)cfg->nsinks + 1, sizeof *fig);
    sw_redis *failed;
    int rc = fig && sw_shards_sink_figures(q, cfg, fig, NULL, &failed) >= 0 ? 0 : -1;
    memset(lat, 0, SW_LAT_NBUCKETS * sizeof *lat);
    for (int k = 0; rc == 0 && k < cfg->nsinks; k++)
        for (int i = 0; i < SW_LAT_NBUCKETS; i++)
            lat[i] += fig[k].lat[i];
    free(fig);
    return rc;
}

/* One history sample; `prev` holds the latency counts of the last one
 * (all 0 the first time: the step's percentiles are then left out). */
static void sample_history(sw_http *h, const sw_config *cfg, sw_shards *q, sw_buf *scratch,
                           uint64_t *prev)
{
    sw_redis *failed;
    uint64_t lat[SW_LAT_NBUCKETS], step[SW_LAT_NBUCKETS];
    if (sw_shards_overview(q, 0, scratch, &failed) != 0)
        return;
    json_t *o = json_loadb(scratch->data, scratch->len, 0, NULL);
    sw_history_sample s = {
        json_integer_value(json_object_get(o, "now_ms")),
        json_integer_value(json_object_get(o, "depth")),
        json_integer_value(json_object_get(o, "in_flight")),
        json_integer_value(json_object_get(o, "accepted_records_total")),
        json_integer_value(json_object_get(o, "committed_records_total")),
        0, -1, -1,
    };
    if (total_latency(cfg, q, lat) == 0) {
        int had = 0;
        for (int i = 0; i < SW_LAT_NBUCKETS; i++) {
            had |= prev[i] != 0;
            step[i] = lat[i] >= prev[i] ? lat[i] - prev[i] : 0;
        }
        if (had) {
            s.p50_ms = (long long)sw_lat_quantile(step, 0.5);
            s.p99_ms = (long long)sw_lat_quantile(step, 0.99);
        }
        memcpy(prev, lat, sizeof lat);
    }
    json_int_t oldest = json_integer_value(json_object_get(o, "oldest_enqueued_ms"));
    if (oldest > 0 && s.t_ms > oldest)
        s.oldest_age_ms = s.t_ms - oldest;
    json_decref(o);
    if (s.t_ms > 0)
        sw_http_sample(h, &s);
}

/* How well a node keeps a 202: 0 may evict, 1 no AOF, 2 AOF without
 * fsync always, 3 fsync always. */
static int durability_rank(const sw_redis_persistence *p)
{
    if (sw_redis_persistence_evicts(p))
        return 0;
    if (strcmp(p->appendonly, "yes") != 0)
        return 1;
    return strcmp(p->appendfsync, "always") == 0 ? 3 : 2;
}

/* Redis' persistence where the queues live: with shards, of the weakest
 * node any shard is on (a cluster master of one shard that may evict
 * counts). 0, or -1 with the error in `probe`. */
static int read_persistence(sw_redis *probe, sw_shards *q, sw_redis_persistence *out)
{
    /* The configured prefix's node too: it keeps the layout. */
    int rc = sw_redis_read_persistence(probe, out);
    if (rc != 0 || !q->sharded)
        return rc;
    for (int k = 0; k < q->n; k++) {
        sw_redis_persistence p;
        if (sw_redis_read_persistence(q->q[k], &p) != 0) {
            probe->err = q->q[k]->err;
            snprintf(probe->errstr, sizeof probe->errstr, "%s", q->q[k]->errstr);
            return -1;
        }
        if (durability_rank(&p) < durability_rank(out))
            *out = p;
    }
    return 0;
}

/* Redis memory of the fullest node any queue lives on. 0, or -1. */
static int read_memory(sw_shards *q, sw_redis_memory *out)
{
    int got = 0;
    for (int k = 0; k < q->n; k++) {
        sw_redis_memory m;
        if (sw_redis_read_memory(q->q[k], &m) != 0)
            return -1;
        if (!got || (m.max > 0 && (out->max == 0 || (double)m.used / (double)m.max >
                                                        (double)out->used / (double)out->max)))
            *out = m;
        got = 1;
    }
    return 0;
}

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spillway-server --config FILE\n"
            "\n"
            "Accepts writes on POST /v1/sinks/{sink}/records, queues them in Redis and\n"
            "answers 202 with a job id. See README.md for the API.\n"
            "\n"
            "  -c, --config FILE   the INI file (every key can be overridden by\n"
            "                      SPILLWAY_<SECTION>_<KEY> in the environment)\n"
            "  -h, --help          this text\n"
            "  -V, --version       print the version\n"
            "\n"
            "SIGHUP reads [server] tokens_file again; SIGTERM stops.\n");
}

int main(int argc, char **argv)
{
    const char *path = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("spillway-server %s\n", SW_VERSION);
            return 0;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL) {
        usage(stderr);
        return 2;
    }
    /* Request bodies and envelopes up to max_body_bytes come and go: from
     * 128 KiB up they are mapped and returned to the system when freed,
     * and freed heap is trimmed back, so a burst does not stay resident.
     * (glibc would raise this threshold after the first large frees.) */
    mallopt(M_MMAP_THRESHOLD, 128 * 1024);
    mallopt(M_TRIM_THRESHOLD, 1024 * 1024);
    sw_config cfg;
    if (sw_config_load(&cfg, path) != 0) {
        fprintf(stderr, "spillway-server: %s\n", cfg.errstr);
        sw_config_free(&cfg);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* What a 202 will be worth: read Redis' persistence settings now, and
     * refuse to start if Redis may evict queued jobs. Redis being down is
     * not fatal: we start unready and check once it answers. */
    sw_redis_opts ro = sw_config_redis(&cfg);
    sw_redis *probe = sw_redis_new(&ro);
    /* The queues' connections (with shards, a cluster's masters of
     * their slots, whose persistence counts too), and the layout guard:
     * a server writing N shards where Redis holds another layout would
     * strand jobs. */
    sw_shards *queues = sw_shards_new(&ro, cfg.shards);
    sw_redis_persistence now, last;
    int known = probe && queues && read_persistence(probe, queues, &now) == 0;
    if (known && sw_redis_persistence_evicts(&now) && !cfg.allow_eviction) {
        sw_log_error("redis may evict queued jobs", "maxmemory_policy=%s action=\"set "
                     "maxmemory-policy noeviction in redis.conf, or [redis] allow_eviction = "
                     "true to accept the risk\"", now.policy);
        sw_shards_free(queues);
        sw_redis_free(probe);
        sw_config_free(&cfg);
        return 1;
    }
    int layout = probe && queues ? sw_shards_check_layout(probe, cfg.shards) : SW_LAYOUT_ERROR;
    sw_http *h = probe && queues && layout != SW_LAYOUT_MISMATCH ? sw_http_start(&cfg) : NULL;
    if (h)
        sw_http_set_layout(h, layout != SW_LAYOUT_ERROR, probe->errstr);
    if (h == NULL) {
        sw_shards_free(queues);
        sw_redis_free(probe);
        sw_config_free(&cfg);
        return layout == SW_LAYOUT_MISMATCH ? 2 : 1;
    }
    sw_log_info("server started", "listen=%s tls=%s admin_listen=%s auth=%s sinks=%d threads=%d "
                "version=%s", cfg.listen, cfg.tls_cert[0] ? "on" : "off",
                cfg.admin_listen[0] ? cfg.admin_listen : "(api)",
                cfg.tokens_file[0] ? "bearer" : "off", cfg.nsinks, cfg.threads, SW_VERSION);
    memset(&last, 0, sizeof last);
    int64_t next_check = 0, next_memory = 0;
    int memory_unknown = 0;
    int reported_unknown = 0, ready = 0, exit_code = 0, reads_failing = 0;
    unsigned char *paused = calloc((size_t)cfg.nsinks + 1, 1);
    int64_t next_sample = 0;
    uint64_t lat_prev[SW_LAT_NBUCKETS] = {0};
    int pause_unknown = 0;
    sw_buf scratch = SW_BUF_INIT;
    /* On SIGTERM, a lame-duck phase first: /readyz answers 503 and every
     * answer closes its connection, so load balancers move away, while
     * everything that still comes is served on the state last read (no
     * Redis check may stall past its end). A second signal ends it. */
    int64_t drain_until = 0;
    for (;;) {
        if (stop && drain_until == 0 && cfg.shutdown_grace_ms > 0) {
            sw_notify_stopping();
            sw_http_set_draining(h);
            sw_log_info("server draining", "grace_ms=%d note=\"/readyz answers 503; requests "
                        "are still served\"", cfg.shutdown_grace_ms);
            drain_until = sw_clock_mono_ms() + cfg.shutdown_grace_ms;
        }
        if (stop && (stop >= 2 || sw_clock_mono_ms() >= drain_until))
            break;
        if (drain_until) {
            /* Draining: no Redis check that could stall past the end. */
            sw_notify_watchdog();
            sw_clock_sleep_ms(50);
            continue;
        }
        sw_notify_watchdog();
        if (reload) {
            reload = 0;
            sw_notify_reloading();
            int rc = sw_http_reload_tokens(h);
            /* On an error the tokens in use stay and the log says why;
             * the server serves on either way. */
            sw_notify_ready(rc == 0 ? "tokens reloaded" : "tokens_file bad; previous tokens kept");
            next_check = 0;
        }
        if (sw_clock_mono_ms() >= next_memory) {
            /* Every second: the 429 must come before Redis is full. */
            next_memory = sw_clock_mono_ms() + 1000;
            sw_redis_memory mem;
            double per_job = 0;
            int64_t last_job_ms;
            int shift;
            sw_status_last(&last_job_ms, &shift);
            /* Paused sinks: an unreadable state keeps the last known. */
            int pr = paused ? sw_pause_flags(probe, SW_PAUSE_INTAKE, &cfg, paused) : -1;
            if (pr == 0) {
                sw_http_set_paused(h, paused);
                pr = sw_pause_flags(probe, SW_PAUSE_FLUSH, &cfg, paused);
            }
            if (pr == 0) {
                sw_http_set_flush_paused(h, paused);
                pause_unknown = 0;
            } else if (!pause_unknown++) {
                sw_log_warn("cannot read paused sinks", "error=\"%s\" note=\"the last known "
                            "state holds until it can be read\"", probe->errstr);
            }
            if (read_memory(queues, &mem) == 0) {
                /* The newest bucket, in the first shard with enough of it. */
                int got = 0;
                for (int k = 0; last_job_ms != 0 && k < queues->n && got == 0; k++)
                    if ((got = sw_queue_status_bytes(queues->q[k], last_job_ms, shift,
                                                     &per_job)) < 0)
                        break;
                if (got != 1)
                    per_job = 0;
                sw_http_set_memory(h, &mem, per_job);
                memory_unknown = 0;
            } else if (++memory_unknown == 3) {
                /* Not known: no memory 429 on stale figures (Redis down
                 * answers 503 anyway). */
                if (queues->q[0]->err != SW_REDIS_ECONNECT && queues->q[0]->err != SW_REDIS_EIO)
                    sw_log_warn("cannot read redis memory", "error=\"%s\" note=\"no 429 for "
                                "Redis memory until it can be read (INFO may be refused)\"",
                                queues->q[0]->errstr);
                sw_redis_memory none = {0, 0};
                sw_http_set_memory(h, &none, 0);
            }
        }
        if (sw_clock_mono_ms() >= next_sample) {
            next_sample = sw_clock_mono_ms() + SW_HISTORY_STEP_MS;
            sample_history(h, &cfg, queues, &scratch, lat_prev);
        }
        if (sw_clock_mono_ms() >= next_check) {
            next_check = sw_clock_mono_ms() + (layout == SW_LAYOUT_OK ? 5000 : 1000);
            if (layout != SW_LAYOUT_OK) {
                layout = sw_shards_check_layout(probe, cfg.shards);
                if (layout == SW_LAYOUT_MISMATCH) {
                    exit_code = 2;
                    break;
                }
                sw_http_set_layout(h, layout != SW_LAYOUT_ERROR, probe->errstr);
            }
            sw_queue_stats st;
            sw_redis *failed;
            char status[160];
            if (sw_shards_stats(queues, &st, NULL, &failed) == 0) {
                snprintf(status, sizeof status, "listening on %s; queue %lld records, "
                         "%lld in flight, %lld dead", cfg.listen, st.queued_records,
                         st.inflight_records, st.dead_jobs);
                /* Ready means serving: listening, Redis answering, and the
                 * layout read (with shards, writes wait for it). */
                if (!ready && layout != SW_LAYOUT_ERROR) {
                    sw_notify_ready(status);
                    ready = 1;
                } else {
                    sw_notify_status(status);
                }
                if (reads_failing)
                    sw_log_info("redis available again", NULL);
                reads_failing = 0;
            } else {
                snprintf(status, sizeof status, "listening on %s; Redis unreachable: %s",
                         cfg.listen, failed->errstr);
                sw_notify_status(status);
                /* Once per outage, with its real cause. */
                if (!reads_failing)
                    sw_log_error("redis unavailable", "cause=\"%s\" error=\"%s\" hint=\"%s\"",
                                 failed->code[0] ? failed->code : sw_redis_strerror(failed->err),
                                 failed->errstr,
                                 sw_redis_hint(failed->err, failed->code, failed->errstr));
                reads_failing = 1;
            }
            if (known || read_persistence(probe, queues, &now) == 0) {
                known = 0;
                if (memcmp(&now, &last, sizeof now) != 0) {
                    int evicts = sw_redis_persistence_evicts(&now) && !cfg.allow_eviction;
                    if (evicts)
                        sw_log_error("redis persistence", "appendonly=%s appendfsync=%s "
                                     "maxmemory_policy=%s durability=\"%s\" action=\"refusing "
                                     "writes until maxmemory-policy is noeviction\"",
                                     now.appendonly, now.appendfsync, now.policy,
                                     sw_redis_persistence_text(&now));
                    else
                        sw_log_info("redis persistence", "appendonly=%s appendfsync=%s "
                                    "maxmemory_policy=%s durability=\"%s\"", now.appendonly,
                                    now.appendfsync, now.policy, sw_redis_persistence_text(&now));
                    last = now;
                }
                sw_http_set_persistence(h, &now);
                reported_unknown = 0;
            } else if (probe->err != SW_REDIS_ECONNECT && probe->err != SW_REDIS_EIO &&
                       !reported_unknown) {
                sw_log_warn("cannot read redis persistence settings", "error=\"%s\" "
                            "note=\"CONFIG may be disabled; durability of a 202 is unknown\"",
                            probe->errstr);
                reported_unknown = 1;
            }
        }
        sw_clock_sleep_ms(100);
    }
    sw_notify_stopping();
    /* The listeners close; requests under way (an upload too) finish
     * within request_timeout_ms, idle connections close. */
    sw_log_info("server stopping", "reason=%s", exit_code ? "layout" : "signal");
    sw_http_stop(h);
    free(paused);
    sw_buf_free(&scratch);
    sw_shards_free(queues);
    sw_redis_free(probe);
    sw_config_free(&cfg);
    sw_log_info("server stopped", NULL);
    return exit_code;
}
