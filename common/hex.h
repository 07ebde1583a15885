#ifndef SW_HEX_H_
#define SW_HEX_H_

/* The value of one hex digit (0-9, a-f, A-F), or -1 for any other byte.
 * Shared by every parser that reads hex: chunk sizes, percent-escapes,
 * \u escapes, job ids, token hashes. */
static inline int sw_hex_digit(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)(c | 0x20);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#endif
