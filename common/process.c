#include "process.h"

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "metrics.h"

/* Fields 14, 15 (utime, stime, in ticks), 22 (starttime, ticks after
 * boot) and 23 (vsize, bytes) of /proc/self/stat; rss from statm. The
 * command name (field 2) may hold spaces and parentheses: parse after
 * the last ')'. */
static int read_stat(double *cpu_s, double *start_ticks, double *vsize)
{
    char line[1024];
    FILE *f = fopen("/proc/self/stat", "r");
    if (f == NULL)
        return -1;
    size_t n = fread(line, 1, sizeof line - 1, f);
    fclose(f);
    line[n] = '\0';
    const char *p = strrchr(line, ')');
    unsigned long ut, st, vs;
    unsigned long long start;
    /* After ')': state is field 3, so utime is the 12th item from here. */
    if (p == NULL || sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu "
                            "%*d %*d %*d %*d %*d %*d %llu %lu", &ut, &st, &start, &vs) != 4)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        return -1;
    *cpu_s = (double)(ut + st) / (double)hz;
    *start_ticks = (double)start / (double)hz;
    *vsize = (double)vs;
    return 0;
}

/* Start time on today's wall clock: now, less the time since the start on
 * the clock /proc counts starttime on (CLOCK_BOOTTIME). /proc/stat's btime
 * is whole seconds and drifts from the wall clock, putting a start in the
 * future. */
static double start_time(double start_ticks_s)
{
    struct timespec real, boot;
    if (start_ticks_s < 0 || clock_gettime(CLOCK_REALTIME, &real) != 0 ||
        clock_gettime(CLOCK_BOOTTIME, &boot) != 0)
        return -1;
    double since = (double)boot.tv_sec + (double)boot.tv_nsec / 1e9 - start_ticks_s;
    return (double)real.tv_sec + (double)real.tv_nsec / 1e9 - (since > 0 ? since : 0);
}

static double resident(void)
{
    unsigned long size, rss;
    FILE *f = fopen("/proc/self/statm", "r");
    if (f == NULL)
        return -1;
    int ok = fscanf(f, "%lu %lu", &size, &rss) == 2;
    fclose(f);
    long page = sysconf(_SC_PAGESIZE);
    return ok && page > 0 ? (double)rss * (double)page : -1;
}

static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return -1;
    double n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* the directory's own descriptor */
}

static int gauge(sw_buf *out, const char *name, const char *type, const char *help, double v)
{
    if (v < 0)
        return 0;
    return sw_metrics_header(out, name, type, help) | sw_metrics_sample(out, name, "", v);
}

/* Worked out once: a value recomputed each scrape would move with clock
 * steps and flap changes(process_start_time_seconds). */
static pthread_once_t start_once = PTHREAD_ONCE_INIT;
static double started = -1;

static void find_start(void)
{
    double cpu, start, vsize;
    if (read_stat(&cpu, &start, &vsize) == 0)
        started = start_time(start);
}

int sw_process_metrics(sw_buf *out)
{
    pthread_once(&start_once, find_start);
    double cpu = -1, start = -1, vsize = -1;
    if (read_stat(&cpu, &start, &vsize) != 0)
        cpu = start = vsize = -1;
    struct rlimit rl;
    double max_fds = getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY
                         ? (double)rl.rlim_cur : -1;
    int rc = 0;
    rc |= gauge(out, "process_cpu_seconds_total", "counter",
                "User and system CPU time spent, in seconds.", cpu);
    rc |= gauge(out, "process_resident_memory_bytes", "gauge", "Resident memory size in bytes.",
                resident());
    rc |= gauge(out, "process_virtual_memory_bytes", "gauge", "Virtual memory size in bytes.",
                vsize);
    rc |= gauge(out, "process_open_fds", "gauge", "Open file descriptors.", open_fds());
    rc |= gauge(out, "process_max_fds", "gauge", "Limit on open file descriptors.", max_fds);
    rc |= gauge(out, "process_start_time_seconds", "gauge",
                "Start time of the process since the Unix epoch, in seconds.",
                started);
    return rc ? -1 : 0;
}
