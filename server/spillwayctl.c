/* spillwayctl: the operator's tool. migrate, check-config, queue. */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "migrate.h"
#include "pgconn.h"
#include "redisq.h"
#include "schema.h"

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
    sw_pg *pg = sw_pg_new(cfg->conninfo, 0);
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
    sw_redis *r = sw_redis_new(cfg->redis_host, cfg->redis_port, cfg->redis_timeout_ms,
                               cfg->prefix);
    sw_queue_stats st;
    int rc = 1;
    if (r == NULL || sw_redis_stats(r, &st) != 0) {
        fprintf(stderr, "spillwayctl: cannot read the queue from Redis %s:%d: %s\n",
                cfg->redis_host, cfg->redis_port, r ? r->errstr : "out of memory");
        goto out;
    }
    double age = st.oldest_enqueued_us
                     ? (double)(sw_clock_now_us() - st.oldest_enqueued_us) / 1e6 : 0;
    printf("depth %lld\nqueued_jobs %lld\nin_flight %lld\ndead_jobs %lld\n"
           "oldest_age_seconds %.3f\n",
           st.queued_records, st.queued_jobs, st.inflight_records, st.dead_jobs,
           age > 0 ? age : 0);
    rc = 0;
out:
    sw_redis_free(r);
    return rc;
}

int main(int argc, char **argv)
{
    const char *path = NULL, *dir = NULL, *cmd = NULL;
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
        } else {
            usage(stderr);
            return 2;
        }
    }
    if (path == NULL || cmd == NULL) {
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
    else {
        fprintf(stderr, "spillwayctl: unknown command \"%s\"\n", cmd);
        usage(stderr);
        rc = 2;
    }
    sw_config_free(&cfg);
    return rc;
}
