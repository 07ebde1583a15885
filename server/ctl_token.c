/* spillwayctl token: make a token (printed once, only its hash kept), list
 * the tokens file's entries, revoke one by its id (the start of its
 * hash). The file's format is auth.h's; a name is a "# token: NAME"
 * comment line just above an entry. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "buf.h"
#include "ctl.h"

#define NAME_TAG "# token: "
#define ID_LEN 12            /* hex digits of the hash shown as a token's id */

/* One line of the file: [start, start + len), without its newline. */
typedef struct entry {
    const char *line;
    size_t len;
    const char *hash;        /* 64 hex digits, or NULL: not an entry */
    const char *sinks;
    size_t sinks_len;
    const char *name;        /* from the line above, or NULL */
    size_t name_len;
} entry;

/* Split `text` into lines; entries get their hash, sinks and name. The
 * server's parser has the last word on validity; this only reads. */
static entry *split(const char *text, size_t *n)
{
    size_t cap = 1;
    for (const char *q = text; *q; q++)
        cap += *q == '\n';
    entry *e = calloc(cap, sizeof *e);
    if (e == NULL)
        return NULL;
    size_t k = 0;
    for (const char *p = text; *p && k < cap;) {
        const char *nl = strchr(p, '\n');
        size_t len = nl ? (size_t)(nl - p) : strlen(p);
        entry *x = &e[k++];
        x->line = p;
        x->len = len;
        size_t s = strspn(p, " \t");
        size_t h = s < len ? strspn(p + s, "0123456789abcdefABCDEF") : 0;
        if (h == 64 && s + h < len && (p[s + h] == ' ' || p[s + h] == '\t')) {
            x->hash = p + s;
            x->sinks = p + s + h + strspn(p + s + h, " \t");
            x->sinks_len = len - (size_t)(x->sinks - p);
            while (x->sinks_len && strchr(" \t\r", x->sinks[x->sinks_len - 1]))
                x->sinks_len--;
            const entry *above = k >= 2 ? &e[k - 2] : NULL;
            if (above && above->len > strlen(NAME_TAG) &&
                strncmp(above->line, NAME_TAG, strlen(NAME_TAG)) == 0) {
                x->name = above->line + strlen(NAME_TAG);
                x->name_len = above->len - strlen(NAME_TAG);
            }
        }
        p += len + (nl != NULL);
    }
    *n = k;
    return e;
}

static int read_tokens(const sw_config *cfg, sw_buf *text, entry **e, size_t *n)
{
    if (cfg->tokens_file[0] == '\0') {
        fprintf(stderr, "spillwayctl: [server] tokens_file is not set: without it the API "
                        "takes no tokens\n");
        return -1;
    }
    if (sw_buf_read_file(text, cfg->tokens_file, 1 << 20) != 0) {
        fprintf(stderr, "spillwayctl: %s: %s\n", cfg->tokens_file, strerror(errno));
        return -1;
    }
    if ((*e = split(text->data, n)) == NULL) {
        fprintf(stderr, "spillwayctl: out of memory\n");
        return -1;
    }
    return 0;
}

static int cmd_new(const sw_config *cfg, const char *sinks, const char *name)
{
    char token[SW_AUTH_TOKEN_MAX], line[900], hash[SW_AUTH_HASH_HEX];
    /* Each sink named must be configured: say which is not, and what is. */
    {
        for (const char *p = sinks; *p;) {
            p += strspn(p, " \t");
            size_t n = strcspn(p, ",");
            while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
                n--;
            int special = (n == 6 && memcmp(p, "+admin", 6) == 0) || (n == 1 && *p == '*');
            if (n == 0 || (!special && sw_config_sink(cfg, p, n) == NULL)) {
                sw_buf have = SW_BUF_INIT;
                for (int k = 0; k < cfg->nsinks; k++)
                    (void)!sw_buf_printf(&have, "%s%s", k ? ", " : "", cfg->sinks[k].name);
                sw_ctl_usage("token", "--sinks names \"%.*s\", which is not a configured sink "
                             "(configured: %s; or '*' for all, '+admin' for the dashboard's "
                             "actions)", (int)n, p,
                             have.data ? have.data : "none");
                sw_buf_free(&have);
                return 2;
            }
            p += n + strspn(p + n, " \t");
            p += *p == ',';
        }
    }
    if (name && (strpbrk(name, "\r\n") || strlen(name) > 200))
        return sw_ctl_usage("token", "--name is one line of at most 200 bytes");
    if (sw_auth_token_new(token) != 0) {
        fprintf(stderr, "spillwayctl: no randomness from the kernel (getrandom)\n");
        return 1;
    }
    sw_auth_hash_hex(token, strlen(token), hash);
    snprintf(line, sizeof line, "%s%s%s%s %s\n", name ? NAME_TAG : "", name ? name : "",
             name ? "\n" : "", hash, sinks);
    /* The same parser as the server's, so a line printed here loads. */
    sw_auth check;
    int rc = sw_auth_parse(&check, "--sinks", line, cfg);
    if (rc != 0)
        fprintf(stderr, "spillwayctl: %s\n", check.errstr);
    sw_auth_free(&check);
    if (rc != 0)
        return 2;
    printf("%s\n%s", token, line);
    fprintf(stderr, "spillwayctl: line 1 is the token: give it to the client, it is not kept "
                    "anywhere.\nspillwayctl: the rest goes into [server] tokens_file%s%s; "
                    "reload the server (SIGHUP) to load it. Its id: %.*s\n",
            cfg->tokens_file[0] ? " = " : "", cfg->tokens_file, ID_LEN, hash);
    return 0;
}

