#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "config.h"
#include "endpoint.h"

static const char good[] =
    "[server]\n"
    "listen = 127.0.0.1:9000\n"
    "threads = 4\n"
    "[redis]\n"
    "prefix = sw   ; inline comment\n"
    "[flusher]\n"
    "id = f-7\n"
    "[sink.orders]\n"
    "table = public.orders\n"
    "mode = upsert\n"
    "key = id\n"
    "columns = id bigint not null, customer text not null, total numeric,\n"
    "  tags jsonb, placed_at timestamptz, code varchar(12)\n";

static void test_good_file(void **state)
{
    (void)state;
    sw_config cfg;
    assert_int_equal(sw_config_load_string(&cfg, "t.ini", good), 0);
    assert_string_equal(cfg.listen, "127.0.0.1:9000");
    assert_int_equal(cfg.threads, 4);
    assert_string_equal(cfg.prefix, "sw");
    assert_string_equal(cfg.flusher_id, "f-7");
    assert_int_equal(cfg.max_body_bytes, 1048576);   /* default kept */
    assert_int_equal(cfg.batch_max_records, 5000);
    assert_int_equal(cfg.nsinks, 1);
    const sw_sink *s = sw_config_sink(&cfg, "orders", 6);
    assert_non_null(s);
    assert_int_equal(s->mode, SW_MODE_UPSERT);
    assert_int_equal(s->ncolumns, 6);   /* the continuation line joined */
    assert_string_equal(s->columns[0].name, "id");
    assert_int_equal(s->columns[0].type, SW_COL_BIGINT);
    assert_true(s->columns[0].not_null);
    assert_true(s->columns[0].is_key);
    assert_false(s->columns[2].not_null);
    assert_int_equal(s->columns[4].type, SW_COL_TIMESTAMPTZ);
    assert_int_equal(s->columns[5].type, SW_COL_VARCHAR);
    assert_int_equal(s->columns[5].maxlen, 12);
    assert_null(sw_config_sink(&cfg, "order", 5));
    sw_config_free(&cfg);
}

static void test_env_override(void **state)
{
    (void)state;
    sw_config cfg;
    setenv("SPILLWAY_SERVER_THREADS", "9", 1);
    setenv("SPILLWAY_SINK_ORDERS_MODE", "ignore", 1);
    assert_int_equal(sw_config_load_string(&cfg, "t.ini", good), 0);
    assert_int_equal(cfg.threads, 9);
    assert_int_equal(cfg.sinks[0].mode, SW_MODE_IGNORE);
    sw_config_free(&cfg);
    setenv("SPILLWAY_SERVER_THREADS", "many", 1);
    assert_int_equal(sw_config_load_string(&cfg, "t.ini", good), -1);
    assert_non_null(strstr(cfg.errstr, "[server] threads = \"many\""));
    sw_config_free(&cfg);
    unsetenv("SPILLWAY_SERVER_THREADS");
    unsetenv("SPILLWAY_SINK_ORDERS_MODE");
}

/* Each bad file fails with the line and a reason a person can act on. */
static void expect_error(const char *text, const char *want)
{
    sw_config cfg;
    assert_int_equal(sw_config_load_string(&cfg, "bad.ini", text), -1);
    assert_int_equal(cfg.err, 1);
    if (strstr(cfg.errstr, want) == NULL)
        fail_msg("error \"%s\" lacks \"%s\"", cfg.errstr, want);
    sw_config_free(&cfg);
}

