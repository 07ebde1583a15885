/* spillwayctl: the operator's tool. migrate, check-config and queue here;
 * dead and token in ctl_dead.c and ctl_token.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "ctl.h"
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

#ifndef SW_DEFAULT_CONFIG
#define SW_DEFAULT_CONFIG "/etc/spillway/spillway.ini"
#endif

static void usage(FILE *f)
{
    fprintf(f,
            "usage: spillwayctl [--config FILE] [--json] COMMAND [ARGS]\n"
            "\n"
            "commands:\n"
            "  migrate        apply the new SQL files of the migrations directory, in order\n"
            "  check-config   check every sink against its real table in PostgreSQL;\n"
            "                 exits 1 and names each mismatch\n"
            "  queue          print queue depth, in-flight and dead-letter counts\n"
            "  dead list [--limit N] [--sink S] [--sqlstate C]\n"
            "                 failed jobs, newest first, with their errors (default limit\n"
            "                 20); C is a SQLSTATE or its start (23505, 23)\n"
            "  dead show JOB_ID\n"
            "                 one failed job: its error and its records, decoded\n"
            "  dead requeue JOB_ID | --all [--sink S] [--sqlstate C]\n"
            "                 put failed jobs back on the queue (after fixing the table or\n"
            "                 the data)\n"
            "  dead drop JOB_ID | --all [--sink S] [--sqlstate C]\n"
            "                 forget failed jobs (their status stays failed)\n"
            "  token new --sinks a,b|'*' [--name NAME]\n"
            "                 print a new API token, then the lines that let it in: add\n"
            "                 them to [server] tokens_file\n"
            "  token list     the tokens file's tokens: id, sinks, name\n"
            "  token revoke ID\n"
            "                 remove a token from the tokens file (then reload the server)\n"
            "  sink list      the sinks: queued and parked records, intake and flushing\n"
            "  sink pause NAME [--intake] [--flush] [--note TEXT]\n"
            "                 --intake (the default): its POSTs answer 503 sink-paused on\n"
            "                 every server, queued jobs still flush; --flush: flushers set\n"
            "                 its jobs aside (parked) and flush every other sink's\n"
            "  sink resume NAME [--intake] [--flush]\n"
            "                 the intake unless told (as pause); resumed, a sink's parked\n"
            "                 jobs flush first, oldest first\n"
            "  sink purge NAME --yes\n"
            "                 drop its parked jobs (flushing paused first): their statuses\n"
            "                 turn failed; without --yes, say how many and do nothing\n"
            "\n"
            "options:\n"
            "  -c, --config FILE     the INI file shared with the daemons (default\n"
            "                        " SW_DEFAULT_CONFIG ")\n"
            "  --json                print one JSON document (queue, check-config, dead list,\n"
            "                        dead show, token list, sink list)\n"
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

static int cmd_check(const sw_config *cfg, int json)
{
    sw_pg *pg = connect_pg(cfg);
    sw_buf report = SW_BUF_INIT;
    int bad = 0, rc = 1;
    json_t *sinks = json_array();
    if (pg == NULL) {
        json_decref(sinks);
        return 1;
    }
    if (cfg->nsinks == 0)
        fprintf(stderr, "spillwayctl: no [sink.NAME] sections are configured\n");
    for (int k = 0; k < cfg->nsinks; k++) {
        int n = sw_schema_check(pg, &cfg->sinks[k], &report);
        if (n < 0) {
            fprintf(stderr, "spillwayctl: check failed: %s\n", pg->errstr);
            goto out;
        }
        if (n == 0 && !json)
            printf("sink %s: ok (%s, %d columns, mode %s)\n", cfg->sinks[k].name,
                   cfg->sinks[k].table, cfg->sinks[k].ncolumns,
                   sw_sink_mode_name(cfg->sinks[k].mode));
        json_array_append_new(sinks, json_pack("{s:s,s:s,s:i,s:s,s:i}", "sink",
                                               cfg->sinks[k].name, "table", cfg->sinks[k].table,
                                               "columns", cfg->sinks[k].ncolumns, "mode",
                                               sw_sink_mode_name(cfg->sinks[k].mode),
                                               "mismatches", n));
        bad += n;
    }
    rc = bad || cfg->nsinks == 0 ? 1 : 0;
    if (json) {
        if (sw_ctl_print_json(json_pack("{s:O,s:i,s:s}", "sinks", sinks, "mismatches", bad,
                                        "report", report.data ? report.data : "")) != 0)
            rc = 1;
        goto out;
    }
    if (bad) {
        fputs(report.data, stderr);
        fprintf(stderr, "spillwayctl: %d mismatch(es)\n", bad);
    }
out:
    json_decref(sinks);
    sw_buf_free(&report);
    sw_pg_free(pg);
    return rc;
}

static int cmd_queue(const sw_config *cfg, int json)
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
    if (json) {
        json_t *doc = json_pack("{s:I,s:I,s:I,s:I,s:f}", "depth", (json_int_t)st.queued_records,
                                "queued_jobs", (json_int_t)st.queued_jobs, "in_flight",
                                (json_int_t)st.inflight_records, "dead_jobs",
                                (json_int_t)st.dead_jobs, "oldest_age_seconds",
                                sw_queue_oldest_age(&st, sw_clock_now_us()));
        json_t *shards = json_array();
        for (int k = 0; s->sharded && k < s->n; k++)
            json_array_append_new(shards, json_pack("{s:i,s:I,s:I,s:I,s:I}", "shard", k,
                                                    "depth", (json_int_t)per[k].queued_records,
                                                    "queued_jobs", (json_int_t)per[k].queued_jobs,
                                                    "in_flight",
                                                    (json_int_t)per[k].inflight_records,
                                                    "dead_jobs", (json_int_t)per[k].dead_jobs));
        json_object_set_new(doc, "shards", shards);
        rc = sw_ctl_print_json(doc);
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

sw_shards *sw_ctl_connect_redis(const sw_config *cfg)
{
    sw_redis_opts ro = sw_config_redis(cfg);
    sw_shards *s = sw_shards_new(&ro, cfg->shards);
    for (int k = 0; s && k < s->n; k++) {
        sw_redis *r = s->q[k];
        if (sw_redis_connect(r) != 0) {
            fprintf(stderr, "spillwayctl: cannot reach Redis %s:%d: %s (%s)\n", r->host, r->port,
                    r->errstr, sw_redis_hint(r->err, r->code, r->errstr));
            sw_shards_free(s);
            return NULL;
        }
    }
    if (s == NULL)
        fprintf(stderr, "spillwayctl: out of memory\n");
    return s;
}

int sw_ctl_print_json(json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(doc);
    if (text == NULL) {
        fprintf(stderr, "spillwayctl: out of memory\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

int sw_ctl_usage(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "spillwayctl%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, " (see spillwayctl --help)\n");
    va_end(ap);
    return 2;
}

/* The config at `path`: a directory or an unreadable file is named as
 * such, not as the parser's I/O error. */
