#include "scripts.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"

/* From the build (CMakeLists.txt): each file under common/lua/. */
struct sw_lua_file {
    const char *name;
    const unsigned char *text;
    unsigned long len;
};
extern const struct sw_lua_file sw_lua_files[];
extern const unsigned long sw_lua_nfiles;

static const char *const names[SW_SCRIPT_COUNT] = {
    "enqueue", "stats", "claim", "resume", "finish", "release", "takeover", "heartbeat",
    "requeue", "drop", "convert", "overview", "status", "lease", "members", "purge", "ages", "live"};

static char *texts[SW_SCRIPT_COUNT];
static size_t lens[SW_SCRIPT_COUNT];
static pthread_once_t once = PTHREAD_ONCE_INIT;

static const struct sw_lua_file *file(const char *name)
{
    for (size_t i = 0; i < sw_lua_nfiles; i++) {
        if (strcmp(sw_lua_files[i].name, name) == 0)
            return &sw_lua_files[i];
    }
    return NULL;
}

/* The Lua side of envelope.h: 1-based positions of the fields the scripts
 * read, so that the offsets are written down once, in C. */
static int offsets(char *out, size_t n)
{
    return snprintf(out, n,
                    "local ENV_HEAD, ENV_COUNT, ENV_TIME = %d, %d, %d\n"
                    "local ENV_ID, ENV_ID_LEN = %d, %d\n"
                    "local ENV_SINK, ENV_SINK_V1, ENV_SINK_V3 = %d, %d, %d\n"
                    "local ENV_SEQ = %d\n",
                    SW_ENVELOPE_HEAD_LEN, SW_ENVELOPE_COUNT_OFFSET + 2,
                    SW_ENVELOPE_TIME_OFFSET + 2, SW_ENVELOPE_ID_OFFSET + 3,
                    SW_ENVELOPE_ID_LEN, SW_ENVELOPE_SINK_OFFSET + 1,
                    SW_ENVELOPE_SHAPE_OFFSET + 1, SW_ENVELOPE_SINK_OFFSET_V3 + 1,
                    SW_ENVELOPE_SEQ_OFFSET + 1);
}

static void compose(void)
{
    const struct sw_lua_file *prelude = file("prelude");
    char head[256];
    int hn = offsets(head, sizeof head);
    for (int s = 0; s < SW_SCRIPT_COUNT; s++) {
        const struct sw_lua_file *f = file(names[s]);
        if (f == NULL || prelude == NULL || hn <= 0 || (size_t)hn >= sizeof head)
            continue;
        const char *nl = memchr(f->text, '\n', f->len);
        size_t first = nl ? (size_t)(nl - (const char *)f->text) + 1 : f->len;
        size_t n = f->len + prelude->len + (size_t)hn;
        char *t = malloc(n + 1);
        if (t == NULL)
            continue;
        memcpy(t, f->text, first);
        memcpy(t + first, head, (size_t)hn);
        memcpy(t + first + hn, prelude->text, prelude->len);
        memcpy(t + first + hn + prelude->len, f->text + first, f->len - first);
        t[n] = '\0';
        texts[s] = t;
        lens[s] = n;
    }
}

const char *sw_script_text(enum sw_script s, size_t *len)
{
    pthread_once(&once, compose);
    *len = lens[s];
    return texts[s];
}

const char *sw_script_name(enum sw_script s)
{
    return names[s];
}
