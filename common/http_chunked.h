#ifndef SW_HTTP_CHUNKED_H_
#define SW_HTTP_CHUNKED_H_

#include <stddef.h>
#include <stdint.h>

/* The chunked transfer coding (RFC 9112 section 7.1), decoded in place and
 * incrementally. Pure: no I/O, no allocation.
 *
 * The caller keeps the raw body in one buffer and calls sw_chunked_decode
 * as bytes arrive. The decoder reads at *rpos and writes the data at
 * *wpos; data is never longer than its coding, so *wpos <= *rpos always
 * and both live in the same buffer. When the last chunk and its trailer
 * section have been read, *rpos is where the next request starts.
 *
 * Strict: chunk sizes are hex digits only (no sign, no 0x, no spaces
 * before them), at most 15 of them; an extension is ";" and printable
 * bytes; every line ends in CRLF; chunk data is followed by CRLF; trailer
 * fields are name ":" value lines like header fields and are dropped. */

enum { SW_CHUNKED_LINE_MAX = 1024 };   /* a size line, extensions included */

typedef struct sw_chunked {
    int state;                  /* private */
    uint64_t left;              /* private: data bytes of this chunk to go */
    size_t line;                /* private: bytes of the current line so far */
    size_t trailer;             /* private: bytes of trailer fields so far */
    int status;                 /* on -1: 400, 413 or 431 */
    char detail[128];           /* on -1: what is wrong, plain ASCII */
} sw_chunked;

/* Start decoding a new body. */
void sw_chunked_init(sw_chunked *c);

/* Decode buf[*rpos..len), writing data from buf + *wpos on. `body_start`
 * is where the data began (for the size check): more than `max_body` data
 * bytes is a 413; more than `max_trailer` bytes of trailer fields a 431.
 * Returns 1 when the body is complete, 0 when more bytes are needed, -1
 * with c->status and c->detail set. */
__attribute__((warn_unused_result))
int sw_chunked_decode(sw_chunked *c, char *buf, size_t len, size_t *rpos, size_t *wpos,
                      size_t body_start, size_t max_body, size_t max_trailer);

#endif
