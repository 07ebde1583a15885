/* The ceiling for ingest on this machine: a civetweb handler that reads the
 * body and answers 202 with a job-sized JSON body, doing no other work.
 * Same thread count and options as spillway-server. Benchmark tool only. */
#include <civetweb.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

static volatile sig_atomic_t stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static int worker_nice;

/* The same worker priority as spillway-server ([server] worker_nice). */
static void *init_thread(const struct mg_context *ctx, int type)
{
    (void)ctx;
    if (type == 1 && worker_nice > 0)
        setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), worker_nice);
    return NULL;
}

static int handler(struct mg_connection *c, void *data)
{
    (void)data;
    char buf[16384];
    while (mg_read(c, buf, sizeof buf) > 0) {
    }
    /* The same response, written the same way (one write), as
     * spillway-server's 202. */
    static const char body[] =
        "{\"job_id\":\"01a2072f-c8c2-73e2-b977-b06efabbeb75\",\"status\":\"queued\",\"records\":1}";
    char out[512];
    int n = snprintf(out, sizeof out,
                     "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nCache-Control: no-store\r\n"
                     "Location: /v1/jobs/01a2072f-c8c2-73e2-b977-b06efabbeb75\r\n\r\n%s",
                     sizeof body - 1, body);
    mg_write(c, out, (size_t)n);
    return 202;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: bench-bare-server ADDRESS:PORT THREADS WORKER_NICE\n");
        return 2;
    }
    worker_nice = atoi(argv[3]);
    const char *options[] = {"listening_ports", argv[1], "num_threads", argv[2],
                             "enable_keep_alive", "yes", "tcp_nodelay", "1",
                             "keep_alive_timeout_ms", "30000", NULL};
    struct mg_callbacks cb;
    memset(&cb, 0, sizeof cb);
    cb.init_thread = init_thread;
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    mg_init_library(0);
    struct mg_context *ctx = mg_start(&cb, NULL, options);
    if (ctx == NULL) {
        fprintf(stderr, "bench-bare-server: cannot listen on %s\n", argv[1]);
        return 1;
    }
    mg_set_request_handler(ctx, "/", handler, NULL);
    while (!stop)
        usleep(100000);
    mg_stop(ctx);
    return 0;
}
