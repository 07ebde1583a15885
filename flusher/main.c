/* spillway-flusher: drains the Redis queue into PostgreSQL, many jobs per
 * transaction. The loop: claim jobs into our processing list, cut a batch
 * at batch_max_records or flush_interval_ms, commit it, then mark its jobs
 * and clear the list in one Redis round trip. The processing list is the
 * source of truth: after any Redis error, or a restart, we re-read it. */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "notify.h"
#include "pgconn.h"
#include "redisq.h"
#include "schema.h"
#include "stats.h"
#include "status.h"

#define POLL_MS 5
#define MAX_JOBS_PER_CLAIM 10000
#define PRUNE_EVERY_MS (3600 * 1000)

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

typedef struct flusher {
    const sw_config *cfg;
    sw_redis *redis;
    sw_pg *pg;
    sw_batch *batch;
    void **replies;          /* the Redis replies that own the batch's bytes */
    int nreplies, cap;
    const char *id;          /* [flusher] id */
    char heartbeat[160];     /* "host pid", our heartbeat's value */
    int64_t next_heartbeat_ms, next_takeover_ms;
    int pg_ready;            /* connected and staging tables made */
    int pg_connected_once;
    int redis_down, pg_down; /* for one log line per state change */
    int64_t backoff_ms;
    sw_buf statuses, scratch;   /* the batch's status JSON, reused */
} flusher;

static void drop_batch(flusher *f)
{
    sw_batch_reset(f->batch);
    for (int i = 0; i < f->nreplies; i++)
        sw_redis_reply_free(f->replies[i]);
    f->nreplies = 0;
}

static void redis_failed(flusher *f, const char *what)
{
    if (!f->redis_down)
        sw_log_error("redis unavailable", "during=%s error=\"%s\" action=\"retrying; check "
                     "that Redis runs at [redis] host:port\"", what, f->redis->errstr);
    f->redis_down = 1;
}

static void redis_ok(flusher *f)
{
    if (f->redis_down)
        sw_log_info("redis available again", NULL);
    f->redis_down = 0;
}

/* Keep a reply and add its envelopes to the batch. 0, or -1 (OOM). */
static int take(flusher *f, void *reply)
{
    if (f->nreplies == f->cap) {
        int cap = f->cap ? f->cap * 2 : 16;
        void **r = realloc(f->replies, (size_t)cap * sizeof *r);
        if (r == NULL)
            return -1;
        f->replies = r;
        f->cap = cap;
    }
    f->replies[f->nreplies++] = reply;
    for (size_t i = 0; i < sw_redis_reply_len(reply); i++) {
        size_t len;
        const char *data = sw_redis_reply_item(reply, i, &len);
        if (sw_batch_add(f->batch, data, len) != 0)
            return -1;
    }
    return 0;
}

/* Rebuild the batch from our processing list: after a Redis error left us
 * unsure what a claim did, or (`resume`, which counts a delivery of each
 * job) at start-up and after a takeover. 0, or -1. */
static int reload(flusher *f, int resume)
{
    void *reply = NULL;
    drop_batch(f);
    if ((resume ? sw_redis_resume(f->redis, f->id, f->cfg->max_deliveries, &reply)
                : sw_redis_processing(f->redis, f->id, &reply)) != 0) {
        redis_failed(f, "reload");
        return -1;
    }
    redis_ok(f);
    if (take(f, reply) != 0) {
        sw_redis_reply_free(reply);
        return -1;
    }
    if (f->batch->njobs > 0)
        sw_log_info("resuming batch from processing list", "jobs=%d records=%lld",
                    f->batch->njobs, f->batch->nrecords);
    return 0;
}

/* Renew our heartbeat, at most once a second. Called from every loop
 * and wait, so a flusher that is merely waiting (on PostgreSQL, say) is not
 * taken for dead. A failure is only logged: Redis errors surface on the
 * next queue operation. */
