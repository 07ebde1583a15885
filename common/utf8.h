#ifndef SW_UTF8_H_
#define SW_UTF8_H_

#include <stddef.h>

/* UTF-8 as RFC 3629 defines it: no overlong forms, no surrogates, nothing
 * past U+10FFFF. Pure. */

/* The length (1-4) of the valid sequence at p (p < end), or 0 when the
 * bytes there are not one. */
size_t sw_utf8_seq(const unsigned char *p, const unsigned char *end);

/* The longest prefix of s[0..n) that does not end inside a character
 * (for cutting text on a boundary). */
size_t sw_utf8_cut(const char *s, size_t n);

/* Characters in s[0..n), which must be valid UTF-8. */
size_t sw_utf8_chars(const char *s, size_t n);

#endif
