/* Every key the config parser knows is in deploy/spillway.ini.example
 * (set or commented out, in its section) and in the README's table
 * ("`[section] key`", or a row naming several: "`[server] tls_cert`,
 * `tls_key`"); and neither documents a key the parser does not know. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "buf.h"
#include "config.h"

#define MAXK 256

typedef struct keyset {
    char items[MAXK][96];   /* "section key" */
    int n;
} keyset;

static void add(keyset *k, const char *section, size_t sn, const char *name, size_t nn)
{
    char item[96];
    snprintf(item, sizeof item, "%.*s %.*s", (int)sn, section, (int)nn, name);
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->items[i], item) == 0)
            return;
    assert_true(k->n < MAXK);
    strcpy(k->items[k->n++], item);
}

static int has(const keyset *k, const char *item)
{
    for (int i = 0; i < k->n; i++)
        if (strcmp(k->items[i], item) == 0)
            return 1;
    return 0;
}

static void parser_keys(keyset *k)
{
    const char *sec, *name;
    for (int i = 0; sw_config_key(i, &sec, &name) == 0; i++)
        add(k, sec, strlen(sec), name, strlen(name));
}

static char *slurp(const char *path)
{
    sw_buf b = SW_BUF_INIT;
    assert_int_equal(sw_buf_read_file(&b, path, 1 << 20), 0);
    return b.data;
}

static int word(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
}

/* Keys set or commented out ("key =", "; key =", ";key =") per section;
 * sink sections count as "sink.NAME". */
static void example_keys(keyset *k, const char *text)
{
    char section[64] = "";
    for (const char *p = text; *p;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        if (p[0] == '[') {
            size_t n = strcspn(p + 1, "]");
            snprintf(section, sizeof section, "%.*s", (int)n, p + 1);
            if (strncmp(section, "sink.", 5) == 0)
                strcpy(section, "sink.NAME");
        } else {
            const char *q = p;
            if (*q == ';')
                q++;
            while (*q == ' ')
                q++;
            size_t n = 0;
            while (q + n < p + len && word(q[n]))
                n++;
            const char *r = q + n;
            while (*r == ' ')
                r++;
            if (n > 0 && *r == '=' && section[0])
                add(k, section, strlen(section), q, n);
        }
        p += len + (nl != NULL);
    }
}

/* "| `[section] a`, `b` | ..." rows of the README. */
static void readme_keys(keyset *k, const char *text)
{
    for (const char *p = strstr(text, "\n| `["); p; p = strstr(p + 1, "\n| `[")) {
        const char *sec = p + 5;
        size_t sn = strcspn(sec, "]");
        const char *q = sec + sn + 2;
        const char *cell_end = strstr(q, " |");
        while (q && cell_end && q < cell_end) {
            size_t n = 0;
            while (word(q[n]))
                n++;
            if (n > 0)
                add(k, sec, sn, q, n);
            const char *next = strstr(q, ", `");
            q = next && next < cell_end ? next + 3 : NULL;
        }
    }
}

static void compare(const keyset *want, const keyset *got, const char *where)
{
    int bad = 0;
    for (int i = 0; i < want->n; i++)
        if (!has(got, want->items[i])) {
            fprintf(stderr, "%s does not document [%s\n", where, want->items[i]);
            bad++;
        }
    for (int i = 0; i < got->n; i++)
        if (!has(want, got->items[i])) {
            fprintf(stderr, "%s documents an unknown key [%s\n", where, got->items[i]);
            bad++;
        }
    assert_int_equal(bad, 0);
}

static void test_example(void **state)
{
    (void)state;
    keyset want = {0}, got = {0};
    parser_keys(&want);
    char *text = slurp(SW_SOURCE_DIR "/deploy/spillway.ini.example");
    example_keys(&got, text);
    free(text);
    compare(&want, &got, "deploy/spillway.ini.example");
}

static void test_readme(void **state)
{
    (void)state;
    keyset want = {0}, got = {0};
    parser_keys(&want);
    char *text = slurp(SW_SOURCE_DIR "/README.md");
    readme_keys(&got, text);
    free(text);
    compare(&want, &got, "README.md");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example),
        cmocka_unit_test(test_readme),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
