/* spillway-flusher: drains the Redis queue into PostgreSQL, many jobs per
 * transaction (drain.h). This file: arguments, configuration, signals. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "drain.h"
#include "lease.h"
#include "log.h"
#include "stats.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
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

    char host[128], heartbeat[160];
    if (gethostname(host, sizeof host) != 0)
        strcpy(host, "unknown");
    host[sizeof host - 1] = '\0';
    snprintf(heartbeat, sizeof heartbeat, "%s %ld", host, (long)getpid());

    int status = 1;
    sw_drain_opts o = {&cfg, heartbeat, &stop, -1, NULL, NULL};
    if (sw_stats_start(&cfg) == 0)
        status = cfg.shards > 0 ? sw_lease_run(&cfg, heartbeat, &stop) : sw_drain_run(&o);
    sw_stats_stop();
    sw_config_free(&cfg);
    return status;
}
