#ifndef SW_PROCESS_H_
#define SW_PROCESS_H_

#include "buf.h"

/* The process_* metrics every Prometheus client exports, read from
 * /proc/self at scrape time: process_cpu_seconds_total,
 * process_resident_memory_bytes, process_virtual_memory_bytes,
 * process_open_fds, process_max_fds, process_start_time_seconds. A figure
 * /proc cannot give is left out, never guessed. 0, or -1 out of memory. */
__attribute__((warn_unused_result)) int sw_process_metrics(sw_buf *out);

#endif