static int load_config(sw_config *cfg, const char *path, int is_default)
{
    struct stat st;
    int found = stat(path, &st) == 0;
    if (!found || S_ISDIR(st.st_mode)) {
        fprintf(stderr, "spillwayctl: %s: %s%s\n", path,
                found ? "is a directory, not a config file" : strerror(errno),
                is_default ? " (the default config; give --config FILE)" : "");
        memset(cfg, 0, sizeof *cfg);
        return -1;
    }
    if (sw_config_load(cfg, path) != 0) {
        fprintf(stderr, "spillwayctl: %s\n", cfg->errstr);
        return -1;
    }
    return 0;
}

/* The commands' options that take a value: the value is theirs, even
 * when it looks like an option ("--name -h"). */
static int value_option(const char *a)
{
    static const char *const opts[] = {"--sinks", "--name", "--note", "--sink", "--sqlstate",
                                       "--limit"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strcmp(a, opts[i]) == 0)
            return 1;
    return 0;
}

/* Commands that take arguments of their own. */
static int takes_args(const char *cmd)
{
    return strcmp(cmd, "dead") == 0 || strcmp(cmd, "token") == 0 || strcmp(cmd, "sink") == 0;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *dir = NULL, *cmd = NULL;
    int cmd_argc = 0, json = 0;
    char **cmd_argv = calloc((size_t)argc + 1, sizeof *cmd_argv);
    if (cmd_argv == NULL)
        return 1;
    /* Options anywhere; the first word is the command, the rest its
     * arguments. --json goes with any read command. */
    int raw = 0;   /* after "--": only arguments */
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!raw && strcmp(a, "--") == 0) {
            raw = 1;
        } else if (raw || (cmd && takes_args(cmd) && value_option(a) && i + 1 < argc)) {
            if (cmd == NULL) {
                cmd = a;
            } else if (takes_args(cmd)) {
                cmd_argv[cmd_argc++] = argv[i];
                if (!raw)
                    cmd_argv[cmd_argc++] = argv[++i];
            } else {
                free(cmd_argv);
                return sw_ctl_usage(cmd, "unexpected argument \"%s\"", a);
            }
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "-c") == 0 ||
            strcmp(a, "--migrations") == 0) {
            if (i + 1 >= argc) {
                free(cmd_argv);
                return sw_ctl_usage(NULL, "%s wants a value", a);
            }
            *(a[2] == 'm' ? &dir : &path) = argv[++i];
        } else if (strcmp(a, "--json") == 0) {
            json = 1;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            free(cmd_argv);
            return 0;
        } else if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
            printf("spillwayctl %s\n", SW_VERSION);
            free(cmd_argv);
            return 0;
        } else if (cmd == NULL && a[0] != '-') {
            cmd = a;
        } else if (cmd && takes_args(cmd)) {
            cmd_argv[cmd_argc++] = argv[i];
        } else {
            free(cmd_argv);
            return cmd ? sw_ctl_usage(cmd, "unexpected argument \"%s\"", a)
                       : sw_ctl_usage(NULL, "unknown option \"%s\"", a);
        }
    }
    if (cmd == NULL) {
        free(cmd_argv);
        return sw_ctl_usage(NULL, "no command given: migrate, check-config, queue, dead, "
                            "token or sink");
    }
    static const char *const known[] = {"migrate", "check-config", "queue", "dead", "token",
                                        "sink"};
    size_t c = 0;
    while (c < sizeof known / sizeof known[0] && strcmp(cmd, known[c]) != 0)
        c++;
    if (c == sizeof known / sizeof known[0]) {
        free(cmd_argv);
        return sw_ctl_usage(NULL, "unknown command \"%s\": migrate, check-config, queue, "
                            "dead, token or sink", cmd);
    }
    if (json && strcmp(cmd, "migrate") == 0) {
        free(cmd_argv);
        return sw_ctl_usage(cmd, "--json goes with the read commands");
    }
    sw_config cfg;
    if (load_config(&cfg, path ? path : SW_DEFAULT_CONFIG, path == NULL) != 0) {
        sw_config_free(&cfg);
        free(cmd_argv);
        return 2;
    }
    if (dir == NULL)
        dir = access(SW_SOURCE_MIGRATIONS_DIR, R_OK) == 0 ? SW_SOURCE_MIGRATIONS_DIR
                                                           : SW_MIGRATIONS_DIR;
    int rc;
    if (strcmp(cmd, "migrate") == 0)
        rc = cmd_migrate(&cfg, dir);
    else if (strcmp(cmd, "check-config") == 0)
        rc = cmd_check(&cfg, json);
    else if (strcmp(cmd, "queue") == 0)
        rc = cmd_queue(&cfg, json);
    else if (strcmp(cmd, "dead") == 0)
        rc = sw_ctl_dead(&cfg, cmd_argc, cmd_argv, json);
    else if (strcmp(cmd, "sink") == 0)
        rc = sw_ctl_sink(&cfg, cmd_argc, cmd_argv, json);
    else
        rc = sw_ctl_token(&cfg, cmd_argc, cmd_argv, json);
    sw_config_free(&cfg);
    free(cmd_argv);
    return rc;
}