static void heartbeat(flusher *f)
{
    sw_notify_watchdog();
    int64_t now = sw_clock_mono_ms();
    if (now < f->next_heartbeat_ms)
        return;
    f->next_heartbeat_ms = now + 1000;
    if (sw_redis_heartbeat(f->redis, f->id, f->heartbeat, f->cfg->heartbeat_ttl_s, 0) < 0)
        redis_failed(f, "heartbeat");
}

/* Sleep in short steps, keeping the heartbeat, until `ms` pass or a stop. */
static void nap(flusher *f, int64_t ms)
{
    for (int64_t t = 0; t < ms && !stop; t += 50) {
        heartbeat(f);
        sw_clock_sleep_ms(ms - t < 50 ? ms - t : 50);
    }
}

/* Is the flusher named by a heartbeat value "host pid" this host's process
 * that no longer exists? Then its heartbeat is stale and need not expire. */
static int dead_here(const char *value)
{
    char host[256], me[256];
    long pid;
    if (sscanf(value, "%255s %ld", host, &pid) != 2 || gethostname(me, sizeof me) != 0)
        return 0;
    me[sizeof me - 1] = '\0';
    return strcmp(host, me) == 0 && pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH;
}

/* Claim our id. Two live flushers with one id would share a processing
 * list and clear each other's batches, so: a heartbeat under our id from a
 * live process here is a configuration error; one from another host must
 * expire first; one from a dead process here (our own previous life, just
 * killed) is replaced at once. 0, 1 to refuse to start, -1 Redis error. */
static int claim_id(flusher *f)
{
    char value[160];
    int64_t deadline = sw_clock_mono_ms() + (int64_t)f->cfg->heartbeat_ttl_s * 1000 + 1000;
    int logged = 0;
    while (!stop) {
        int set = sw_redis_heartbeat(f->redis, f->id, f->heartbeat, f->cfg->heartbeat_ttl_s, 1);
        if (set != 0)
            return set < 0 ? -1 : 0;
        int found = sw_redis_heartbeat_get(f->redis, f->id, value, sizeof value);
        if (found < 0)
            return -1;
        if (found && dead_here(value)) {
            if (sw_redis_heartbeat(f->redis, f->id, f->heartbeat, f->cfg->heartbeat_ttl_s, 0) < 0)
                return -1;
            return 0;
        }
        if (found && strncmp(value, f->heartbeat, strcspn(f->heartbeat, " ")) == 0 &&
            value[strcspn(f->heartbeat, " ")] == ' ') {
            sw_log_error("another flusher runs with this id", "id=%s holder=\"%s\" "
                         "hint=\"give each flusher its own [flusher] id\"", f->id, value);
            return 1;
        }
        if (sw_clock_mono_ms() > deadline) {
            sw_log_error("another flusher holds this id", "id=%s holder=\"%s\" "
                         "hint=\"give each flusher its own [flusher] id\"", f->id, value);
            return 1;
        }
        if (!logged)
            sw_log_warn("waiting for this id's previous heartbeat to expire", "id=%s holder=\"%s\"",
                        f->id, value);
        logged = 1;
        sw_clock_sleep_ms(500);
    }
    return 1;
}

/* Look for flushers whose heartbeat expired while they held a batch, and
 * take one batch over (we hold none). The ledger keeps this safe even when
 * the other flusher was only stalled and commits later: whichever commits
 * second finds every job in the ledger and writes nothing. */
static void take_over_orphans(flusher *f)
{
    char ids[64][64];
    int64_t now = sw_clock_mono_ms();
    if (now < f->next_takeover_ms)
        return;
    f->next_takeover_ms = now + (int64_t)f->cfg->heartbeat_ttl_s * 500;
    int n = sw_redis_flusher_ids(f->redis, ids, 64);
    for (int i = 0; i < n; i++) {
        if (strcmp(ids[i], f->id) == 0)
            continue;
        int rc = sw_redis_takeover(f->redis, f->id, ids[i]);
        if (rc == 1) {
            sw_log_warn("took over the batch of a flusher whose heartbeat expired",
                        "from=%s", ids[i]);
            if (reload(f, 1) != 0)
                return;
            break;
        }
        if (rc != 0)
            break;
    }
}

