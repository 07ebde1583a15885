#include "drain.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "clock.h"
#include "commit.h"
#include "committer.h"
#include "dead.h"
#include "jobid.h"
#include "ledger.h"
#include "liveness.h"
#include "log.h"
#include "notify.h"
#include "parking.h"
#include "pgconn.h"
#include "processing.h"
#include "queue.h"
#include "redis.h"
#include "schema.h"
#include "shards.h"
#include "shape.h"
#include "stats.h"
#include "status.h"

#define POLL_MS 5
#define MAX_JOBS_PER_CLAIM 10000
#define PRUNE_EVERY_MS (3600 * 1000)
#define PROBE_EVERY_MS 5000     /* idle: how often PostgreSQL is looked at */
#define PRUNE_CHUNK 5000
#define PRUNE_CHUNKS 20
/* How long the main loop may be busy outside PostgreSQL calls: 30 s, or
 * what one Redis call may take at worst (connect, and a script loaded
 * and run four times over), if that is longer. */
#define BUSY_MS(d) ((int64_t)((d)->cfg->redis_timeout_ms * 10 > 30000 ? \
                              (d)->cfg->redis_timeout_ms * 10 : 30000))
/* Jobs one batch holds at most, whatever their records: bounds the
 * clean-up script's arguments. */
#define MAX_BATCH_JOBS 20000

/* A batch and the Redis replies that own its envelope bytes. */
typedef struct slot {
    sw_batch *batch;
    void **replies;
    int nreplies, cap;
    int full;                /* the next job in the queue does not fit it */
} slot;

/* Two slots: `head` holds the oldest jobs, `fill` takes claims. With
 * head != fill, every job of head is older than every job of fill (the
 * processing list's tail is head, then fill). The committer
 * (committer.h) works on the head only, and once handed, the head's
 * batch is the committer's until its result is taken. */
typedef struct drain {
    const sw_config *cfg;
    volatile sig_atomic_t *stop;
    atomic_int *release;     /* NULL without a shard lease */
    int shard;               /* -1: the one queue */
    const char *id;
    const char *heartbeat;
    sw_redis *redis;
    sw_pg *pg;               /* the committer's while it runs */
    sw_commit *commit;       /* the committer's while it runs */
    sw_committer *committer;
    slot slots[2];
    int head, fill;
    int handed_n;            /* jobs of the head handed; 0: none */
    int64_t handed_ms;       /* when (monotonic) */
    int retrying;            /* the head's last commit failed */
    sw_liveness *live;
    sw_parking *parking;     /* which sinks' jobs are set aside */
    int pg_ready, pg_connected_once;
    uint64_t prepared_session;   /* the pg session sw_commit_prepare ran on */
    int redis_down, pg_down; /* for one log line per state change */
    int refused;             /* the head was refused (logged) */
    int orphan_seen;         /* a dead flusher's list waits: claim no more,
                                commit what is held, then take it over */
    int64_t backoff_ms, next_takeover_ms, next_prune_ms, next_probe_ms;
    sw_buf statuses, scratch;
    sw_proc_done *done;
    size_t *offs;
    int capdone;
} drain;

enum { FLUSH_OK, FLUSH_RETRY, FLUSH_DOUBT };

/* Stop draining: the process stops, or our shard is let go. */
static int stopping(const drain *d)
{
    return *d->stop || (d->release && atomic_load(d->release));
}

static int64_t pg_busy_ms(const drain *d);

static void drop_slot(slot *sl)
{
    sw_batch_reset(sl->batch);
    sl->full = 0;
    for (int i = 0; i < sl->nreplies; i++)
        sw_redis_reply_free(sl->replies[i]);
    sl->nreplies = 0;
}

/* Forget both batches (the committer must be idle). */
static void drop_all(drain *d)
{
    drop_slot(&d->slots[0]);
    drop_slot(&d->slots[1]);
    d->head = d->fill = 0;
    d->handed_n = 0;
    d->retrying = 0;
    d->refused = 0;
}

static sw_batch *head_batch(const drain *d)
{
    return d->slots[d->head].batch;
}

static int held_jobs(const drain *d)
{
    return d->slots[0].batch->njobs + d->slots[1].batch->njobs;
}

static void redis_failed(drain *d, const char *what)
{
    /* Redis was away for us, so perhaps for the others' heartbeats too:
     * give them a full TTL to renew before judging any of them dead. */
    int64_t quiet = sw_clock_mono_ms() + (int64_t)d->cfg->heartbeat_ttl_s * 1000 + 1000;
    if (d->next_takeover_ms < quiet)
        d->next_takeover_ms = quiet;
    if (!d->redis_down)
        sw_log_error("redis unavailable", "during=%s cause=\"%s\" error=\"%s\" hint=\"%s\" "
                     "action=\"%s\"", what,
                     d->redis->code[0] ? d->redis->code : sw_redis_strerror(d->redis->err),
                     d->redis->errstr,
                     sw_redis_hint(d->redis->err, d->redis->code, d->redis->errstr),
                     d->redis->err == SW_REDIS_ECONNECT
                         ? "retrying"
                         : "retrying; the processing list is read again before more work");
    d->redis_down = 1;
}

static void redis_ok(drain *d)
{
    if (d->redis_down)
        sw_log_info("redis available again", NULL);
    d->redis_down = 0;
}

