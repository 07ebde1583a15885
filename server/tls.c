#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

static int fail(const char *what, const char *path, char *errstr, size_t len)
{
    char why[160];
    ERR_error_string_n(ERR_get_error(), why, sizeof why);
    snprintf(errstr, len, "%s %s: %s", what, path, why);
    ERR_clear_error();
    return -1;
}

int sw_tls_load(void *ssl_ctx, const char *cert, const char *key, char *errstr, size_t len)
{
    SSL_CTX *ctx = ssl_ctx;
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return fail("cannot require", "TLS 1.2", errstr, len);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return fail("cannot load certificate", cert, errstr, len);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return fail("cannot load key", key, errstr, len);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail("key does not match certificate", cert, errstr, len);
    return 0;
}

/* Debian 12's civetweb 1.15 is built for the OpenSSL 1.1 API and dlopens
 * "libssl.so" at run time, where it finds OpenSSL 3. OpenSSL 3 renamed
 * SSL_get_peer_certificate (now a macro for SSL_get1_peer_certificate), so
 * civetweb's pointer to it stays NULL and it jumps there after every TLS
 * handshake. The server is therefore linked with the soname "libssl.so"
 * and exports this one function: civetweb's dlopen("libssl.so") then
 * returns the server itself, whose symbol lookup finds this function and
 * everything else in the real libssl it links. Same semantics: both
 * return a new reference, which civetweb frees. */
#undef SSL_get_peer_certificate
X509 *SSL_get_peer_certificate(const SSL *s);
X509 *SSL_get_peer_certificate(const SSL *s)
{
    return SSL_get1_peer_certificate(s);
}
