#ifndef SW_CTL_H_
#define SW_CTL_H_

#include <jansson.h>

#include "config.h"
#include "shards.h"

/* spillwayctl's commands beyond main's (server/ctl_*.c). Each returns the
 * exit code: 0 done, 1 failed (Redis, PostgreSQL, nothing found), 2 bad
 * usage, after saying why on stderr in one line that names the argument.
 * With `json`, a read command prints one JSON document on stdout instead
 * of text. Internal to server/. */
int sw_ctl_dead(const sw_config *cfg, int argc, char **argv, int json);
int sw_ctl_token(const sw_config *cfg, int argc, char **argv, int json);
int sw_ctl_sink(const sw_config *cfg, int argc, char **argv, int json);

/* Connections to every queue shard, each tried once; NULL after saying
 * why. */
sw_shards *sw_ctl_connect_redis(const sw_config *cfg);

/* Print `doc` (its reference is taken) as one line of JSON. 0, or 1 when
 * out of memory. */
int sw_ctl_print_json(json_t *doc);

/* "spillwayctl CMD: MESSAGE (see spillwayctl --help)" on stderr; 2. */
__attribute__((format(printf, 2, 3)))
int sw_ctl_usage(const char *cmd, const char *fmt, ...);

#endif