/* Sleep in short steps until `ms` pass or a stop. */
static void nap(drain *d, int64_t ms)
{
    for (int64_t t = 0; t < ms && !stopping(d); t += 50) {
        sw_liveness_busy(d->live, BUSY_MS(d));
        sw_clock_sleep_ms(ms - t < 50 ? ms - t : 50);
    }
}

static int shape_lookup(void *ctx, uint64_t fp, sw_buf *out)
{
    drain *d = ctx;
    return sw_queue_shape(d->redis, fp, out);
}

static int keep_reply(slot *sl, void *reply)
{
    if (sl->nreplies == sl->cap) {
        int cap = sl->cap ? sl->cap * 2 : 16;
        void **r = realloc(sl->replies, (size_t)cap * sizeof *r);
        if (r == NULL)
            return -1;
        sl->replies = r;
        sl->cap = cap;
    }
    sl->replies[sl->nreplies++] = reply;
    return 0;
}

/* Add a claim's or resume's envelopes to a slot's batch (and keep the
 * reply that owns them). 0, or -1 (out of memory, or a shape that cannot
 * be looked up now: either way the batch is read again later). */
static int take(slot *sl, void *reply, const long *deliveries)
{
    if (keep_reply(sl, reply) != 0) {
        sw_redis_reply_free(reply);
        return -1;
    }
    int64_t now = sw_clock_mono_ms();
    for (size_t i = 0; i < sw_proc_count(reply); i++) {
        size_t len;
        const char *data = sw_proc_item(reply, i, &len);
        if (sw_batch_add(sl->batch, data, len, deliveries ? deliveries[i] : 0, now) != 0)
            return -1;
    }
    return 0;
}

/* Rebuild the batches from our processing list, once the committer is
 * done with any: after a reply in doubt (`take` 0: only read), or at
 * start-up and after a takeover (`take` 1: another delivery). The whole
 * list lands in one slot. 0; -1 the list could not be read; -2 it was
 * read (deliveries counted) but not taken in: read it again, without
 * counting. */
