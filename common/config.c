#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "cluster.h"
#include "log.h"
#include "shape.h"

enum kind { K_STR, K_INT, K_LONG, K_BOOL };

static const struct key {
    const char *section, *name;
    enum kind kind;
    size_t off, size;
    long min, max;
} keys[] = {
#define S(sec, key, field) {sec, key, K_STR, offsetof(sw_config, field), sizeof(((sw_config *)0)->field), 0, 0}
#define I(sec, key, field, lo, hi) {sec, key, K_INT, offsetof(sw_config, field), 0, lo, hi}
#define L(sec, key, field, lo, hi) {sec, key, K_LONG, offsetof(sw_config, field), 0, lo, hi}
#define B(sec, key, field) {sec, key, K_BOOL, offsetof(sw_config, field), 0, 0, 1}
    S("server", "listen", listen),
    I("server", "threads", threads, 1, 1024),
    L("server", "max_body_bytes", max_body_bytes, 64, 1L << 30),
    I("server", "max_records_per_request", max_records, 1, 1000000),
    I("server", "worker_nice", worker_nice, 0, 19),
    L("server", "max_queue_records", max_queue_records, 0, 1L << 40),
    I("server", "max_redis_memory_percent", max_redis_memory_percent, 0, 100),
    I("server", "idempotency_ttl_s", idempotency_ttl_s, 1, 30 * 86400),
    S("server", "tokens_file", tokens_file),
    S("server", "admin_listen", admin_listen),
    S("server", "tls_cert", tls_cert),
    S("server", "tls_key", tls_key),
    I("server", "max_header_bytes", max_header_bytes, 1024, 1 << 20),
    I("server", "max_string_bytes", max_string_bytes, 16, 1 << 30),
    I("server", "max_json_depth", max_json_depth, 1, 1000),
    I("server", "request_timeout_ms", request_timeout_ms, 100, 3600000),
    I("server", "idle_timeout_ms", idle_timeout_ms, 100, 3600000),
    I("server", "header_timeout_ms", header_timeout_ms, 100, 3600000),
    I("server", "max_connections", max_connections, 16, 1000000),
    I("server", "max_connections_per_address", max_per_address, 0, 1000000),
    L("server", "max_body_buffer_bytes", max_body_buffer_bytes, 0, 1L << 40),
    S("server", "trusted_proxies", trusted_proxies),
    S("server", "tls_ciphers", tls_ciphers),
    I("server", "shutdown_grace_ms", shutdown_grace_ms, 0, 50000),
    I("server", "max_waiting", max_waiting, 0, 1024),
    S("redis", "host", redis_host),
    I("redis", "port", redis_port, 1, 65535),
    S("redis", "prefix", prefix),
    I("redis", "status_ttl_s", status_ttl_s, 1, 365 * 86400),
    I("redis", "timeout_ms", redis_timeout_ms, 10, 60000),
    B("redis", "allow_eviction", allow_eviction),
    S("redis", "user", redis_user),
    S("redis", "password", redis_password),
    S("redis", "sentinels", sentinels),
    S("redis", "master_name", master_name),
    S("redis", "sentinel_password", sentinel_password),
    I("redis", "min_replica_acks", min_replica_acks, 0, 16),
    S("redis", "cluster_nodes", cluster_nodes),
    I("redis", "shards", shards, 0, SW_SHARDS_MAX),
    S("postgres", "conninfo", conninfo),
    I("postgres", "statement_timeout_ms", statement_timeout_ms, 0, 3600000),
    S("postgres", "password", pg_password),
    I("flusher", "batch_max_records", batch_max_records, 1, 1000000),
    L("flusher", "batch_max_bytes", batch_max_bytes, 1024, 1L << 30),
    I("flusher", "flush_interval_ms", flush_interval_ms, 1, 3600000),
    S("flusher", "id", flusher_id),
    I("flusher", "retry_max_ms", retry_max_ms, 10, 3600000),
    I("flusher", "ledger_retention_s", ledger_retention_s, 3600, 365 * 86400),
    I("flusher", "heartbeat_ttl_s", heartbeat_ttl_s, 1, 3600),
    S("flusher", "metrics_listen", flusher_metrics_listen),
    I("flusher", "max_deliveries", max_deliveries, 1, 1000),
    L("flusher", "dead_max_jobs", dead_max_jobs, 1, 100000000L),
    L("flusher", "dead_max_bytes", dead_max_bytes, 1024, 1L << 40),
    S("log", "level", log_level),
    B("log", "include_values", log_include_values),
#undef S
#undef I
#undef L
#undef B
};