static int pg_ensure(flusher *f)
{
    if (f->pg_ready && sw_pg_connect(f->pg) == 0)
        return 0;
    f->pg_ready = 0;
    if (sw_pg_connect(f->pg) != 0 || sw_batch_prepare(f->batch, f->pg) != 0)
        return -1;
    if (f->pg_connected_once)
        sw_stats_pg_reconnect();
    f->pg_connected_once = 1;
    f->pg_ready = 1;
    return 0;
}

static void pg_failed(flusher *f)
{
    if (!f->pg_down)
        sw_log_error("postgres unavailable", "sqlstate=%s error=\"%s\" action=\"retrying the "
                     "same batch with backoff\"", f->pg->sqlstate[0] ? f->pg->sqlstate : "-",
                     f->pg->errstr);
    f->pg_down = 1;
    f->pg_ready = 0;
    sw_stats_retry(f->pg->sqlstate);
    sw_pg_disconnect(f->pg);
    /* Capped exponential backoff with jitter, so many flushers do not
     * hammer a recovering server in step. */
    f->backoff_ms = f->backoff_ms ? f->backoff_ms * 2 : 100;
    if (f->backoff_ms > f->cfg->retry_max_ms)
        f->backoff_ms = f->cfg->retry_max_ms;
    nap(f, f->backoff_ms / 2 + rand() % (f->backoff_ms / 2 + 1));
}

/* Commit the batch and close it in Redis. 0 when closed, -1 to retry. */
static int flush(flusher *f)
{
    sw_batch *b = f->batch;
    int64_t t0 = sw_clock_mono_ms();
    if (pg_ensure(f) != 0 || sw_batch_commit(b, f->pg) != 0) {
        pg_failed(f);
        return -1;
    }
    if (f->pg_down)
        sw_log_info("postgres available again", NULL);
    f->pg_down = 0;
    f->backoff_ms = 0;

    /* One status JSON per job, packed end to end in one buffer. */
    sw_redis_done *done = calloc((size_t)b->njobs + 1, sizeof *done);
    size_t *offs = calloc((size_t)b->njobs + 1, sizeof *offs);
    int rc = -1, failed = 0;
    int64_t now = sw_clock_now_us();
    sw_buf_reset(&f->statuses);
    if (done == NULL || offs == NULL)
        goto out;
    for (int i = 0; i < b->njobs; i++) {
        const sw_batch_job *j = &b->jobs[i];
        int bad = j->state == SW_JOB_FAILED;
        sw_status st = {j->env.job_id, bad ? "failed" : "committed", j->env.sink, j->env.nrecords,
                        j->env.enqueued_us, now, bad ? j->error : NULL};
        offs[i] = f->statuses.len;
        if (sw_status_json(&f->scratch, &st) != 0 ||
            sw_buf_append(&f->statuses, f->scratch.data, f->scratch.len) != 0)
            goto out;
        done[i].job_id = j->env.job_id;
        done[i].status_len = f->scratch.len;
        if (bad) {
            sw_stats_failure(strncmp(j->error, "SQLSTATE ", 9) == 0 ? j->error + 9 : "");
            done[i].error = j->error;
            done[i].env = j->data;
            done[i].env_len = j->len;
            failed++;
            sw_log_warn("job failed", "job_id=%s sink=%s error=\"%s\"", j->env.job_id,
                        j->env.sink, j->error);
        }
    }
    for (int i = 0; i < b->njobs; i++)
        done[i].status = f->statuses.data + offs[i];
    /* PostgreSQL has the rows; until Redis hears of it we retry only this
     * step (the ledger keeps a re-run after a crash harmless). */
    /* Rows written now: jobs the ledger already had add nothing, so a
     * resumed batch does not count twice in the committed total. */
    while (sw_redis_finish(f->redis, f->id, b->njobs, done, b->committed_records,
                           f->cfg->status_ttl_s) != 0) {
        redis_failed(f, "finish");
        if (stop)
            goto out;
        nap(f, 200);
    }
    redis_ok(f);
    sw_log_debug("batch committed", "jobs=%d records=%lld rows=%lld failed=%d duration_ms=%lld",
                 b->njobs, b->nrecords, b->committed_records, failed,
                 (long long)(sw_clock_mono_ms() - t0));
    sw_stats_batch(b, (double)(sw_clock_mono_ms() - t0) / 1000.0, sw_clock_now_us());
    char status[160], when[32];
    sw_clock_format(now, when);
    snprintf(status, sizeof status, "flusher %s; last batch %d jobs, %lld records at %s",
             f->id, b->njobs, b->nrecords, when);
    sw_notify_status(status);
    rc = 0;
out:
    free(done);
    free(offs);
    if (rc == 0)
        drop_batch(f);
    return rc;
}