static int reload(drain *d, int take_up)
{
    void *reply = NULL;
    long *deliveries = NULL;
    /* A commit in progress may take its statement_timeout. */
    sw_liveness_busy(d->live, pg_busy_ms(d));
    sw_committer_drain(d->committer);
    drop_all(d);
    if (sw_proc_resume(d->redis, d->id, take_up, &reply, &deliveries) != 0) {
        redis_failed(d, take_up ? "resume" : "reload");
        return -1;
    }
    redis_ok(d);
    int rc = take(&d->slots[0], reply, deliveries);
    free(deliveries);
    if (rc != 0) {
        drop_all(d);
        sw_log_warn("cannot take up the processing list", "error=\"out of memory, or a sink "
                    "shape not readable from Redis: %s\" action=\"retrying\"", d->redis->errstr);
        return -2;
    }
    sw_batch *b = head_batch(d);
    if (b->njobs > 0)
        sw_log_info(take_up ? "resuming batch from processing list"
                            : "batch read again from processing list",
                    "jobs=%d records=%lld oldest_deliveries=%ld", b->njobs, b->nrecords,
                    b->jobs[0].deliveries);
    return 0;
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
 * list, so: a heartbeat under our id from a live process here is a
 * configuration error; one from another host must expire first; one from a
 * dead process here (our own previous life, just killed) is replaced at
 * once. 0, 1 to refuse to start, -1 Redis error. */
static int claim_id(drain *d)
{
    char value[160];
    const sw_config *cfg = d->cfg;
    int64_t deadline = sw_clock_mono_ms() + (int64_t)cfg->heartbeat_ttl_s * 1000 + 1000;
    int logged = 0;
    size_t host_len = strcspn(d->heartbeat, " ");
    while (!stopping(d)) {
        int set = sw_proc_heartbeat(d->redis, d->id, d->heartbeat, cfg->heartbeat_ttl_s, 1);
        if (set != 0)
            return set < 0 ? -1 : 0;
        int found = sw_proc_heartbeat_get(d->redis, d->id, value, sizeof value);
        if (found < 0)
            return -1;
        /* Our own process's (a shard let go and taken again, its
         * heartbeat not yet lapsed): one drain per shard here at a time. */
        if (found && (dead_here(value) || (d->shard >= 0 && strcmp(value, d->heartbeat) == 0)))
            return sw_proc_heartbeat(d->redis, d->id, d->heartbeat, cfg->heartbeat_ttl_s, 0) < 0
                       ? -1 : 0;
        if (found && strncmp(value, d->heartbeat, host_len) == 0 && value[host_len] == ' ') {
            sw_log_error("another flusher runs with this id", "id=%s holder=\"%s\" "
                         "hint=\"give each flusher its own [flusher] id\"", d->id, value);
            return 1;
        }
        if (sw_clock_mono_ms() > deadline) {
            sw_log_error("another flusher holds this id", "id=%s holder=\"%s\" "
                         "hint=\"give each flusher its own [flusher] id\"", d->id, value);
            return 1;
        }
        if (!logged)
            sw_log_warn("waiting for this id's previous heartbeat to expire", "id=%s holder=\"%s\"",
                        d->id, value);
        logged = 1;
        sw_clock_sleep_ms(500);
    }
    return 1;
}

/* Look for flushers whose heartbeat expired while they held a batch, and
 * take one batch over (we hold none). The ledger keeps this safe even when
 * the other flusher was only stalled and commits later: whichever commits
 * second finds every job in the ledger and writes nothing, and its finish
 * finds the list is no longer its own. Returns 1 when a list became ours
 * (the caller then takes it up: a delivery), 2 when we hold a list (with
 * `holding`: jobs in hand, so an orphan waits for us to be empty;
 * without: a list our empty batches do not know, to be read again), else
 * 0. Holding jobs, nothing is ever taken: takeover.lua refuses while our
 * list exists. */
static int take_over_orphans(drain *d, int holding)
{
    char ids[64][64];
    int64_t now = sw_clock_mono_ms();
    if (now < d->next_takeover_ms || now < sw_liveness_quiet_until(d->live))
        return 0;
    d->next_takeover_ms = now + (int64_t)d->cfg->heartbeat_ttl_s * 500;
    int n = sw_queue_flusher_ids(d->redis, ids, 64);
    for (int i = 0; i < n; i++) {
        if (strcmp(ids[i], d->id) == 0)
            continue;
        int rc = sw_proc_takeover(d->redis, d->id, ids[i]);
        if (rc == 1) {
            sw_log_warn("took over the batch of a flusher whose heartbeat expired",
                        "from=%s", ids[i]);
            return 1;
        }
        if (rc == 2)
            return 2;
        if (rc < 0) {
            /* A lost reply may have made the list ours: take it up (if it
             * is not, there is nothing to take). */
            redis_failed(d, "takeover");
            return !holding && sw_redis_maybe_done(d->redis->err) ? 1 : 0;
        }
    }
    return 0;
}

/* A connection, prepared for batches: every new session (whoever
 * reconnected it: a prune, a lost result) gets its staging tables and
 * its look at the sinks' tables before any batch uses it. */
static int pg_ensure(drain *d)
{
    if (d->pg_ready && sw_pg_connect(d->pg) == 0 && d->pg->sessions == d->prepared_session)
        return 0;
    d->pg_ready = 0;
    sw_liveness_pg(d->live, BUSY_MS(d));
    if (sw_pg_connect(d->pg) != 0 || sw_commit_prepare(d->commit, d->pg) != 0)
        return -1;
    if (d->pg_connected_once)
        sw_stats_pg_reconnect();
    d->pg_connected_once = 1;
    d->prepared_session = d->pg->sessions;
    d->pg_ready = 1;
    return 0;
}

/* A PostgreSQL failure: either PostgreSQL is away (log once per outage,
 * reconnect) or it refused the batch's work (log once per batch: commit.h
 * decides when the jobs are isolated). Then back off. */
static void pg_failed(drain *d)
{
    if (sw_pg_statement_error(d->pg)) {
        if (!d->refused)
            sw_log_warn("batch refused by postgres", "sqlstate=%s error=\"%s\" detail=\"%s\" "
                        "action=\"retrying the same batch; bad jobs are isolated if it goes "
                        "on\"", d->pg->sqlstate, d->pg->errstr,
                        !d->pg->detail[0] ? "" : d->cfg->log_include_values
                            ? d->pg->detail : "(left out: [log] include_values)");
        d->refused = 1;
    } else {
        if (!d->pg_down)
            sw_log_error("postgres unavailable", "sqlstate=%s error=\"%s\" action=\"retrying "
                         "the same batch with backoff\"", d->pg->sqlstate[0] ? d->pg->sqlstate : "-",
                         d->pg->errstr);
        if (!d->pg_down)
            sw_stats_pg_down(1);
        d->pg_down = 1;
        d->pg_ready = 0;
        sw_pg_disconnect(d->pg);
    }
    sw_stats_retry(d->pg->sqlstate);
    /* Capped exponential backoff with jitter, so many flushers do not
     * hammer a recovering server in step. */
    d->backoff_ms = d->backoff_ms ? d->backoff_ms * 2 : 100;
    if (d->backoff_ms > d->cfg->retry_max_ms)
        d->backoff_ms = d->cfg->retry_max_ms;
    nap(d, d->backoff_ms / 2 + rand() % (d->backoff_ms / 2 + 1));
}

/* Time a PostgreSQL call may take: statement_timeout, plus the TCP bounds
 * on a dead peer; without a statement_timeout, an hour. */
static int64_t pg_busy_ms(const drain *d)
{
    int64_t st = d->cfg->statement_timeout_ms ? d->cfg->statement_timeout_ms : 3600 * 1000;
    return st + BUSY_MS(d);
}

/* Before each PostgreSQL statement, in whichever thread holds the
 * connection: it may take up to pg_busy_ms. */
static void pg_statement(void *ctx)
{
    drain *d = ctx;
    sw_liveness_pg(d->live, pg_busy_ms(d));
}

static int grow_done(drain *d, int n)
{
    if (n <= d->capdone)
        return 0;
    sw_proc_done *done = realloc(d->done, (size_t)n * sizeof *done);
    if (done)
        d->done = done;
    size_t *offs = done ? realloc(d->offs, (size_t)n * sizeof *offs) : NULL;
    if (offs)
        d->offs = offs;
    if (offs == NULL)
        return -1;
    d->capdone = n;
    return 0;
}

/* The final statuses of jobs[0..n), end to end in d->statuses: compact
 * for committed jobs, "f" plus the whole JSON for failed ones. */
static int build_done(drain *d, int n)
{
    sw_batch *b = head_batch(d);
    int64_t now = sw_clock_now_us();
    if (grow_done(d, n) != 0)
        return -1;
    sw_buf_reset(&d->statuses);
    for (int i = 0; i < n; i++) {
        const sw_batch_job *j = &b->jobs[i];
        int bad = j->state == SW_JOB_FAILED;
        const char *error = bad ? (j->error ? j->error : "failed (no memory for the reason)")
                                : NULL;
        size_t json_len = 0;
        int rc;
        /* Commit time minus enqueue time (the id's). */
        int64_t lat = now / 1000 - (int64_t)sw_jobid_time_ms(j->env.job_id);
        if (bad) {
            /* The id's time is what GET answers as enqueued_at. */
            int64_t enq = (int64_t)sw_jobid_time_ms(j->env.job_id) * 1000;
            sw_status st = {j->env.job_id, "failed", j->env.sink, j->env.nrecords, enq, now,
                            error};
            rc = sw_status_json(&d->scratch, &st);
            json_len = d->scratch.len;
            rc |= sw_buf_puts(&d->scratch, "f");
        } else {
            rc = sw_status_compact(&d->scratch, 'c', j->env.nrecords, j->env.sink,
                                   lat > 0 ? lat : 0);
        }
        d->offs[i] = d->statuses.len;
        if (rc != 0 || sw_buf_append(&d->statuses, d->scratch.data, d->scratch.len) != 0)
            return -1;
        /* Offsets for now: the buffer may still move. */
        d->done[i] = (sw_proc_done){j->list_id, j->list_id_len, j->len, j->env.job_id, NULL,
                                    d->scratch.len - json_len, NULL, json_len, error,
                                    j->counted, bad ? NULL : j->env.sink, lat};
    }
    for (int i = 0; i < n; i++) {
        const char *at = d->statuses.data + d->offs[i];
        if (d->done[i].json_len > 0) {
            d->done[i].json = at;
            d->done[i].status = at + d->done[i].json_len;
        } else {
            d->done[i].status = at;
        }
    }
    return 0;
}

/* Ledger pruning, hourly: from the committer's thread after a commit,
 * or from the main loop while the committer is idle (the connection is
 * then the main loop's for now). */
static void prune(drain *d, int chunks)
{
    if (sw_clock_mono_ms() < d->next_prune_ms)
        return;
    if (pg_ensure(d) != 0) {
        /* PostgreSQL is away: not again at every turn of the loop. */
        d->next_prune_ms = sw_clock_mono_ms() + 60000;
        sw_liveness_pg(d->live, -1);
        return;
    }
    int more = 0;
    long n = sw_ledger_prune(d->pg, d->cfg->ledger_retention_s, PRUNE_CHUNK, chunks, &more);
    sw_liveness_pg(d->live, -1);
    if (n < 0)
        sw_log_warn("ledger prune failed", "error=\"%s\" action=\"retrying in an hour\"",
                    d->pg->errstr);
    else if (n > 0)
        sw_log_info("ledger pruned", "rows=%ld retention_s=%d", n, d->cfg->ledger_retention_s);
    d->next_prune_ms = sw_clock_mono_ms() + (more ? 1000 : PRUNE_EVERY_MS);
}

/* While idle, a look at PostgreSQL every few seconds, so that an outage
 * (and its end) shows in spillway_postgres_up and the log with no batch
 * to reveal it. Main loop only, with the committer idle. */
static void pg_probe(drain *d)
{
    int64_t now = sw_clock_mono_ms();
    if (now < d->next_probe_ms)
        return;
    d->next_probe_ms = now + PROBE_EVERY_MS;
    int ok = pg_ensure(d) == 0 && sw_pg_exec(d->pg, "SELECT 1") == 0;
    sw_liveness_pg(d->live, -1);
    /* A statement refused (a dropped table, a revoked grant, seen while
     * preparing) is PostgreSQL answering: not an outage. */
    if (!ok && sw_pg_statement_error(d->pg))
        ok = 1;
    if (!ok && !d->pg_down) {
        sw_log_error("postgres unavailable", "sqlstate=%s error=\"%s\" action=\"looking again "
                     "every %d ms while idle\"", d->pg->sqlstate[0] ? d->pg->sqlstate : "-",
                     d->pg->errstr, PROBE_EVERY_MS);
        sw_stats_pg_down(1);
        d->pg_down = 1;
    } else if (ok && d->pg_down) {
        sw_log_info("postgres available again", NULL);
        sw_stats_pg_down(-1);
        d->pg_down = 0;
    }
    if (!ok) {
        d->pg_ready = 0;
        sw_pg_disconnect(d->pg);
    }
}

/* In the committer's thread: commit the oldest n jobs of `b`. */
static int commit_batch(void *ctx, sw_batch *b, int n, int fresh)
{
    drain *d = ctx;
    int rc = -1;
    if (fresh)
        sw_commit_new_batch(d->commit);
    if (pg_ensure(d) == 0) {
        const sw_batch_job *oldest = &b->jobs[0];
        if (oldest->deliveries >= d->cfg->max_deliveries && !oldest->prefailed &&
            !oldest->doomed) {
            b->jobs[0].doomed = 1;
            sw_log_error("job to be dead-lettered for stopping flushers", "job_id=%s "
                         "deliveries=%ld note=\"unless the ledger shows it committed\"",
                         oldest->env.job_id, oldest->deliveries);
        }
        rc = sw_commit_run(d->commit, b, n, d->pg);
    }
    /* Pruning, on this thread, so a flusher that never runs out of work
     * prunes too: one chunk per commit, so no commit waits long for it. */
    if (rc == 0)
        prune(d, 1);
    sw_liveness_pg(d->live, -1);
    return rc;
}

/* The oldest job was in hand through two or more stops: commit alone. */
static int solo(const sw_batch *b)
{
    return b->njobs > 0 && b->jobs[0].deliveries >= 2;
}

/* Is a slot's batch ready to commit: full, old enough, suspect, or
 * stopping? */
static int due(const drain *d, const slot *sl)
{
    const sw_batch *b = sl->batch;
    if (b->njobs == 0)
        return 0;
    if (stopping(d) || d->orphan_seen || solo(b) || sl->full ||
        b->nrecords >= d->cfg->batch_max_records ||
        b->nbytes >= (size_t)d->cfg->batch_max_bytes || b->njobs >= MAX_BATCH_JOBS)
        return 1;
    return sw_clock_mono_ms() - b->first_claim_ms >= d->cfg->flush_interval_ms;
}

/* Hand the head's oldest jobs to the committer: one alone when suspect,
 * else as many as a batch may hold. A head that also takes claims stops
 * taking them. */
static void hand_head(drain *d)
{
    sw_batch *b = head_batch(d);
    /* A head read back from the list may hold two batches' worth: hand
     * at most one batch's limits of it, and at least one job. */
    int n = 1;
    long long records = b->jobs[0].counted;
    size_t bytes = b->jobs[0].len;
    while (!solo(b) && n < b->njobs && n < MAX_BATCH_JOBS &&
           records + b->jobs[n].counted <= d->cfg->batch_max_records &&
           bytes + b->jobs[n].len <= (size_t)d->cfg->batch_max_bytes) {
        records += b->jobs[n].counted;
        bytes += b->jobs[n].len;
        n++;
    }
    if (d->fill == d->head)
        d->fill = 1 - d->head;
    d->handed_n = n;
    d->handed_ms = sw_clock_mono_ms();
    sw_committer_hand(d->committer, b, n, !d->retrying);
}

/* The head's commit is over (rc from commit_batch). On success, first
 * hand the next batch (the fill slot) if the whole head was committed and
 * the next is due, so PostgreSQL works while Redis hears of this one;
 * then close the committed jobs in Redis. */
static int after_commit(drain *d, int rc)
{
    sw_batch *b = head_batch(d);
    int n = d->handed_n;
    int64_t t0 = sw_clock_mono_ms(), committed_in = t0 - d->handed_ms;
    d->handed_n = 0;
    if (rc != 0) {
        d->retrying = 1;
        pg_failed(d);
        return FLUSH_RETRY;
    }
    d->retrying = 0;
    if (d->pg_down) {
        sw_log_info("postgres available again", NULL);
        sw_stats_pg_down(-1);
    }
    d->pg_down = 0;
    d->refused = 0;
    d->backoff_ms = 0;
    if (sw_commit_isolated(d->commit))
        sw_stats_isolation();
    long long rows = sw_commit_rows(d->commit);
    if (build_done(d, n) != 0) {
        sw_log_error("out of memory", "action=\"reading the batch again\"");
        return FLUSH_DOUBT;
    }
    int failed = 0;
    for (int i = 0; i < n; i++) {
        const sw_batch_job *j = &b->jobs[i];
        if (j->state == SW_JOB_FAILED) {
            const char *e = d->done[i].error;
            /* PostgreSQL's DETAIL may quote the row: only with
             * [log] include_values (the job's status keeps it whole). */
            int shown = j->error == e && j->error_loggable >= 0 && !d->cfg->log_include_values
                            ? j->error_loggable : (int)strlen(e);
            sw_stats_failure(strncmp(e, "SQLSTATE ", 9) == 0 ? e + 9 : "");
            sw_log_warn("job failed", "job_id=%s sink=%s error=\"%.*s\" detail=\"%s\"",
                        j->env.job_id, j->env.sink, shown, e,
                        shown < (int)strlen(e) ? "(left out: [log] include_values)" : "");
            failed++;
        }
    }
    /* The next batch goes to PostgreSQL before Redis hears of this one. */
    int pipelined = 0;
    slot *next = &d->slots[d->fill];
    if (n == b->njobs && d->fill != d->head && due(d, next) && !solo(next->batch) && !stopping(d)) {
        int m = next->batch->njobs < MAX_BATCH_JOBS ? next->batch->njobs : MAX_BATCH_JOBS;
        d->handed_n = m;
        d->handed_ms = sw_clock_mono_ms();
        sw_committer_hand(d->committer, next->batch, m, 1);
        pipelined = 1;
    }
    /* PostgreSQL has decided; until Redis hears of it only this step is
     * retried. A refusal did nothing and is retried as is; a reply in
     * doubt, or a list that is not what we hold, sends us back to the
     * list (the ledger makes a second commit of the same jobs a no-op). */
    /* With shards, each shard's store keeps its share of the bounds. */
    int parts = d->shard >= 0 ? d->cfg->shards : 0;
    sw_dead_bounds bounds = {sw_shards_share(d->cfg->dead_max_jobs, parts),
                             sw_shards_share(d->cfg->dead_max_bytes, parts)};
    long dropped = 0;
    for (;;) {
        int done = sw_proc_finish(d->redis, d->id, n, d->done, d->cfg->status_ttl_s, &bounds,
                                  &dropped);
        if (done == 1)
            break;
        if (done == 0)
            sw_log_warn("processing list is not this flusher's batch", "detail=\"%s\" "
                        "action=\"reading it again\"", d->redis->errstr);
        else
            redis_failed(d, "finish");
        if (done == 0 || sw_redis_maybe_done(d->redis->err) || stopping(d)) {
            /* The list is read again next: a batch handed meanwhile is
             * let go first (what it committed, the ledger knows). */
            if (pipelined) {
                sw_liveness_busy(d->live, pg_busy_ms(d));
                sw_committer_drain(d->committer);
                d->handed_n = 0;
            }
            return FLUSH_DOUBT;
        }
        nap(d, 200);
    }
    redis_ok(d);
    if (dropped > 0) {
        sw_stats_dead_dropped(dropped);
        sw_log_warn("dead letters dropped", "count=%ld reason=\"over [flusher] dead_max_jobs or "
                    "dead_max_bytes; the oldest go first, their statuses stay failed\"", dropped);
    }
    sw_log_debug("batch committed", "jobs=%d rows=%lld failed=%d finish_ms=%lld", n, rows,
                 failed, (long long)(sw_clock_mono_ms() - t0));
    sw_stats_batch(b, n, (double)committed_in / 1000.0, sw_clock_now_us());
    char status[160], when[32];
    sw_clock_format(sw_clock_now_us(), when);
    snprintf(status, sizeof status, "flusher %s; last batch %d jobs at %s", d->id, n, when);
    /* (With shards the lease holder speaks for the process.) */
    if (d->shard < 0)
        sw_notify_status(status);
    slot *h = &d->slots[d->head];
    if (n >= b->njobs) {
        drop_slot(h);
        if (pipelined) {
            /* The handed slot is the oldest now; the emptied one fills. */
            d->fill = d->head;
            d->head = 1 - d->head;
        } else if (d->fill != d->head) {
            d->head = d->fill;
        }
    } else {
        sw_batch_drop_front(b, n);
    }
    return FLUSH_OK;
}

static int check_sinks(drain *d)
{
    sw_buf report = SW_BUF_INIT;
    int bad = 0;
    for (int k = 0; k < d->cfg->nsinks; k++) {
        int n = sw_schema_check(d->pg, &d->cfg->sinks[k], &report);
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
    int ready = sw_ledger_schema_ready(d->pg);
    if (ready == 0)
        sw_log_error("database not migrated", "missing=\"spillway.apply_each\" "
                     "hint=\"run spillwayctl migrate\"");
    if (ready < 0)
        return -1;
    return bad > 0 || ready == 0 ? 1 : 0;
}

/* Start-up work in Redis that later releases rely on: this flusher's
 * sinks' shapes are recorded, and dead letters left in release 0.1's
 * layout move into the bounded store. Best effort: both are retried at
 * the next start, and nothing depends on them to be correct. */
static void upgrade_redis(drain *d)
{
    sw_buf cols = SW_BUF_INIT;
    for (int k = 0; k < d->cfg->nsinks; k++) {
        const sw_sink *s = &d->cfg->sinks[k];
        if (sw_shape_describe(s, &cols) != 0 ||
            sw_queue_register_shape(d->redis, s->shape, cols.data) != 0)
            sw_log_warn("cannot record the sink's shape", "sink=%s error=\"%s\"", s->name,
                        d->redis->errstr);
    }
    sw_buf_free(&cols);
    long moved = sw_dead_convert_legacy(d->redis);
    if (moved < 0)
        sw_log_warn("cannot convert old dead letters", "error=\"%s\" action=\"next start\"",
                    d->redis->errstr);
    else if (moved > 0)
        sw_log_info("dead letters converted from the 0.1 layout", "count=%ld", moved);
}

/* Stop with jobs in hand: commit them if that works at once, else give
 * them back to the queue (no delivery counted), else leave them in the
 * processing list for our next start or a takeover. */
static void stop_with_batch(drain *d)
{
    int rc;
    sw_liveness_busy(d->live, pg_busy_ms(d));
    if (sw_committer_result(d->committer, INT32_MAX, &rc) && after_commit(d, rc) != FLUSH_OK) {
        sw_committer_drain(d->committer);
        goto give_back;
    }
    while (held_jobs(d) > 0) {
        hand_head(d);
        sw_liveness_busy(d->live, pg_busy_ms(d));
        (void)sw_committer_result(d->committer, INT32_MAX, &rc);
        if (after_commit(d, rc) != FLUSH_OK)
            break;
    }
    if (held_jobs(d) == 0)
        return;
give_back:;
    long n = sw_proc_release(d->redis, d->id, sw_parking_sinks(d->parking));
    if (n >= 0) {
        if (n > 0)
            sw_log_info("stopped with jobs in hand; gave them back to the queue", "jobs=%ld "
                        "note=\"jobs of a sink with parked jobs went to its parked list\"", n);
        drop_all(d);
        return;
    }
    sw_log_warn("stopped with jobs in hand", "jobs=%d error=\"%s\" note=\"they stay in this "
                "flusher's processing list; a restart, or another flusher once the heartbeat "
                "expires, commits them\"", held_jobs(d), d->redis->errstr);
}

/* Claim into the fill slot. 0 claimed or nothing there; 1 the slot is
 * full; -1 Redis failed (read the list again). */
static int claim(drain *d)
{
    const sw_config *cfg = d->cfg;
    slot *sl = &d->slots[d->fill];
    sw_batch *b = sl->batch;
    long room = cfg->batch_max_records - (long)b->nrecords;
    long broom = cfg->batch_max_bytes - (long)b->nbytes;
    long jroom = MAX_BATCH_JOBS - b->njobs;
    void *reply = NULL;
    const sw_sink_view *view = sw_parking_view(d->parking);
    if (view == NULL)
        return 2;   /* which sinks are paused is not known yet */
    sw_claim_limits lim = {room > 0 ? room : 1,
                           jroom < MAX_JOBS_PER_CLAIM ? jroom : MAX_JOBS_PER_CLAIM,
                           broom > 0 ? broom : 1, b->njobs == 0, *view};
    int rc = sw_proc_claim(d->redis, d->id, &lim, &reply);
    if (rc < 0) {
        redis_failed(d, "claim");
        return -1;
    }
    redis_ok(d);
    if (rc == 1) {
        sl->full = 1;
        return 1;
    }
    if (rc == 2)
        return 0;   /* only parked: there may be more to claim behind */
    size_t got = sw_proc_count(reply);
    if (take(sl, reply, NULL) != 0) {
        sw_log_warn("cannot add claimed jobs", "error=\"%s\" action=\"reading the batch "
                    "again\"", d->redis->errstr);
        return -1;
    }
    return got == 0 ? 2 : 0;
}

static void loop(drain *d)
{
    /* 2 = resume our processing list (a delivery), 1 = read it again. */
    int need_reload = 2;
    while (!stopping(d)) {
        sw_liveness_busy(d->live, BUSY_MS(d));
        sw_parking_tick(d->parking, d->redis);
        if (need_reload) {
            int rc = reload(d, need_reload == 2);
            if (rc != 0) {
                /* A resume that answered, or whose reply was lost, may have
                 * counted its deliveries already: read the list from now
                 * on, counting nothing more. */
                if (rc == -2 || sw_redis_maybe_done(d->redis->err))
                    need_reload = 1;
                nap(d, 200);
                continue;
            }
            need_reload = 0;
        }
        int rc;
        if (sw_committer_result(d->committer, 0, &rc)) {
            if (after_commit(d, rc) == FLUSH_DOUBT) {
                need_reload = 1;
                nap(d, 100);
            }
            continue;
        }
        int busy = sw_committer_busy(d->committer);
        if (!busy && held_jobs(d) == 0) {
            prune(d, PRUNE_CHUNKS);
            pg_probe(d);
            if (d->orphan_seen)
                d->next_takeover_ms = 0;
            d->orphan_seen = 0;
            int taken = take_over_orphans(d, 0);
            if (taken) {
                need_reload = taken == 1 ? 2 : 1;
                continue;
            }
        } else if (!d->orphan_seen && take_over_orphans(d, 1) == 2) {
            /* Busy as we are, a dead flusher's jobs must not wait for a
             * quiet moment: finish what we hold, then take them. */
            sw_log_info("a flusher's heartbeat expired with jobs in hand", "action=\"committing "
                        "the batches held, then taking its list over\"");
            d->orphan_seen = 1;
        }
        slot *h = &d->slots[d->head];
        if (!busy && h->batch->njobs > 0 && (d->fill != d->head || due(d, h))) {
            hand_head(d);
            continue;
        }
        /* Jobs in hand through crashes go first, alone; nothing joins
         * them. A full fill slot waits for the committer, and so does
         * everything while an orphaned list waits for us. */
        slot *f = &d->slots[d->fill];
        if (busy && (due(d, f) || d->orphan_seen)) {
            if (sw_committer_result(d->committer, POLL_MS, &rc) && after_commit(d, rc) ==
                FLUSH_DOUBT) {
                need_reload = 1;
                nap(d, 100);
            }
            continue;
        }
        int c = claim(d);
        if (c < 0) {
            need_reload = 1;
            nap(d, 200);
        } else if (c == 2) {
            /* Nothing to claim: wait for the committer, or a little. */
            if (busy) {
                if (sw_committer_result(d->committer, POLL_MS, &rc) && after_commit(d, rc) ==
                    FLUSH_DOUBT) {
                    need_reload = 1;
                    nap(d, 100);
                }
            } else {
                sw_clock_sleep_ms(POLL_MS);
            }
        }
    }
}

int sw_drain_run(const sw_drain_opts *o)
{
    const sw_config *cfg = o->cfg;
    drain d;
    int status = 1;
    memset(&d, 0, sizeof d);
    d.cfg = cfg;
    d.stop = o->stop;
    d.release = o->release;
    d.shard = o->shard;
    d.id = cfg->flusher_id;
    d.heartbeat = o->heartbeat;
    char prefix[64];
    sw_redis_opts base = sw_config_redis(cfg);
    sw_redis_opts ro = sw_shards_opts(&base, o->shard >= 0 ? cfg->shards : 0,
                                      o->shard >= 0 ? o->shard : 0, prefix);
    d.redis = sw_redis_new(&ro);
    d.pg = sw_pg_new(cfg->conninfo, cfg->pg_password, cfg->statement_timeout_ms);
    for (int i = 0; i < 2; i++)
        d.slots[i].batch = sw_batch_new(cfg, shape_lookup, &d);
    d.commit = sw_commit_new(cfg, cfg->flusher_id);
    d.parking = sw_parking_new(cfg, o->shard >= 0 ? &base : NULL);
    if (d.pg) {
        d.pg->on_statement = pg_statement;
        d.pg->on_statement_ctx = &d;
    }
    if (d.redis == NULL || d.pg == NULL || d.slots[0].batch == NULL || d.slots[1].batch == NULL ||
        d.commit == NULL || d.parking == NULL) {
        sw_log_error("out of memory", NULL);
        goto out;
    }
    d.redis->reconnects = sw_stats_redis_reconnects();
    d.redis->redirects = sw_stats_redis_redirects();

    /* The sinks must match their tables before we write. */
    while (!stopping(&d) && sw_pg_connect(d.pg) != 0)
        pg_failed(&d);
    if (stopping(&d))
        goto clean;
    int check = check_sinks(&d);
    if (check != 0) {
        if (check < 0)
            sw_log_error("cannot check sinks", "error=\"%s\"", d.pg->errstr);
        else
            sw_log_error("refusing to start", "hint=\"fix the table or the config; "
                         "spillwayctl check-config shows the same\"");
        goto out;
    }
    if (d.pg_down) {
        sw_log_info("postgres available again", NULL);
        sw_stats_pg_down(-1);
    }
    d.pg_down = 0;
    d.backoff_ms = 0;
    /* The layout guard (a sharded flusher's holder checks it first). */
    enum sw_layout layout = SW_LAYOUT_OK;
    while (d.shard < 0 && !stopping(&d) &&
           (layout = sw_shards_check_layout(d.redis, 0)) == SW_LAYOUT_ERROR) {
        redis_failed(&d, "layout");
        sw_clock_sleep_ms(500);
    }
    if (layout == SW_LAYOUT_MISMATCH) {
        status = 2;
        goto out;
    }
    int owned;
    while ((owned = claim_id(&d)) < 0 && !stopping(&d)) {
        redis_failed(&d, "claim id");
        sw_clock_sleep_ms(500);
    }
    if (stopping(&d))
        goto clean;
    if (owned != 0)
        goto out;
    redis_ok(&d);
    d.live = sw_liveness_start(cfg, &ro, d.id, o->heartbeat,
                               o->shard >= 0 ? o->release : NULL, o->stalled);
    if (d.live == NULL) {
        sw_log_error("cannot start the heartbeat thread", NULL);
        goto out;
    }
    d.committer = sw_committer_start(commit_batch, &d);
    if (d.committer == NULL) {
        sw_log_error("cannot start the postgres thread", NULL);
        goto out;
    }
    if (d.shard < 0) {
        upgrade_redis(&d);
        sw_log_info("flusher started", "id=%s batch_max_records=%d flush_interval_ms=%d "
                    "version=%s", cfg->flusher_id, cfg->batch_max_records,
                    cfg->flush_interval_ms, SW_VERSION);
        char ready[128];
        snprintf(ready, sizeof ready, "flusher %s draining %s", d.id, cfg->prefix);
        sw_notify_ready(ready);
    } else {
        sw_log_info("draining shard", "id=%s", d.id);
    }
    loop(&d);
    if (d.shard < 0)
        sw_notify_stopping();
    stop_with_batch(&d);
clean:
    status = 0;
out:
    if (d.pg_down)
        sw_stats_pg_down(-1);   /* this drain's view goes with it */
    sw_committer_stop(d.committer);
    sw_liveness_stop(d.live, status == 0 && d.slots[0].batch && d.slots[1].batch &&
                                 held_jobs(&d) == 0);
    if (status == 0 && d.shard < 0)
        sw_log_info("flusher stopped", NULL);
    else if (status == 0)
        sw_log_info("shard let go", "id=%s", d.id);
    for (int i = 0; i < 2; i++) {
        if (d.slots[i].batch)
            drop_slot(&d.slots[i]);
        free(d.slots[i].replies);
        sw_batch_free(d.slots[i].batch);
    }
    free(d.done);
    free(d.offs);
    sw_buf_free(&d.statuses);
    sw_buf_free(&d.scratch);
    sw_commit_free(d.commit);
    sw_parking_free(d.parking);
    sw_pg_free(d.pg);
    sw_redis_free(d.redis);
    return status;
}