static const char *const sink_keys[] = {"table", "mode", "key", "columns", "version_column",
                                        "deletes"};

int sw_config_key(int i, const char **section, const char **name)
{
    int nkeys = (int)(sizeof keys / sizeof keys[0]), nsink = (int)(sizeof sink_keys /
                                                                  sizeof sink_keys[0]);
    if (i < 0 || i >= nkeys + nsink)
        return -1;
    *section = i < nkeys ? keys[i].section : "sink.NAME";
    *name = i < nkeys ? keys[i].name : sink_keys[i - nkeys];
    return 0;
}

typedef struct parse_state {
    sw_config *cfg;
    const char *file;
    char reason[400];
    /* Column lists may continue on indented lines; we glue them here. */
    char **colspec;
} parse_state;

static int set_key(sw_config *cfg, const struct key *k, const char *value,
                   char *reason, size_t rlen)
{
    char *field = (char *)cfg + k->off;
    if (k->kind == K_STR) {
        if (strlen(value) >= k->size) {
            snprintf(reason, rlen, "[%s] %s is longer than %zu characters", k->section,
                     k->name, k->size - 1);
            return -1;
        }
        memcpy(field, value, strlen(value) + 1);
        return 0;
    }
    if (k->kind == K_BOOL) {
        int *b = (int *)(void *)field;
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "1") == 0)
            *b = 1;
        else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 || strcmp(value, "0") == 0)
            *b = 0;
        else {
            snprintf(reason, rlen, "[%s] %s = \"%s\": expected true or false", k->section,
                     k->name, value);
            return -1;
        }
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long v = strtol(value, &end, 10);
    if (errno != 0 || end == value || *end != '\0' || v < k->min || v > k->max) {
        snprintf(reason, rlen, "[%s] %s = \"%s\": expected a whole number from %ld to %ld",
                 k->section, k->name, value, k->min, k->max);
        return -1;
    }
    if (k->kind == K_INT)
        *(int *)(void *)field = (int)v;
    else
        *(long *)(void *)field = v;
    return 0;
}

static sw_sink *sink_get(sw_config *cfg, parse_state *st, const char *name)
{
    for (int i = 0; i < cfg->nsinks; i++) {
        if (strcmp(cfg->sinks[i].name, name) == 0)
            return &cfg->sinks[i];
    }
    sw_sink *s = realloc(cfg->sinks, (size_t)(cfg->nsinks + 1) * sizeof *s);
    char **cs = realloc(st->colspec, (size_t)(cfg->nsinks + 1) * sizeof *cs);
    if (s)
        cfg->sinks = s;
    if (cs)
        st->colspec = cs;
    if (s == NULL || cs == NULL)
        return NULL;
    s = &cfg->sinks[cfg->nsinks];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "%s", name);
    s->mode = SW_MODE_INSERT;
    s->deletes = -1;
    st->colspec[cfg->nsinks] = NULL;
    cfg->nsinks++;
    return s;
}

