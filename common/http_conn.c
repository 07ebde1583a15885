#include "http_conn.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

/* At most this much per read call; the cap bounds the total. */
#define READ_STEP 65536

size_t sw_conn_read(sw_conn *c, sw_buf *b, size_t cap)
{
    size_t got = 0;
    c->tls_want_write = 0;
    if (b->cap == 0)
        return 0;
    if (cap > b->cap - 1)
        cap = b->cap - 1;
    while (b->len < cap && !c->eof && !c->broken) {
        size_t room = cap - b->len;
        if (room > READ_STEP)
            room = READ_STEP;
        char *at = b->data + b->len;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_read(c->ssl, at, (int)room);
            if (r > 0) {
                b->len += (size_t)r;
                got += (size_t)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ)
                break;
            if (e == SSL_ERROR_WANT_WRITE) {
                c->tls_want_write = 1;
                break;
            }
            if (e == SSL_ERROR_ZERO_RETURN)
                c->eof = 1;
            else
                c->broken = 1;
            break;
        }
        ssize_t n = recv(c->fd, at, room, 0);
        if (n > 0) {
            b->len += (size_t)n;
            got += (size_t)n;
            /* A short read emptied the socket: epoll says when there is
             * more, so skip the recv that would only say EAGAIN. */
            if ((size_t)n < room)
                break;
        } else if (n == 0) {
            c->eof = 1;
        } else if (errno == EINTR) {
            continue;
        } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
            break;
        } else {
            c->broken = 1;
        }
    }
    return got;
}

int sw_conn_write(sw_conn *c)
{
    c->tls_want_read = 0;
    while (c->out_sent < c->out.len) {
        size_t left = c->out.len - c->out_sent;
        const char *at = c->out.data + c->out_sent;
        if (c->ssl) {
            ERR_clear_error();
            int r = SSL_write(c->ssl, at, left > INT_MAX ? INT_MAX : (int)left);
            if (r > 0) {
                c->out_sent += (size_t)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_WRITE)
                return 0;
            if (e == SSL_ERROR_WANT_READ) {
                c->tls_want_read = 1;
                return 0;
            }
            return -1;
        }
        ssize_t n = send(c->fd, at, left, MSG_NOSIGNAL);
        if (n > 0)
            c->out_sent += (size_t)n;
        else if (n < 0 && errno == EINTR)
            continue;
        else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return 0;
        else
            return -1;
    }
    return 1;
}

int sw_conn_handshake(sw_conn *c)
{
    ERR_clear_error();
    c->tls_want_read = c->tls_want_write = 0;
    int r = SSL_do_handshake(c->ssl);
    if (r == 1)
        return 1;
    int e = SSL_get_error(c->ssl, r);
    if (e == SSL_ERROR_WANT_READ) {
        c->tls_want_read = 1;
        return 0;
    }
    if (e == SSL_ERROR_WANT_WRITE) {
        c->tls_want_write = 1;
        return 0;
    }
    return -1;
}

void sw_conn_shutdown_write(sw_conn *c)
{
    if (c->ssl) {
        ERR_clear_error();
        /* One try: close_notify goes out if the socket takes it. */
        (void)SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    shutdown(c->fd, SHUT_WR);
}

size_t sw_conn_drain(sw_conn *c, char *scratch, size_t len, size_t budget)
{
    size_t dropped = 0;
    while (dropped < budget) {
        /* Raw bytes: TLS records are not decrypted, only dropped. */
        ssize_t n = recv(c->fd, scratch, len, 0);
        if (n > 0) {
            dropped += (size_t)n;
        } else if (n == 0) {
            c->eof = 1;
            break;
        } else if (errno == EINTR) {
            continue;
        } else {
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                c->broken = 1;
            break;
        }
    }
    return dropped;
}

void sw_conn_release(sw_conn *c)
{
    if (c->ssl) {
        SSL_free(c->ssl);
        c->ssl = NULL;
    }
    if (c->fd >= 0) {
        close(c->fd);
        c->fd = -1;
    }
    sw_buf_free(&c->in);
    sw_buf_free(&c->body);
    sw_buf_free(&c->out);
    free(c->x);
    c->x = NULL;
}