static int cmd_list(const sw_config *cfg, int json)
{
    sw_buf text = SW_BUF_INIT;
    entry *e = NULL;
    size_t n = 0;
    int rc = 1;
    if (read_tokens(cfg, &text, &e, &n) != 0)
        goto out;
    json_t *all = json_array();
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        if (e[i].hash == NULL)
            continue;
        count++;
        if (json)
            json_array_append_new(all, json_pack("{s:s%,s:s%,s:s%}", "id", e[i].hash,
                                                 (size_t)ID_LEN, "sinks", e[i].sinks,
                                                 e[i].sinks_len, "name",
                                                 e[i].name ? e[i].name : "", e[i].name_len));
        else
            printf("%.*s  sinks=%.*s%s%.*s\n", ID_LEN, e[i].hash, (int)e[i].sinks_len,
                   e[i].sinks, e[i].name ? "  name=" : "", (int)e[i].name_len,
                   e[i].name ? e[i].name : "");
    }
    if (json)
        rc = sw_ctl_print_json(json_pack("{s:o}", "tokens", all));
    else {
        printf("%zu tokens\n", count);
        json_decref(all);
        rc = 0;
    }
out:
    free(e);
    sw_buf_free(&text);
    return rc;
}

/* Write `out` over the tokens file: a new file beside it with the old
 * one's owner and mode, synced, renamed over it, the directory synced, so
 * a reader sees the old file or the new, never half of one. Refused when
 * the file changed since it was read at `was` (someone else's edit would
 * be lost: run again). 0, or -1 after saying why. */
static int replace_file(const char *path, const struct stat *was, const sw_buf *out)
{
    char tmp[600], dir[600];
    struct stat now, mine;
    int fd = -1, err = 0;
    snprintf(tmp, sizeof tmp, "%s.revoke-XXXXXX", path);
    if (stat(path, &now) != 0 || now.st_ino != was->st_ino || now.st_size != was->st_size ||
        now.st_mtim.tv_sec != was->st_mtim.tv_sec || now.st_mtim.tv_nsec != was->st_mtim.tv_nsec) {
        fprintf(stderr, "spillwayctl: %s changed while it was being read; run again\n", path);
        return -1;
    }
    if ((fd = mkstemp(tmp)) < 0) {
        fprintf(stderr, "spillwayctl: cannot write beside %s: %s\n", path, strerror(errno));
        return -1;
    }
    /* The old file's owner (the server reads it as its own user) and mode. */
    if (fstat(fd, &mine) != 0 ||
        ((mine.st_uid != was->st_uid || mine.st_gid != was->st_gid) &&
         fchown(fd, was->st_uid, was->st_gid) != 0) ||
        fchmod(fd, was->st_mode & 07777) != 0)
        goto fail;
    for (size_t off = 0; off < out->len;) {
        ssize_t w = write(fd, out->data + off, out->len - off);
        if (w <= 0) {
            if (w == 0)
                errno = EIO;
            goto fail;
        }
        off += (size_t)w;
    }
    if (fsync(fd) != 0)
        goto fail;
    int c = close(fd);
    fd = -1;
    if (c != 0 || rename(tmp, path) != 0)
        goto fail;
    snprintf(dir, sizeof dir, "%s", path);
    char *slash = strrchr(dir, '/');
    if (slash)
        *(slash == dir ? slash + 1 : slash) = '\0';
    int dfd = open(slash ? dir : ".", O_RDONLY | O_DIRECTORY);
    if (dfd >= 0) {
        (void)!fsync(dfd);
        close(dfd);
    }
    return 0;
fail:
    err = errno;
    if (fd >= 0)
        close(fd);
    unlink(tmp);
    fprintf(stderr, "spillwayctl: cannot rewrite %s: %s\n", path, strerror(err));
    return -1;
}