static int set_sink_key(parse_state *st, const char *sname, const char *name,
                        const char *value)
{
    sw_config *cfg = st->cfg;
    if (!sw_sink_ident_ok(sname, strlen(sname))) {
        snprintf(st->reason, sizeof st->reason,
                 "sink name \"%s\" must match [a-z_][a-z0-9_]* (it is used in URLs)", sname);
        return -1;
    }
    sw_sink *s = sink_get(cfg, st, sname);
    if (s == NULL) {
        snprintf(st->reason, sizeof st->reason, "out of memory");
        return -1;
    }
    if (strcmp(name, "table") == 0) {
        const char *dot = strchr(value, '.');
        int ok = dot ? sw_sink_ident_ok(value, (size_t)(dot - value)) &&
                           sw_sink_ident_ok(dot + 1, strlen(dot + 1))
                     : sw_sink_ident_ok(value, strlen(value));
        if (!ok) {
            snprintf(st->reason, sizeof st->reason,
                     "[sink.%s] table = \"%s\": expected [schema.]table in lower case", sname,
                     value);
            return -1;
        }
        snprintf(s->table, sizeof s->table, "%s", value);
    } else if (strcmp(name, "mode") == 0) {
        if (sw_sink_parse_mode(value, &s->mode) != 0) {
            snprintf(st->reason, sizeof st->reason,
                     "[sink.%s] mode = \"%s\": expected insert, upsert, ignore or merge", sname,
                     value);
            return -1;
        }
    } else if (strcmp(name, "key") == 0) {
        if (strlen(value) >= sizeof s->key_spec) {
            snprintf(st->reason, sizeof st->reason, "[sink.%s] key is too long", sname);
            return -1;
        }
        snprintf(s->key_spec, sizeof s->key_spec, "%s", value);
    } else if (strcmp(name, "version_column") == 0) {
        if (!sw_sink_ident_ok(value, strlen(value)) || strlen(value) > SW_NAME_MAX) {
            snprintf(st->reason, sizeof st->reason,
                     "[sink.%s] version_column = \"%s\": expected a lower-case column name",
                     sname, value);
            return -1;
        }
        snprintf(s->version_column, sizeof s->version_column, "%s", value);
    } else if (strcmp(name, "deletes") == 0) {
        if (strcmp(value, "on") != 0 && strcmp(value, "off") != 0) {
            snprintf(st->reason, sizeof st->reason,
                     "[sink.%s] deletes = \"%s\": expected on or off", sname, value);
            return -1;
        }
        s->deletes = strcmp(value, "on") == 0;
    } else if (strcmp(name, "columns") == 0) {
        char **spec = &st->colspec[s - cfg->sinks];
        size_t old = *spec ? strlen(*spec) : 0;
        char *n = realloc(*spec, old + strlen(value) + 2);
        if (n == NULL) {
            snprintf(st->reason, sizeof st->reason, "out of memory");
            return -1;
        }
        /* A continuation line of a multi-line value joins with a comma
         * when the previous part did not end with one. */
        if (old > 0 && n[old - 1] != ',' && value[0] != ',')
            n[old++] = ',';
        strcpy(n + old, value);
        *spec = n;
    } else {
        snprintf(st->reason, sizeof st->reason,
                 "unknown key \"%s\" in [sink.%s] (expected table, mode, key, columns, "
                 "version_column, deletes)", name,
                 sname);
        return -1;
    }
    return 0;
}

static int apply(parse_state *st, const char *section, const char *name, const char *value)
{
    if (strncmp(section, "sink.", 5) == 0)
        return set_sink_key(st, section + 5, name, value);
    int known_section = 0;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        if (strcmp(keys[i].section, section) != 0)
            continue;
        known_section = 1;
        if (strcmp(keys[i].name, name) == 0)
            return set_key(st->cfg, &keys[i], value, st->reason, sizeof st->reason);
    }
    if (!known_section)
        snprintf(st->reason, sizeof st->reason,
                 "unknown section [%s] (expected server, redis, postgres, flusher, log or "
                 "sink.NAME)", section);
    else
        snprintf(st->reason, sizeof st->reason, "unknown key \"%s\" in [%s]", name, section);
    return -1;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
    parse_state *st = user;
    if (st->reason[0] != '\0')
        return 1; /* report only the first error */
    return apply(st, section, name, value) == 0;
}

