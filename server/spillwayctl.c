/* spillwayctl: the operator's tool. migrate, check-config, queue, dead, token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "config.h"
#include "log.h"
#include "migrate.h"
#include "pgconn.h"
#include "dead.h"
#include "queue.h"
#include "redis.h"
#include "shards.h"
#include "schema.h"
#include "envelope.h"
#include "jobid.h"
#include "status.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spillwayctl --config FILE [--migrations DIR] COMMAND\n"
            "\n"
            "commands:\n"
            "  migrate        apply the new SQL files of the migrations directory, in order\n"
            "  check-config   check every sink against its real table in PostgreSQL;\n"
            "                 exits 1 and names each mismatch\n"
            "  queue          print queue depth, in-flight and dead-letter counts\n"
            "  dead list [--limit N]      failed jobs, newest first, with their errors\n"
            "                             (default limit 20)\n"
            "  dead requeue JOB_ID|--all  put failed jobs back on the queue (after fixing\n"
            "                             the table or the data)\n"
            "  dead drop JOB_ID|--all     forget failed jobs (their status stays failed)\n"
            "  token new --sinks a,b|'*'  print a new API token, then the line that lets it\n"
            "                             in: add that line to [server] tokens_file\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     the INI file shared with the daemons\n"
            "  --migrations DIR      where the numbered *.sql files are (default: the\n"
            "                        source tree's migrations/ when run from a build, else\n"
            "                        " SW_MIGRATIONS_DIR ")\n"
            "  -h, --help            this text\n"
            "  -V, --version         print the version\n");
}

static sw_pg *connect_pg(const sw_config *cfg)
{
    sw_pg *pg = sw_pg_new(cfg->conninfo, cfg->pg_password, 0);
    if (pg == NULL || sw_pg_connect(pg) != 0) {
        fprintf(stderr, "spillwayctl: cannot connect to PostgreSQL: %s\n"
                        "  (check [postgres] conninfo or SPILLWAY_POSTGRES_CONNINFO)\n",
                pg ? pg->errstr : "out of memory");
        sw_pg_free(pg);
        return NULL;
    }
    return pg;
}

static int cmd_migrate(const sw_config *cfg, const char *dir)
{
    sw_pg *pg = connect_pg(cfg);
    if (pg == NULL)
        return 1;
    int n = sw_migrate_run(pg, dir);
    if (n < 0)
        fprintf(stderr, "spillwayctl: migrate failed: %s\n", pg->errstr);
    else
        printf("migrations: %d applied (from %s)\n", n, dir);
    sw_pg_free(pg);
    return n < 0 ? 1 : 0;
}

static int cmd_check(const sw_config *cfg)
{
    sw_pg *pg = connect_pg(cfg);
    sw_buf report = SW_BUF_INIT;
    int bad = 0, rc = 1;
    if (pg == NULL)
        return 1;
    if (cfg->nsinks == 0)
        fprintf(stderr, "spillwayctl: no [sink.NAME] sections are configured\n");
    for (int k = 0; k < cfg->nsinks; k++) {
        int n = sw_schema_check(pg, &cfg->sinks[k], &report);
        if (n < 0) {
            fprintf(stderr, "spillwayctl: check failed: %s\n", pg->errstr);
            goto out;
        }
        if (n == 0)
            printf("sink %s: ok (%s, %d columns, mode %s)\n", cfg->sinks[k].name,
                   cfg->sinks[k].table, cfg->sinks[k].ncolumns,
                   sw_sink_mode_name(cfg->sinks[k].mode));
        bad += n;
    }
    if (bad) {
        fputs(report.data, stderr);
        fprintf(stderr, "spillwayctl: %d mismatch(es)\n", bad);
    }
    rc = bad || cfg->nsinks == 0 ? 1 : 0;
out:
    sw_buf_free(&report);
    sw_pg_free(pg);
    return rc;
}

static int cmd_queue(const sw_config *cfg)
{
    sw_redis_opts ro = sw_config_redis(cfg);
    sw_shards *s = sw_shards_new(&ro, cfg->shards);
    sw_queue_stats st, per[SW_SHARDS_MAX];
    sw_redis *r = NULL;
    int rc = 1;
    if (s == NULL || sw_shards_stats(s, &st, per, &r) != 0) {
        /* (The adapter's host: the master Sentinel or the cluster named.) */
        fprintf(stderr, "spillwayctl: cannot read the queue from Redis %s:%d: %s\n",
                r ? r->host : cfg->redis_host, r ? r->port : cfg->redis_port,
                r ? r->errstr : "out of memory");
        goto out;
    }
    printf("depth %lld\nqueued_jobs %lld\nin_flight %lld\ndead_jobs %lld\n"
           "oldest_age_seconds %.3f\n",
           st.queued_records, st.queued_jobs, st.inflight_records, st.dead_jobs,
           sw_queue_oldest_age(&st, sw_clock_now_us()));
    for (int k = 0; s->sharded && k < s->n; k++)
        printf("shard %d depth %lld queued_jobs %lld in_flight %lld dead_jobs %lld\n", k,
               per[k].queued_records, per[k].queued_jobs, per[k].inflight_records,
               per[k].dead_jobs);
    rc = 0;