/* Take out the entry whose hash starts with `id` (and its name line). The
 * new text must load as the server would load it: revoking the last token
 * would leave a file the server refuses (it would keep the old tokens). */
static int cmd_revoke(const sw_config *cfg, const char *id)
{
    sw_buf text = SW_BUF_INIT, out = SW_BUF_INIT;
    entry *e = NULL;
    size_t n = 0, idn = strlen(id), hit = 0, which = 0;
    int rc = 1;
    struct stat was;
    if (idn < 8 || idn > 64 || strspn(id, "0123456789abcdefABCDEF") != idn)
        return sw_ctl_usage("token", "revoke wants a token id: at least 8 of the hex digits "
                            "token list shows, not \"%s\"", id);
    if (stat(cfg->tokens_file, &was) != 0 && cfg->tokens_file[0]) {
        fprintf(stderr, "spillwayctl: %s: %s\n", cfg->tokens_file, strerror(errno));
        goto out;
    }
    if (read_tokens(cfg, &text, &e, &n) != 0)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (e[i].hash && strncasecmp(e[i].hash, id, idn) == 0) {
            hit++;
            which = i;
        }
    if (hit != 1) {
        fprintf(stderr, "spillwayctl: %s token in %s has an id starting %s\n",
                hit ? "more than one" : "no", cfg->tokens_file, id);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (i == which || (i + 1 == which && e[which].name))
            continue;
        if (sw_buf_append(&out, e[i].line, e[i].len) != 0 || sw_buf_append(&out, "\n", 1) != 0) {
            fprintf(stderr, "spillwayctl: out of memory\n");
            goto out;
        }
    }
    sw_auth check;
    int loads = sw_auth_parse(&check, cfg->tokens_file, out.data ? out.data : "", cfg);
    if (loads != 0)
        fprintf(stderr, "spillwayctl: not revoked: without it %s\n", check.errstr);
    sw_auth_free(&check);
    if (loads != 0 || replace_file(cfg->tokens_file, &was, &out) != 0)
        goto out;
    printf("revoked %.*s (sinks %.*s); reload the server (SIGHUP, or systemctl reload "
           "spillway-server) for it to take effect\n", ID_LEN, e[which].hash,
           (int)e[which].sinks_len, e[which].sinks);
    rc = 0;
out:
    free(e);
    sw_buf_free(&text);
    sw_buf_free(&out);
    return rc;
}

int sw_ctl_token(const sw_config *cfg, int argc, char **argv, int json)
{
    const char *what = argc > 0 ? argv[0] : "";
    if (strcmp(what, "list") == 0 && argc == 1)
        return cmd_list(cfg, json);
    if (json)
        return sw_ctl_usage("token", "--json goes with token list");
    if (strcmp(what, "revoke") == 0 && argc == 2)
        return cmd_revoke(cfg, argv[1]);
    if (strcmp(what, "new") == 0) {
        const char *sinks = NULL, *name = NULL;
        for (int i = 1; i < argc; i++) {
            if ((strcmp(argv[i], "--sinks") == 0 || strcmp(argv[i], "--name") == 0) &&
                i + 1 < argc) {
                *(argv[i][2] == 's' ? &sinks : &name) = argv[i + 1];
                i++;
            } else {
                return sw_ctl_usage("token", "unexpected argument \"%s\" to token new",
                                    argv[i]);
            }
        }
        if (sinks == NULL)
            return sw_ctl_usage("token", "token new wants --sinks a,b (or '*')");
        return cmd_new(cfg, sinks, name);
    }
    if (strcmp(what, "list") == 0 || strcmp(what, "revoke") == 0)
        return sw_ctl_usage("token", "token %s takes %s", what,
                            what[0] == 'l' ? "no arguments" : "one token id");
    return sw_ctl_usage("token", "unknown subcommand \"%s\": new, list or revoke", what);
}