static void defaults(sw_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    strcpy(cfg->listen, "127.0.0.1:8080");
    cfg->threads = 16;
    cfg->max_body_bytes = 1048576;
    cfg->max_records = 10000;
    cfg->worker_nice = 10;
    cfg->max_queue_records = 5000000;
    cfg->max_redis_memory_percent = 90;
    cfg->shutdown_grace_ms = 5000;
    cfg->idempotency_ttl_s = 86400;
    cfg->max_header_bytes = 16384;
    cfg->max_string_bytes = 65536;
    cfg->max_json_depth = 32;
    cfg->request_timeout_ms = 10000;
    cfg->idle_timeout_ms = 30000;
    cfg->header_timeout_ms = 5000;
    cfg->max_connections = 4096;
    cfg->max_per_address = 256;
    strcpy(cfg->redis_host, "127.0.0.1");
    cfg->redis_port = 6379;
    strcpy(cfg->prefix, "spillway");
    cfg->status_ttl_s = 43200;
    cfg->redis_timeout_ms = 1000;
    strcpy(cfg->conninfo, "host=127.0.0.1 dbname=spillway");
    cfg->statement_timeout_ms = 60000;
    cfg->batch_max_records = 5000;
    cfg->batch_max_bytes = 16L << 20;
    cfg->flush_interval_ms = 200;
    cfg->retry_max_ms = 30000;
    cfg->ledger_retention_s = 7 * 86400;
    cfg->heartbeat_ttl_s = 10;
    cfg->max_deliveries = 5;
    cfg->dead_max_jobs = 100000;
    cfg->dead_max_bytes = 256L << 20;
    strcpy(cfg->log_level, "info");
    if (gethostname(cfg->flusher_id, sizeof cfg->flusher_id) != 0)
        strcpy(cfg->flusher_id, "flusher");
    cfg->flusher_id[sizeof cfg->flusher_id - 1] = '\0';
}

static void env_name(char *out, size_t len, const char *section, const char *key)
{
    snprintf(out, len, "SPILLWAY_%s_%s", section, key);
    for (char *p = out; *p; p++)
        *p = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
}

static int env_overrides(parse_state *st)
{
    char name[160];
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        env_name(name, sizeof name, keys[i].section, keys[i].name);
        const char *v = getenv(name);
        if (v && set_key(st->cfg, &keys[i], v, st->reason, sizeof st->reason) != 0)
            return -1;
    }
    for (int s = 0; s < st->cfg->nsinks; s++) {
        char section[80];
        snprintf(section, sizeof section, "sink.%s", st->cfg->sinks[s].name);
        for (size_t k = 0; k < sizeof sink_keys / sizeof sink_keys[0]; k++) {
            env_name(name, sizeof name, section, sink_keys[k]);
            const char *v = getenv(name);
            if (v == NULL)
                continue;
            if (strcmp(sink_keys[k], "columns") == 0) {
                free(st->colspec[s]);
                st->colspec[s] = NULL;
            }
            if (set_sink_key(st, st->cfg->sinks[s].name, sink_keys[k], v) != 0)
                return -1;
        }
    }
    return 0;
}