static void test_errors(void **state)
{
    (void)state;
    expect_error("[server]\nlisten = x\nbogus = 1\n", "bad.ini:3: unknown key \"bogus\" in [server]");
    expect_error("[nosuch]\na = 1\n", "bad.ini:2: unknown section [nosuch]");
    expect_error("[server]\nthreads = 0\n", "bad.ini:2: [server] threads = \"0\": expected a whole number from 1 to 1024");
    expect_error("[sink.a]\ntable = t\n", "[sink.a] has no columns");
    expect_error("[sink.a]\ncolumns = id bigint\n", "[sink.a] has no table");
    expect_error("[sink.a]\ntable = t\ncolumns = id biggint\n", "unknown type \"biggint\"");
    expect_error("[sink.a]\ntable = t\ncolumns = id bigint, id text\n", "listed twice");
    expect_error("[sink.a]\ntable = t\nmode = upsert\ncolumns = id bigint not null\n",
                 "mode upsert needs a key");
    expect_error("[sink.a]\ntable = t\nmode = upsert\nkey = nope\ncolumns = id bigint\n",
                 "key column \"nope\" is not in columns");
    expect_error("[sink.a]\ntable = t\nmode = mix\n", "expected insert, upsert, ignore or merge");
    expect_error("[sink.a]\ntable = t\nmode = insert\nversion_column = v\ncolumns = id integer\n",
                 "version_column needs mode upsert or merge");
    expect_error("[sink.a]\ntable = t\nmode = merge\nkey = id\nversion_column = id\n"
                 "columns = id integer not null\n", "must not be listed in columns");
    expect_error("[sink.a]\ntable = t\ncolumns = id integer, sw_mask text\n",
                 "names starting with sw_ are Spillway's own");
    expect_error("[sink.a]\ntable = t\ndeletes = on\ncolumns = id integer\n",
                 "deletes = on needs a key");
    expect_error("[sink.a]\ntable = t\ndeletes = yes\ncolumns = id integer\n",
                 "expected on or off");
    expect_error("[sink.a]\ntable = t\nmode = merge\nkey = id\ncolumns = id integer\n",
                 "must be declared not null");
    expect_error("[sink.A-b]\ntable = t\n", "sink name \"A-b\" must match");
    expect_error("[sink.a]\ntable = t\ncolumns = id varchar(0)\n", "bad length");
    expect_error("[log]\nlevel = loud\n", "expected debug, info, warn or error");
    char long_line[400];
    memset(long_line, 'x', sizeof long_line);
    memcpy(long_line, "[server]\nlisten = ", 18);
    long_line[sizeof long_line - 1] = '\0';
    expect_error(long_line, "line longer than 198 characters");
    /* inih keeps 49 characters of a name and drops the rest unseen: a
     * sink would be served under a shorter name. */
    expect_error("[server]\nthreads = 2\n[sink.a_sink_whose_name_is_longer_than_inih_keeps_x]\n"
                 "table = t\n", "bad.ini:3: section name longer than 49 characters");
    expect_error("[server]\na_key_whose_name_is_longer_than_inih_keeps_it_xyzzy = 1\n",
                 "bad.ini:2: key name longer than 49 characters");
    /* CRLF line ends, blank CRLF lines and long comments are fine. */
    sw_config crlf;
    assert_int_equal(sw_config_load_string(&crlf, "crlf.ini",
                     "[server]\r\nthreads = 3\r\n\r\n; a comment that is longer than forty-nine "
                     "characters, with an = sign\r\n[redis]\r\nport = 7000\r\n"), 0);
    assert_int_equal(crlf.threads, 3);
    assert_int_equal(crlf.redis_port, 7000);
    sw_config_free(&crlf);
    /* Sentinel: a list of host:port, and the master's name with it. */
    expect_error("[redis]\nsentinels = 127.0.0.1:26379\n", "sentinels needs master_name");
    expect_error("[redis]\nmaster_name = m\n", "master_name needs sentinels");
    expect_error("[redis]\nsentinels = a:1,,b:2\nmaster_name = m\n", "an empty entry");
    expect_error("[redis]\nsentinels = a\nmaster_name = m\n", "'a' is not host:port");
    expect_error("[redis]\nsentinels = a:0\nmaster_name = m\n", "port must be 1..65535");
    expect_error("[redis]\nsentinels = a:65536\nmaster_name = m\n", "port must be 1..65535");
    expect_error("[redis]\nsentinels = ::1:5\nmaster_name = m\n", "is not host:port");
    expect_error("[redis]\nmin_replica_acks = 17\n", "from 0 to 16");
    expect_error("[redis]\nsentinel_password = x\n", "sentinel_password needs sentinels");
    /* Cluster: one slot, so the prefix needs a hash tag. */
    expect_error("[redis]\ncluster_nodes = a:7000\n", "prefix \"spillway\" has no hash tag");
    expect_error("[redis]\ncluster_nodes = a:7000\nprefix = sp{}\n", "has no hash tag");
    expect_error("[redis]\ncluster_nodes = a:7000,\nprefix = {sp}\n", "cluster_nodes: an empty");
    expect_error("[redis]\ncluster_nodes = a:1\nprefix = {sp}\nsentinels = b:2\nmaster_name = m\n",
                 "exclude each other");
    sw_config cl;
    assert_int_equal(sw_config_load_string(&cl, "c.ini", "[redis]\ncluster_nodes = a:1, b:2\n"
                                           "prefix = {sp}\n"), 0);
    assert_int_equal(cl.shards, 0);
    sw_config_free(&cl);
    /* Shards: 0 (one queue) to 64, under a prefix with room for "{p:63}". */
    expect_error("[redis]\nshards = 65\n", "from 0 to 64");
    expect_error("[redis]\nshards = -1\n", "from 0 to 64");
    expect_error("[redis]\nshards = 4\nprefix = "
                 "a123456789b123456789c123456789d123456789e123456789f12345678\n",
                 "prefix is too long for shards");
    assert_int_equal(sw_config_load_string(&cl, "c.ini", "[redis]\nshards = 64\nprefix = "
                                           "a123456789b123456789c123456789d123456789e123456789"
                                           "f1234567\n"), 0);
    assert_int_equal(cl.shards, 64);
    sw_config_free(&cl);
    sw_config sen;
    assert_int_equal(sw_config_load_string(&sen, "s.ini", "[redis]\nsentinels = a:1, [::1]:2 "
                                           ",b.example:26379\nmaster_name = m\n"
                                           "min_replica_acks = 1\n"), 0);
    sw_endpoint e[SW_ENDPOINTS_MAX];
    char why[200];
    assert_int_equal(sw_endpoints_parse(sen.sentinels, e, SW_ENDPOINTS_MAX, why, sizeof why), 3);
    assert_string_equal(e[0].host, "a");
    assert_int_equal(e[0].port, 1);
    assert_string_equal(e[1].host, "::1");
    assert_int_equal(e[1].port, 2);
    assert_string_equal(e[2].host, "b.example");
    assert_int_equal(e[2].port, 26379);
    assert_int_equal(sw_endpoints_parse("a:1,b:2,c:3", e, 2, why, sizeof why), -1);
    assert_non_null(strstr(why, "more than 2"));
    sw_redis_opts ro = sw_config_redis(&sen);
    assert_string_equal(ro.master_name, "m");
    assert_int_equal(ro.min_replica_acks, 1);
    sw_config_free(&sen);
    /* 49 characters is fine (and an unknown key is still named). */
    expect_error("[server]\na_key_whose_name_is_as_long_as_inih_keeps_it_xy12 = 1\n",
                 "unknown key \"a_key_whose_name_is_as_long_as_inih_keeps_it_xy12\"");
}