/* Is the batch ready to flush: full, old enough, or we are stopping? */
static int due(const flusher *f)
{
    const sw_batch *b = f->batch;
    if (b->njobs == 0)
        return 0;
    if (stop || b->nrecords >= f->cfg->batch_max_records)
        return 1;
    /* Jobs with a bad header count 0 records and have no time: flush now. */
    if (b->oldest_enqueued_us == 0)
        return 1;
    return sw_clock_now_us() - b->oldest_enqueued_us >= (int64_t)f->cfg->flush_interval_ms * 1000;
}

static int check_sinks(flusher *f)
{
    sw_buf report = SW_BUF_INIT;
    int bad = 0;
    for (int k = 0; k < f->cfg->nsinks; k++) {
        int n = sw_schema_check(f->pg, &f->cfg->sinks[k], &report);
        if (n < 0) {
            sw_buf_free(&report);
            return -1;
        }
        bad += n;
    }
    if (bad > 0) {
        char *save = NULL;
        for (char *l = strtok_r(report.data, "\n", &save); l; l = strtok_r(NULL, "\n", &save))
            sw_log_error("sink does not match its table", "problem=\"%s\"", l);
    }
    sw_buf_free(&report);
    return bad > 0 ? 1 : 0;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: spillway-flusher --config FILE\n"
            "\n"
            "Drains the Redis queue into PostgreSQL, batch_max_records per transaction.\n"
            "Run several with distinct [flusher] id (SPILLWAY_FLUSHER_ID) to scale.\n"
            "\n"
            "  -c, --config FILE   the INI file (keys overridable by SPILLWAY_<SECTION>_<KEY>)\n"
            "  -h, --help          this text\n"
            "  -V, --version       print the version\n");
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
            printf("spillway-flusher %s\n", SW_VERSION);
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
    sw_config cfg;
    flusher f;
    int status = 1;
    memset(&f, 0, sizeof f);
    if (sw_config_load(&cfg, path) != 0) {
        fprintf(stderr, "spillway-flusher: %s\n", cfg.errstr);
        sw_config_free(&cfg);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    srand((unsigned)sw_clock_now_us());

    f.cfg = &cfg;
    f.id = cfg.flusher_id;
    {
        char host[128];
        if (gethostname(host, sizeof host) != 0)
            strcpy(host, "unknown");
        host[sizeof host - 1] = '\0';
        snprintf(f.heartbeat, sizeof f.heartbeat, "%s %ld", host, (long)getpid());
    }
    sw_redis_opts ro = sw_config_redis(&cfg);
    f.redis = sw_redis_new(&ro);
    f.pg = sw_pg_new(cfg.conninfo, cfg.pg_password, cfg.statement_timeout_ms);
    f.batch = sw_batch_new(&cfg, cfg.flusher_id);
    if (f.redis == NULL || f.pg == NULL || f.batch == NULL) {
        sw_log_error("out of memory", NULL);
        goto out;
    }
    f.redis->reconnects = sw_stats_redis_reconnects();
    if (sw_stats_start(&cfg) != 0)
        goto out;

    /* Start-up: the sinks must match their tables before we write. */
    while (!stop && sw_pg_connect(f.pg) != 0)
        pg_failed(&f);
    if (stop)
        goto done;
    int check = check_sinks(&f);
    if (check != 0) {
        if (check < 0)
            sw_log_error("cannot check sinks", "error=\"%s\"", f.pg->errstr);
        else
            sw_log_error("refusing to start", "hint=\"fix the table or the config; "
                         "spillwayctl check-config shows the same\"");
        goto out;
    }
    f.pg_down = 0;
    f.backoff_ms = 0;
    int owned;
    while ((owned = claim_id(&f)) < 0 && !stop) {
        redis_failed(&f, "claim id");
        sw_clock_sleep_ms(500);
    }
    if (stop)
        goto done;
    if (owned != 0)
        goto out;
    redis_ok(&f);
    sw_log_info("flusher started", "id=%s batch_max_records=%d flush_interval_ms=%d version=%s",
                cfg.flusher_id, cfg.batch_max_records, cfg.flush_interval_ms, SW_VERSION);
    char ready[128];
    snprintf(ready, sizeof ready, "flusher %s draining %s", f.id, cfg.prefix);
    sw_notify_ready(ready);

    /* 2 = resume our processing list (a delivery), 1 = re-read it. */
    int need_reload = 2;
    int64_t next_prune = 0;
    while (!stop || f.batch->njobs > 0) {
        heartbeat(&f);
        if (f.batch->njobs == 0 && sw_clock_mono_ms() >= next_prune && pg_ensure(&f) == 0) {
            long n = sw_batch_prune(f.pg, cfg.ledger_retention_s);
            if (n < 0)
                sw_log_warn("ledger prune failed", "error=\"%s\" action=\"retrying in an hour\"",
                            f.pg->errstr);
            else if (n > 0)
                sw_log_info("ledger pruned", "rows=%ld retention_s=%d", n, cfg.ledger_retention_s);
            next_prune = sw_clock_mono_ms() + PRUNE_EVERY_MS;
        }
        if (need_reload) {
            if (reload(&f, need_reload == 2) != 0) {
                if (stop)
                    break;
                nap(&f, 200);
                continue;
            }
            need_reload = 0;
        }
        if (f.batch->njobs == 0 && !stop)
            take_over_orphans(&f);
        if (due(&f)) {
            if (flush(&f) != 0) {
                /* Stopping in the middle of an outage: the batch stays in
                 * our processing list and the next start resumes it. */
                if (stop)
                    break;
                need_reload = f.redis_down;
            }
            continue;
        }
        if (stop)
            break;
        long room = cfg.batch_max_records - (long)f.batch->nrecords;
        void *reply = NULL;
        if (sw_redis_claim(f.redis, f.id, cfg.max_deliveries, room > 0 ? room : 1,
                           MAX_JOBS_PER_CLAIM, &reply) != 0) {
            redis_failed(&f, "claim");
            need_reload = 1;
            nap(&f, 200);
            continue;
        }
        redis_ok(&f);
        size_t got = sw_redis_reply_len(reply);
        if (take(&f, reply) != 0) {
            sw_log_error("out of memory", "action=\"reloading the batch\"");
            need_reload = 1;
            continue;
        }
        if (got == 0)
            sw_clock_sleep_ms(POLL_MS);
    }
done:
    sw_notify_stopping();
    if (f.batch->njobs > 0) {
        sw_log_warn("stopped with a batch in hand", "jobs=%d note=\"it stays in this flusher's "
                    "processing list; a restart, or another flusher once the heartbeat expires, "
                    "commits it\"", f.batch->njobs);
    } else if (sw_redis_heartbeat(f.redis, f.id, f.heartbeat, 1, 0) < 0) {
        /* Nothing is held, so the heartbeat should lapse at once; if Redis
         * is gone it lapses by its TTL instead. */
        sw_log_debug("heartbeat not shortened", "error=\"%s\"", f.redis->errstr);
    }
    sw_log_info("flusher stopped", NULL);
    status = 0;
out:
    if (f.batch)
        drop_batch(&f);
    free(f.replies);
    sw_buf_free(&f.statuses);
    sw_buf_free(&f.scratch);
    sw_stats_stop();
    sw_batch_free(f.batch);
    sw_pg_free(f.pg);
    sw_redis_free(f.redis);
    sw_config_free(&cfg);
    return status;
}