static int finish(parse_state *st)
{
    sw_config *cfg = st->cfg;
    char why[300];
    if (sw_log_set_level(cfg->log_level) != 0) {
        snprintf(st->reason, sizeof st->reason,
                 "[log] level = \"%s\": expected debug, info, warn or error", cfg->log_level);
        return -1;
    }
    if ((cfg->tls_cert[0] == '\0') != (cfg->tls_key[0] == '\0')) {
        snprintf(st->reason, sizeof st->reason,
                 "[server] tls_cert and tls_key go together: set both, or neither");
        return -1;
    }
    /* Waiting requests hold worker threads: half of them unless told, and
     * never all. */
    if (cfg->max_waiting == 0)
        cfg->max_waiting = cfg->threads / 2;
    if (cfg->max_waiting >= cfg->threads) {
        snprintf(st->reason, sizeof st->reason, "[server] max_waiting (%d) must be below "
                 "threads (%d): waiting requests hold worker threads", cfg->max_waiting,
                 cfg->threads);
        return -1;
    }
    if (cfg->max_body_buffer_bytes != 0 && cfg->max_body_buffer_bytes < 2 * cfg->max_body_bytes) {
        snprintf(st->reason, sizeof st->reason, "[server] max_body_buffer_bytes must hold at "
                 "least two bodies of max_body_bytes (%ld), or be 0", cfg->max_body_bytes);
        return -1;
    }
    if (cfg->redis_user[0] != '\0' && cfg->redis_password[0] == '\0') {
        snprintf(st->reason, sizeof st->reason,
                 "[redis] user needs a password (SPILLWAY_REDIS_PASSWORD)");
        return -1;
    }
    if (cfg->prefix[0] == '\0') {
        snprintf(st->reason, sizeof st->reason, "[redis] prefix must not be empty");
        return -1;
    }
    if (cfg->shards > 0 && strlen(cfg->prefix) > SW_SHARD_PREFIX_MAX) {
        snprintf(st->reason, sizeof st->reason, "[redis] prefix is too long for shards: at "
                 "most %d bytes, as each shard's keys go under {<prefix>:<shard>}",
                 SW_SHARD_PREFIX_MAX);
        return -1;
    }
    if (cfg->sentinels[0] != '\0') {
        sw_endpoint e[SW_ENDPOINTS_MAX];
        if (sw_endpoints_parse(cfg->sentinels, e, SW_ENDPOINTS_MAX, why, sizeof why) < 0) {
            snprintf(st->reason, sizeof st->reason, "[redis] sentinels: %s", why);
            return -1;
        }
        if (cfg->master_name[0] == '\0') {
            snprintf(st->reason, sizeof st->reason, "[redis] sentinels needs master_name: the "
                     "name the Sentinels monitor the master by (sentinel monitor <name> ...)");
            return -1;
        }
    } else if (cfg->master_name[0] != '\0' || cfg->sentinel_password[0] != '\0') {
        snprintf(st->reason, sizeof st->reason, "[redis] %s needs sentinels "
                 "(host:port,... of the Sentinels)",
                 cfg->master_name[0] ? "master_name" : "sentinel_password");
        return -1;
    }
    if (cfg->cluster_nodes[0] != '\0') {
        sw_endpoint e[SW_ENDPOINTS_MAX];
        if (sw_endpoints_parse(cfg->cluster_nodes, e, SW_ENDPOINTS_MAX, why, sizeof why) < 0) {
            snprintf(st->reason, sizeof st->reason, "[redis] cluster_nodes: %s", why);
            return -1;
        }
        if (cfg->sentinels[0] != '\0') {
            snprintf(st->reason, sizeof st->reason, "[redis] cluster_nodes and sentinels "
                     "exclude each other: a cluster fails over by itself");
            return -1;
        }
        if (!sw_cluster_has_tag(cfg->prefix)) {
            snprintf(st->reason, sizeof st->reason, "[redis] prefix \"%s\" has no hash tag: "
                     "with cluster_nodes every key must share one slot, so write it in braces, "
                     "e.g. prefix = {%s}", cfg->prefix, cfg->prefix);
            return -1;
        }
    }
    for (int i = 0; i < cfg->nsinks; i++) {
        sw_sink *s = &cfg->sinks[i];
        if (s->table[0] == '\0') {
            snprintf(st->reason, sizeof st->reason, "[sink.%s] has no table", s->name);
            return -1;
        }
        if (st->colspec[i] == NULL) {
            snprintf(st->reason, sizeof st->reason, "[sink.%s] has no columns", s->name);
            return -1;
        }
        if (sw_sink_parse_columns(s, st->colspec[i], why, sizeof why) != 0 ||
            sw_sink_resolve_key(s, why, sizeof why) != 0) {
            snprintf(st->reason, sizeof st->reason, "[sink.%s] %s", s->name, why);
            return -1;
        }
        s->shape = sw_shape_fingerprint(s);
    }
    return 0;
}

/* inih reads lines of at most 199 characters and silently splits longer
 * ones, and keeps at most 49 characters of a section or key name,
 * silently cutting the rest (a sink would get another name). So those are
 * refused, with a clear reason, before inih sees the text. */
#define INIH_NAME_MAX 49