static void test_unreadable(void **state)
{
    (void)state;
    sw_config cfg;
    assert_int_equal(sw_config_load(&cfg, "/nonexistent/spillway.ini"), -1);
    assert_non_null(strstr(cfg.errstr, "/nonexistent/spillway.ini: cannot open"));
    sw_config_free(&cfg);

    /* A file read in full loads; one byte over 1 MiB is refused. */
    char path[] = "/tmp/sw-config-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(good, f);
    fflush(f);
    assert_int_equal(sw_config_load(&cfg, path), 0);
    assert_string_equal(cfg.listen, "127.0.0.1:9000");
    sw_config_free(&cfg);
    for (long i = (long)strlen(good); i <= (1L << 20); i++)
        fputc(';', f);
    fclose(f);
    assert_int_equal(sw_config_load(&cfg, path), -1);
    assert_non_null(strstr(cfg.errstr, ": larger than 1 MiB"));
    sw_config_free(&cfg);
    /* A NUL byte would end the file early for inih, silently: refused,
     * with its line. */
    f = fopen(path, "w");
    fputs("[server]\nlisten = 127.0.0.1:9000\n", f);
    fputc('\0', f);
    fputs("\n[sink.x]\n", f);
    fclose(f);
    assert_int_equal(sw_config_load(&cfg, path), -1);
    if (strstr(cfg.errstr, ":3: holds a NUL byte") == NULL)
        fail_msg("%s", cfg.errstr);
    sw_config_free(&cfg);
    unlink(path);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_file),
        cmocka_unit_test(test_env_override),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_unreadable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
