/* Sink shapes: their text, fingerprint, and which type changes map. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>

#include "shape.h"

static void parse(sw_sink *s, const char *cols)
{
    char err[256];
    memset(s, 0, sizeof *s);
    snprintf(s->name, sizeof s->name, "t");
    assert_int_equal(sw_sink_parse_columns(s, cols, err, sizeof err), 0);
}

static void test_describe_round_trips(void **state)
{
    (void)state;
    sw_sink s, again;
    sw_buf text = SW_BUF_INIT;
    parse(&s, "id bigint not null, name varchar(20), at timestamptz, d double precision");
    assert_int_equal(sw_shape_describe(&s, &text), 0);
    assert_string_equal(text.data, "id bigint,name varchar(20),at timestamptz,d double precision");
    parse(&again, text.data);
    assert_true(sw_shape_fingerprint(&again) == sw_shape_fingerprint(&s));
    /* Not null is not part of the shape; order and types are. */
    sw_sink other;
    parse(&other, "name varchar(20), id bigint, at timestamptz, d double precision");
    assert_true(sw_shape_fingerprint(&other) != sw_shape_fingerprint(&s));
    sw_sink_clear(&other);
    parse(&other, "id integer, name varchar(20), at timestamptz, d double precision");
    assert_true(sw_shape_fingerprint(&other) != sw_shape_fingerprint(&s));
    sw_sink_clear(&s);
    sw_sink_clear(&again);
    sw_sink_clear(&other);
    sw_buf_free(&text);
}

static int safe(const char *from, const char *to)
{
    sw_sink a, b;
    char spec[96];
    snprintf(spec, sizeof spec, "c %s", from);
    parse(&a, spec);
    snprintf(spec, sizeof spec, "c %s", to);
    parse(&b, spec);
    int r = sw_shape_type_safe(&a.columns[0], &b.columns[0]);
    sw_sink_clear(&a);
    sw_sink_clear(&b);
    return r;
}

static void test_type_safety(void **state)
{
    (void)state;
    assert_true(safe("smallint", "integer"));
    assert_true(safe("integer", "bigint"));
    assert_true(safe("bigint", "numeric"));
    assert_true(safe("real", "double precision"));
    assert_true(safe("varchar(5)", "varchar(9)"));
    assert_true(safe("varchar(5)", "text"));
    assert_true(safe("json", "jsonb"));
    assert_true(safe("jsonb", "json"));
    assert_true(safe("uuid", "uuid"));
    assert_false(safe("bigint", "integer"));
    assert_false(safe("varchar(9)", "varchar(5)"));
    assert_false(safe("text", "varchar(5)"));
    assert_false(safe("integer", "text"));
    assert_false(safe("timestamp", "timestamptz"));
    assert_false(safe("double precision", "real"));
    assert_false(safe("numeric", "bigint"));
}

static void test_map_by_name(void **state)
{
    (void)state;
    sw_sink now;
    sw_shape_map m;
    parse(&now, "b text, a bigint, c integer");
    sw_shape_map_build(&m, 42, "a integer,b varchar(3),gone jsonb", &now);
    assert_true(m.usable);
    assert_int_equal(m.ncolumns_old, 3);
    assert_int_equal(m.from[0], 1);
    assert_int_equal(m.from[1], 0);
    assert_int_equal(m.from[2], -1);
    assert_int_equal(m.ngone, 1);
    assert_string_equal(m.gone_name[0], "gone");
    sw_value old[3] = {{.kind = SW_V_INT, .i = 9}, {.kind = SW_V_STR, .s = "abc", .n = 3},
                       {.kind = SW_V_NULL}};
    sw_value out[3];
    sw_shape_map_apply(&m, &now, old, out);
    assert_int_equal(out[0].kind, SW_V_STR);
    assert_int_equal(out[1].i, 9);
    assert_int_equal(out[2].kind, SW_V_NULL);
    sw_shape_map_build(&m, 43, "a text,b text", &now);
    assert_false(m.usable);
    assert_non_null(strstr(m.reason, "column a was text and is now bigint"));
    sw_shape_map_build(&m, 44, "a bogus", &now);
    assert_false(m.usable);
    assert_non_null(strstr(m.reason, "cannot be read"));
    sw_sink_clear(&now);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_describe_round_trips),
        cmocka_unit_test(test_type_safety),
        cmocka_unit_test(test_map_by_name),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