out:
    sw_shards_free(s);
    return rc;
}

/* Connections to every queue shard, each tried once. */
static sw_shards *connect_redis(const sw_config *cfg)
{
    sw_redis_opts ro = sw_config_redis(cfg);
    sw_shards *s = sw_shards_new(&ro, cfg->shards);
    for (int k = 0; s && k < s->n; k++) {
        sw_redis *r = s->q[k];
        if (sw_redis_connect(r) != 0) {
            fprintf(stderr, "spillwayctl: cannot reach Redis %s:%d: %s\n", r->host, r->port,
                    r->errstr);
            sw_shards_free(s);
            return NULL;
        }
    }
    if (s == NULL)
        fprintf(stderr, "spillwayctl: out of memory\n");
    return s;
}

/* Print one dead job; with `status`, also build its "queued" status JSON
 * for a requeue. 1 printed, 0 no such dead job, -1 error. */
static int dead_show(sw_redis *r, const char *id, sw_buf *status)
{
    sw_dead_job d;
    int found = sw_dead_get(r, id, &d);
    if (found <= 0) {
        if (found < 0)
            fprintf(stderr, "spillwayctl: %s\n", r->errstr);
        return found;
    }
    sw_envelope e;
    char why[128];
    int rc = 1;
    if (sw_envelope_decode(d.env, d.env_len, &e, why, sizeof why) != 0) {
        printf("%s  %.*s  (undecodable envelope: %s)  error=%.*s\n", id, (int)d.failed_at_len,
               d.failed_at, why, (int)d.error_len, d.error);
        rc = status ? -1 : 1;
        goto out;
    }
    printf("%s  %.*s  sink=%s records=%u  error=%.*s\n", id, (int)d.failed_at_len, d.failed_at,
           e.sink, e.nrecords, (int)d.error_len, d.error);
    if (status) {
        /* The JSON, then NUL, then the compact form (status.h). */
        sw_buf compact = SW_BUF_INIT;
        sw_status st = {id, "queued", e.sink, e.nrecords,
                        (int64_t)sw_jobid_time_ms(id) * 1000, 0, NULL};
        rc = sw_status_json(status, &st) == 0 &&
                     sw_status_compact(&compact, 'q', e.nrecords, e.sink, 0) == 0 &&
                     sw_buf_append(status, "", 1) == 0 &&
                     sw_buf_append(status, compact.data, compact.len + 1) == 0
                 ? 1 : -1;
        sw_buf_free(&compact);
    }
out:
    sw_dead_job_free(&d);
    return rc;
}

static int dead_one(const sw_config *cfg, sw_redis *r, const char *what, const char *id,
                    sw_buf *status)
{
    if (strcmp(what, "requeue") == 0) {
        int found = dead_show(r, id, status);
        if (found <= 0)
            return found;
        return sw_dead_requeue(r, id, status->data, status->data + strlen(status->data) + 1,
                               cfg->status_ttl_s);
    }
    return sw_dead_drop(r, id);
}

static int cmd_dead(const sw_config *cfg, int argc, char **argv)
{
    const char *what = argc > 0 ? argv[0] : "list";
    long limit = 20;
    int rc = 1;
    sw_buf status = SW_BUF_INIT;
    void *ids = NULL;
    sw_shards *s = NULL;
    if (strcmp(what, "list") == 0) {
        if (argc == 3 && strcmp(argv[1], "--limit") == 0)
            limit = strtol(argv[2], NULL, 10);
        else if (argc != 1)
            goto usage;
        if (limit < 1)
            goto usage;
    } else if (strcmp(what, "requeue") != 0 && strcmp(what, "drop") != 0) {
        goto usage;
    } else if (argc != 2) {
        goto usage;
    }
    if ((s = connect_redis(cfg)) == NULL)
        goto out;
    if (strcmp(what, "list") == 0 || strcmp(argv[1], "--all") == 0) {
        /* Shard by shard, each newest first; a list stops at `limit`. */
        size_t shown = 0, done = 0;
        for (int k = 0; k < s->n; k++) {
            sw_redis *r = s->q[k];
            long want = strcmp(what, "list") == 0 ? limit - (long)shown : 100000000L;
            if (want <= 0)
                break;
            if (sw_dead_ids(r, want, &ids) != 0) {
                fprintf(stderr, "spillwayctl: %s\n", r->errstr);
                goto out;
            }
            size_t n = sw_redis_reply_len(ids);
            for (size_t i = 0; i < n; i++) {
                size_t len;
                char id[64];
                const char *p = sw_redis_reply_item(ids, i, &len);
                snprintf(id, sizeof id, "%.*s", (int)len, p);
                int one = strcmp(what, "list") == 0 ? dead_show(r, id, NULL)
                                                    : dead_one(cfg, r, what, id, &status);
                if (one < 0) {
                    fprintf(stderr, "spillwayctl: %s: %s\n", id, r->errstr);
                    goto out;
                }
                done += (size_t)one;
            }
            shown += n;
            sw_redis_reply_free(ids);
            ids = NULL;
        }
        if (strcmp(what, "list") == 0)
            printf("%zu shown\n", shown);
        else
            printf("%zu %s\n", done, strcmp(what, "requeue") == 0 ? "requeued" : "dropped");
        rc = 0;
        goto out;
    }
    /* One job: the shard its id names. */
    sw_redis *r = sw_jobid_valid(argv[1], strlen(argv[1])) ? sw_shards_job(s, argv[1]) : NULL;
    int one = r ? dead_one(cfg, r, what, argv[1], &status) : 0;
    if (one < 0)
        fprintf(stderr, "spillwayctl: %s\n", r->errstr);
    else if (one == 0)
        fprintf(stderr, "spillwayctl: no dead-lettered job %s\n", argv[1]);
    else
        printf("1 %s\n", strcmp(what, "requeue") == 0 ? "requeued" : "dropped");
    rc = one == 1 ? 0 : 1;
    goto out;
usage:
    fprintf(stderr, "usage: spillwayctl --config FILE dead list [--limit N] | "
                    "dead requeue JOB_ID|--all | dead drop JOB_ID|--all\n");
    rc = 2;
out:
    sw_redis_reply_free(ids);
    sw_shards_free(s);
    sw_buf_free(&status);
    return rc;
}