static int check_lines(const char *text, int *line, char *why, size_t len)
{
    int ln = 1;
    for (const char *p = text; *p; ln++) {
        const char *eol = strchr(p, '\n');
        size_t n = eol ? (size_t)(eol - p) : strlen(p);
        const char *s = p;
        while (s < p + n && (*s == ' ' || *s == '\t'))
            s++;
        size_t name = 0;
        if (s < p + n && *s == '[') {
            const char *close = memchr(s, ']', (size_t)(p + n - s));
            name = close ? (size_t)(close - s - 1) : 0;
        } else if (s == p && n > 0 && *s != ';' && *s != '#' && *s != '\r') {
            /* (An indented line continues the value above it.) */
            name = 0;
            while (name < n && s[name] != '=' && s[name] != ':')
                name++;
            if (name == n)
                name = 0;       /* no key here: inih will say so */
            while (name > 0 && (s[name - 1] == ' ' || s[name - 1] == '\t'))
                name--;
        }
        *line = ln;
        if (n > 198) {
            snprintf(why, len, "line longer than 198 characters; continue a long value on an "
                               "indented next line");
            return -1;
        }
        if (name > INIH_NAME_MAX) {
            snprintf(why, len, "%s name longer than %d characters", *s == '[' ? "section" : "key",
                     INIH_NAME_MAX);
            return -1;
        }
        p += n + (eol != NULL);
    }
    return 0;
}

static int load(sw_config *cfg, const char *name, const char *text)
{
    parse_state st = {.cfg = cfg, .file = name};
    int line = 0, rc = -1;
    defaults(cfg);
    if (check_lines(text, &line, st.reason, sizeof st.reason) != 0)
        goto out;
    line = 0;
    line = ini_parse_string(text, ini_cb, &st);
    if (line != 0) {
        if (st.reason[0] == '\0')
            snprintf(st.reason, sizeof st.reason, "syntax error (expected key = value or [section])");
        goto out;
    }
    if (env_overrides(&st) != 0 || finish(&st) != 0)
        goto out;
    rc = 0;
out:
    for (int i = 0; i < cfg->nsinks; i++)
        free(st.colspec ? st.colspec[i] : NULL);
    free(st.colspec);
    if (rc != 0) {
        cfg->err = 1;
        if (line > 0)
            snprintf(cfg->errstr, sizeof cfg->errstr, "%s:%d: %s", name, line, st.reason);
        else
            snprintf(cfg->errstr, sizeof cfg->errstr, "%s: %s", name, st.reason);
    }
    return rc;
}

sw_redis_opts sw_config_redis(const sw_config *cfg)
{
    sw_redis_opts o = {cfg->redis_host, cfg->redis_port, cfg->redis_timeout_ms, cfg->prefix,
                       cfg->redis_user, cfg->redis_password, cfg->sentinels, cfg->master_name,
                       cfg->sentinel_password, cfg->min_replica_acks, cfg->cluster_nodes};
    return o;
}

int sw_config_load_string(sw_config *cfg, const char *name, const char *text)
{
    return load(cfg, name, text);
}

int sw_config_load(sw_config *cfg, const char *path)
{
    sw_buf text = SW_BUF_INIT;
    int rc = -1;
    if (sw_buf_read_file(&text, path, 1 << 20) != 0) {
        defaults(cfg);
        cfg->err = 1;
        if (errno == EFBIG)
            snprintf(cfg->errstr, sizeof cfg->errstr, "%s: larger than 1 MiB", path);
        else
            snprintf(cfg->errstr, sizeof cfg->errstr, "%s: cannot open: %s", path, strerror(errno));
        goto out;
    }
    int nul = sw_buf_nul_line(&text);
    if (nul) {
        defaults(cfg);
        cfg->err = 1;
        snprintf(cfg->errstr, sizeof cfg->errstr, "%s:%d: holds a NUL byte; the file must be "
                 "text", path, nul);
        goto out;
    }
    rc = load(cfg, path, text.data);
out:
    sw_buf_free(&text);
    return rc;
}

const sw_sink *sw_config_sink(const sw_config *cfg, const char *name, size_t n)
{
    for (int i = 0; i < cfg->nsinks; i++) {
        if (strncmp(cfg->sinks[i].name, name, n) == 0 && cfg->sinks[i].name[n] == '\0')
            return &cfg->sinks[i];
    }
    return NULL;
}

void sw_config_free(sw_config *cfg)
{
    if (cfg == NULL)
        return;
    for (int i = 0; i < cfg->nsinks; i++)
        sw_sink_clear(&cfg->sinks[i]);
    free(cfg->sinks);
    cfg->sinks = NULL;
    cfg->nsinks = 0;
}
