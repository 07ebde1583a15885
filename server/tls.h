#ifndef SW_TLS_H_
#define SW_TLS_H_

#include <stddef.h>

/* Load a PEM certificate chain and its private key into `ssl_ctx` (the
 * OpenSSL SSL_CTX that civetweb made) and refuse TLS older than 1.2.
 * 0, or -1 with OpenSSL's reason in errstr. */
__attribute__((warn_unused_result))
int sw_tls_load(void *ssl_ctx, const char *cert, const char *key, char *errstr, size_t len);

#endif
