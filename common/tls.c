#include "tls.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>

static SSL_CTX *fail(SSL_CTX *ctx, const char *what, const char *path, char *errstr,
                     size_t len)
{
    char why[160] = "";
    unsigned long e = ERR_get_error();
    if (e)
        ERR_error_string_n(e, why, sizeof why);
    snprintf(errstr, len, "%s %s%s%s", what, path, why[0] ? ": " : "", why);
    ERR_clear_error();
    SSL_CTX_free(ctx);
    return NULL;
}

/* Every TLS 1.2 suite the context would offer is forward-secret (ECDHE or
 * DHE key exchange) and AEAD. NULL, or the first one that is not. */
static const char *weak_suite(SSL_CTX *ctx)
{
    STACK_OF(SSL_CIPHER) *list = SSL_CTX_get_ciphers(ctx);
    for (int i = 0; list && i < sk_SSL_CIPHER_num(list); i++) {
        const SSL_CIPHER *c = sk_SSL_CIPHER_value(list, i);
        int kx = SSL_CIPHER_get_kx_nid(c);
        if (kx == NID_kx_any)           /* TLS 1.3 */
            continue;
        if ((kx != NID_kx_ecdhe && kx != NID_kx_dhe) || !SSL_CIPHER_is_aead(c))
            return SSL_CIPHER_get_name(c);
    }
    return NULL;
}

SSL_CTX *sw_tls_server_ctx(const char *cert, const char *key, const char *ciphers,
                           char *errstr, size_t len)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return fail(ctx, "cannot make a TLS context", "", errstr, len);
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
        return fail(ctx, "cannot require", "TLS 1.2", errstr, len);
    /* A peer that closes without close_notify has still sent its request:
     * read that as the end of input, as with plain TCP. */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
                                 SSL_OP_NO_COMPRESSION);
#ifdef SSL_OP_IGNORE_UNEXPECTED_EOF     /* OpenSSL 3 */
    SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
#endif
    /* The core writes from whichever buffer position it is at, and takes
     * partial writes. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    /* Key exchange on the groups that cost little: an 8192-bit finite
     * field share (which OpenSSL offers too) costs the one I/O thread
     * about 90 ms per ClientHello, and a client need not finish it. */
    if (SSL_CTX_set1_groups_list(ctx, "X25519:P-256:P-384") != 1)
        return fail(ctx, "cannot set", "the key exchange groups", errstr, len);
    if (ciphers == NULL || ciphers[0] == '\0')
        ciphers = SW_TLS_DEFAULT_CIPHERS;
    if (SSL_CTX_set_cipher_list(ctx, ciphers) != 1)
        return fail(ctx, "no usable suite in [server] tls_ciphers:", ciphers, errstr, len);
    const char *weak = weak_suite(ctx);
    if (weak) {
        snprintf(errstr, len, "[server] tls_ciphers enables %s, which lacks forward secrecy "
                 "or AEAD; list only ECDHE/DHE suites with GCM or CHACHA20-POLY1305", weak);
        SSL_CTX_free(ctx);
        return NULL;
    }
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1)
        return fail(ctx, "cannot load certificate", cert, errstr, len);
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1)
        return fail(ctx, "cannot load key", key, errstr, len);
    if (SSL_CTX_check_private_key(ctx) != 1)
        return fail(ctx, "key does not match certificate", cert, errstr, len);
    return ctx;
}

void sw_tls_ctx_free(SSL_CTX *ctx)
{
    SSL_CTX_free(ctx);
}
