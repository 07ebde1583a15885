#ifndef SW_TLS_H_
#define SW_TLS_H_

#include <stddef.h>

struct ssl_ctx_st;

/* The TLS 1.2 suites served by default: forward-secret (ECDHE) and AEAD
 * (GCM, ChaCha20-Poly1305) only. TLS 1.3's suites are all both. */
#define SW_TLS_DEFAULT_CIPHERS                                                  \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* A server context: the PEM certificate chain and its key, TLS 1.2 or
 * later, TLS 1.2 limited to `ciphers` (OpenSSL cipher-list syntax; NULL
 * for the default), no renegotiation. A list that enables any suite
 * without forward secrecy or without AEAD is refused. Returns the context,
 * or NULL with the reason in errstr. */
struct ssl_ctx_st *sw_tls_server_ctx(const char *cert, const char *key, const char *ciphers,
                                     char *errstr, size_t len);

/* Free a context. Accepts NULL. */
void sw_tls_ctx_free(struct ssl_ctx_st *ctx);

#endif