/* The token is printed once and kept nowhere: only its hash goes in the
 * tokens file. */
static int cmd_token(const sw_config *cfg, int argc, char **argv)
{
    char token[SW_AUTH_TOKEN_MAX], line[700], hash[SW_AUTH_HASH_HEX];
    sw_auth check;
    if (argc != 3 || strcmp(argv[0], "new") != 0 || strcmp(argv[1], "--sinks") != 0) {
        fprintf(stderr, "usage: spillwayctl --config FILE token new --sinks a,b|'*'\n");
        return 2;
    }
    if (sw_auth_token_new(token) != 0) {
        fprintf(stderr, "spillwayctl: no randomness from the kernel (getrandom)\n");
        return 1;
    }
    sw_auth_hash_hex(token, strlen(token), hash);
    snprintf(line, sizeof line, "%s %s\n", hash, argv[2]);
    /* The same parser as the server's, so a line printed here loads. */
    int rc = sw_auth_parse(&check, "--sinks", line, cfg);
    if (rc != 0)
        fprintf(stderr, "spillwayctl: %s\n", check.errstr);
    sw_auth_free(&check);
    if (rc != 0)
        return 2;
    printf("%s\n%s", token, line);
    fprintf(stderr, "spillwayctl: line 1 is the token: give it to the client, it is not kept "
                    "anywhere.\nspillwayctl: line 2 goes into [server] tokens_file%s%s; "
                    "reload the server (SIGHUP) to load it.\n",
            cfg->tokens_file[0] ? " = " : "", cfg->tokens_file);
    return 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *dir = NULL, *cmd = NULL;
    int cmd_argc = 0;
    char **cmd_argv = NULL;
    for (int i = 1; i < argc; i++) {
        if ((strcmp(argv[i], "--config") == 0 || strcmp(argv[i], "-c") == 0) && i + 1 < argc) {
            path = argv[++i];
        } else if (strcmp(argv[i], "--migrations") == 0 && i + 1 < argc) {
            dir = argv[++i];
        } else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
            printf("spillwayctl %s\n", SW_VERSION);
            return 0;
        } else if (cmd == NULL && argv[i][0] != '-') {
            cmd = argv[i];
            cmd_argc = argc - i - 1;
            cmd_argv = argv + i + 1;
            break;
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL || cmd == NULL || (cmd_argc > 0 && strcmp(cmd, "dead") != 0 &&
                                          strcmp(cmd, "token") != 0)) {
        usage(stderr);
        return 2;
    }
    sw_config cfg;
    if (sw_config_load(&cfg, path) != 0) {
        fprintf(stderr, "spillwayctl: %s\n", cfg.errstr);
        sw_config_free(&cfg);
        return 2;
    }
    if (dir == NULL)
        dir = access(SW_SOURCE_MIGRATIONS_DIR, R_OK) == 0 ? SW_SOURCE_MIGRATIONS_DIR
                                                           : SW_MIGRATIONS_DIR;
    int rc;
    if (strcmp(cmd, "migrate") == 0)
        rc = cmd_migrate(&cfg, dir);
    else if (strcmp(cmd, "check-config") == 0)
        rc = cmd_check(&cfg);
    else if (strcmp(cmd, "queue") == 0)
        rc = cmd_queue(&cfg);
    else if (strcmp(cmd, "dead") == 0)
        rc = cmd_dead(&cfg, cmd_argc, cmd_argv);
    else if (strcmp(cmd, "token") == 0)
        rc = cmd_token(&cfg, cmd_argc, cmd_argv);
    else {
        fprintf(stderr, "spillwayctl: unknown command \"%s\"\n", cmd);
        usage(stderr);
        rc = 2;
    }
    sw_config_free(&cfg);
    return rc;
}
