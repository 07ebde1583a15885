#ifndef SW_BUF_H_
#define SW_BUF_H_

#include <stddef.h>

/* A growable byte buffer. Owned by whoever embeds it; reuse it across
 * requests with sw_buf_reset() so the hot path stops allocating once warm. */
typedef struct sw_buf {
    char *data;
    size_t len;
    size_t cap;
} sw_buf;

#define SW_BUF_INIT {NULL, 0, 0}

/* Make room for at least `extra` more bytes. 0, or -1 when out of memory
 * (the buffer is left as it was). */
__attribute__((warn_unused_result)) int sw_buf_reserve(sw_buf *b, size_t extra);

/* Append bytes / a C string / printf output. 0, or -1 when out of memory. */
__attribute__((warn_unused_result)) int sw_buf_append(sw_buf *b, const void *p, size_t n);
__attribute__((warn_unused_result)) int sw_buf_puts(sw_buf *b, const char *s);
__attribute__((warn_unused_result, format(printf, 2, 3)))
int sw_buf_printf(sw_buf *b, const char *fmt, ...);

/* Append `s` as a JSON string literal, quotes included. Bytes that are
 * not UTF-8 become U+FFFD, so the result is valid JSON whatever `s`
 * holds (client bytes, say). */
__attribute__((warn_unused_result)) int sw_buf_json_str(sw_buf *b, const char *s, size_t n);

/* Append the whole file at `path`, NUL-terminated (the NUL is not counted
 * in len). 0, or -1 with errno set: from fopen/fread, ENOMEM, or EFBIG when
 * the buffer would pass `max` bytes. On -1 the buffer may hold part of the
 * file. */
__attribute__((warn_unused_result))
int sw_buf_read_file(sw_buf *b, const char *path, size_t max);

/* The line (from 1) of the first NUL byte in the buffer, 0 when none: a
 * text file with one would be read only up to it. */
int sw_buf_nul_line(const sw_buf *b);

/* Forget the contents, keep the memory. */
void sw_buf_reset(sw_buf *b);

/* Release the memory. Accepts NULL. */
void sw_buf_free(sw_buf *b);

#endif
