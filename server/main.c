/* spillway-server: accepts writes over HTTP and queues them in Redis. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "http.h"
#include "log.h"

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
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
    signal(SIGPIPE, SIG_IGN);

    sw_http *h = sw_http_start(&cfg);
    if (h == NULL) {
        sw_config_free(&cfg);
        return 1;
    }
    sw_log_info("server started", "listen=%s sinks=%d threads=%d version=%s", cfg.listen,
                cfg.nsinks, cfg.threads, SW_VERSION);
    while (!stop)
        sw_clock_sleep_ms(100);
    sw_log_info("server stopping", "reason=signal");
    sw_http_stop(h);
    sw_config_free(&cfg);
    sw_log_info("server stopped", NULL);
    return 0;
}
