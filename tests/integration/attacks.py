"""The front door's attack corpus: raw bytes on one connection, as an HTTP
security tester sends them to make two parsers disagree on where a request
ends (RFC 9112 framing, request smuggling).

Each vector is a first request the server must refuse, followed on the same
connection by a well-formed write of one record with an id of its own (the
"smuggled" request). The verdict for the first request is "close": the
refusal comes, the connection ends, and the bytes after it are never parsed,
so no smuggled id may ever land in the table. The first request's own record
(the "front", id = smuggled id + 1000) must not land either.

`run_corpus` sends every vector on a fresh connection through `connect` (a
plain socket, TLS, or a proxy in front) and returns what each one got.
"""

import re
import socket
import time

SINK = "events"
FIRST_ID = 4200            # smuggled ids: FIRST_ID + index; fronts: + 1000


def record(rid, what):
    return b'{"id":%d,"payload":"%s"}' % (rid, what.encode())


def request(body, auth=b"", extra=b"", version=b"HTTP/1.1", host=b"Host: x\r\n",
            framing=None):
    """A POST of `body` to the sink; `framing` replaces the Content-Length
    line (bytes, lines included)."""
    if framing is None:
        framing = b"Content-Length: %d\r\n" % len(body)
    return (b"POST /v1/sinks/%s/records %s\r\n" % (SINK.encode(), version) + host +
            b"Content-Type: application/json\r\n" + auth + extra + framing + b"\r\n" + body)


def chunked(data, size=7):
    return b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + size]), data[i:i + size])
                    for i in range(0, len(data), size)) + b"0\r\n\r\n"


def _vectors():
    """(name, build(front_body, smuggled_request, auth) -> bytes, statuses)."""
    cl = lambda n: b"Content-Length: %d\r\n" % n      # noqa: E731
    te = b"Transfer-Encoding: chunked\r\n"
    v = []

    def add(name, build, statuses=(400,)):
        v.append((name, build, statuses))

    # --- Content-Length and Transfer-Encoding ---------------------------------
    add("two different Content-Length",
        lambda f, s, a: request(f + s, a, framing=cl(len(f)) + cl(len(f) + len(s))))
    add("two equal Content-Length",
        lambda f, s, a: request(f, a, framing=cl(len(f)) + cl(len(f))) + s)
    add("Content-Length then Transfer-Encoding",
        lambda f, s, a: request(chunked(f), a, framing=cl(len(chunked(f))) + te) + s)
    add("Transfer-Encoding then Content-Length",
        lambda f, s, a: request(chunked(f), a, framing=te + cl(len(chunked(f)))) + s)
    add("Transfer-Encoding CHUNKED and Content-Length",
        lambda f, s, a: request(chunked(f), a, framing=b"Transfer-Encoding: CHUNKED\r\n" +
                                cl(len(f))) + s)
    add("Content-Length 0x10",
        lambda f, s, a: request(f, a, framing=b"Content-Length: 0x%x\r\n" % len(f)) + s)
    add("Content-Length +n",
        lambda f, s, a: request(f, a, framing=b"Content-Length: +%d\r\n" % len(f)) + s)
    add("Content-Length list n, n",
        lambda f, s, a: request(f, a, framing=b"Content-Length: %d, %d\r\n" % (len(f), len(f)))
        + s)
    add("Content-Length empty",
        lambda f, s, a: request(f, a, framing=b"Content-Length: \r\n") + s)
    add("Content-Length -1",
        lambda f, s, a: request(f, a, framing=b"Content-Length: -1\r\n") + s)
    add("Content-Length with a space inside",
        lambda f, s, a: request(f, a, framing=b"Content-Length: %d %d\r\n" % (len(f) // 10,
                                                                            len(f) % 10)) + s)
    add("Content-Length 99999999999999999999",
        lambda f, s, a: request(f + s, a, framing=b"Content-Length: 99999999999999999999\r\n"),
        (413,))
    add("120 headers, Content-Length last",
        lambda f, s, a: request(f + s, a, extra=b"".join(b"X-H%d: v\r\n" % i for i in range(120)),
                                framing=cl(len(f))), (431,))
    add("Transfer-Encoding chunked, chunked",
        lambda f, s, a: request(chunked(f), a, framing=b"Transfer-Encoding: chunked, chunked\r\n")
        + s, (400, 501))
    add("Transfer-Encoding gzip, chunked",
        lambda f, s, a: request(chunked(f), a, framing=b"Transfer-Encoding: gzip, chunked\r\n")
        + s, (400, 501))
    add("Transfer-Encoding identity",
        lambda f, s, a: request(f, a, framing=b"Transfer-Encoding: identity\r\n" + cl(len(f)))
        + s, (400, 501))
    add("Transfer-Encoding identity alone",
        lambda f, s, a: request(f, a, framing=b"Transfer-Encoding: identity\r\n") + s,
        (400, 501))
    add("Transfer-Encoding xchunked",
        lambda f, s, a: request(chunked(f), a, framing=b"Transfer-Encoding: xchunked\r\n") + s,
        (400, 501))
    add("Transfer-Encoding twice",
        lambda f, s, a: request(chunked(f), a, framing=te + te) + s)
    add("Transfer-Encoding on HTTP/1.0",
        lambda f, s, a: request(chunked(f), a, version=b"HTTP/1.0", framing=te) + s)
    add("Transfer-Encoding with a space before the colon",
        lambda f, s, a: request(chunked(f), a, framing=b"Transfer-Encoding : chunked\r\n" +
                                cl(len(chunked(f)))) + s)

    # --- header lines civetweb stopped at -------------------------------------
    add("obs-fold line",
        lambda f, s, a: request(f, a, extra=b"X-Fold: a\r\n b\r\n", framing=cl(len(f))) + s)
    add("obs-fold before Content-Length",
        lambda f, s, a: request(f + s, a, extra=b"X-Fold: a\r\n\tContent-Length: %d\r\n"
                                % len(f + s), framing=cl(len(f))))
    add("header name starting with 0xff",
        lambda f, s, a: request(f, a, extra=b"\xffX-Bad: y\r\n", framing=cl(len(f))) + s)
    add("line holding one space",
        lambda f, s, a: request(f, a, extra=b" \r\n", framing=cl(len(f))) + s)
    add("bare LF ending a header",
        lambda f, s, a: request(f, a, extra=b"X-Foo: a\n", framing=cl(len(f))) + s)
    add("bare LF then a blank line",
        lambda f, s, a: request(f + s, a, extra=b"X-Foo: a\n\r\n", framing=cl(len(f))))
    add("whitespace before the colon",
        lambda f, s, a: request(f, a, framing=b"Content-Length : %d\r\n" % len(f)) + s)
    add("tab before the colon",
        lambda f, s, a: request(f, a, framing=b"Content-Length\t: %d\r\n" % len(f)) + s)
    add("bare-LF head",
        lambda f, s, a: request(f, a, framing=cl(len(f))).replace(b"\r\n", b"\n") + s)
    add("bare CR inside a value",
        lambda f, s, a: request(f, a, extra=b"X-CR: a\rb\r\n", framing=cl(len(f))) + s)
    add("NUL inside a value",
        lambda f, s, a: request(f, a, extra=b"X-Nul: a\x00b\r\n", framing=cl(len(f))) + s)
    add("empty header name",
        lambda f, s, a: request(f, a, extra=b": x\r\n", framing=cl(len(f))) + s)
    add("header name with a space",
        lambda f, s, a: request(f, a, extra=b"X Bad: y\r\n", framing=cl(len(f))) + s)
    add("missing Host",
        lambda f, s, a: request(f, a, host=b"", framing=cl(len(f))) + s)
    add("duplicate Host",
        lambda f, s, a: request(f, a, host=b"Host: x\r\nHost: y\r\n", framing=cl(len(f))) + s)
    add("duplicate Authorization",
        lambda f, s, a: request(f, (a + a) if a else b"Authorization: Bearer x\r\n"
                                b"Authorization: Bearer y\r\n", framing=cl(len(f))) + s)
    add("duplicate Idempotency-Key",
        lambda f, s, a: request(f, a, extra=b"Idempotency-Key: k1\r\nIdempotency-Key: k2\r\n",
                                framing=cl(len(f))) + s)
    add("duplicate Content-Type",
        lambda f, s, a: request(f, a, extra=b"Content-Type: text/plain\r\n",
                                framing=cl(len(f))) + s)
    add("leading blank line",
        lambda f, s, a: b"\r\n" + request(f, a, framing=cl(len(f))) + s)
    add("leading blank lines, a request hidden at the end of the body",
        lambda f, s, a: b"\r\n\r\n" + request(f + s, a, framing=cl(len(f + s))))

    # --- request line ---------------------------------------------------------
    add("tab in the request line",
        lambda f, s, a: request(f, a, framing=cl(len(f))).replace(b"POST ", b"POST\t", 1) + s)
    add("two spaces in the request line",
        lambda f, s, a: request(f, a, framing=cl(len(f))).replace(b"POST ", b"POST  ", 1) + s)
    add("absolute-form target",
        lambda f, s, a: request(f, a, framing=cl(len(f))).replace(
            b"POST /", b"POST http://x/", 1) + s)
    add("HTTP/1.1 in lower case",
        lambda f, s, a: request(f, a, version=b"http/1.1", framing=cl(len(f))) + s)

    # --- chunked framing ------------------------------------------------------
    add("chunk size 0x prefix",
        lambda f, s, a: request(b"0x%x\r\n%s\r\n0\r\n\r\n" % (len(f), f), a, framing=te) + s)
    add("chunk size overflow",
        lambda f, s, a: request(b"1" + b"0" * 16 + b"%x\r\n%s\r\n0\r\n\r\n" % (len(f), f), a,
                                framing=te) + s)
    add("chunk size with a leading space",
        lambda f, s, a: request(b" %x\r\n%s\r\n0\r\n\r\n" % (len(f), f), a, framing=te) + s)
    add("chunk data longer than its size",
        lambda f, s, a: request(b"%x\r\n%s\r\n0\r\n\r\n" % (len(f) - 3, f), a, framing=te) + s)
    add("chunk line ending in bare LF",
        lambda f, s, a: request(b"%x\n%s\r\n0\r\n\r\n" % (len(f), f), a, framing=te) + s)
    add("last chunk without its CRLF, then a request",
        lambda f, s, a: request(b"%x\r\n%s\r\n0\r\n" % (len(f), f), a, framing=te) + s +
        b"\r\n")
    add("trailer with obs-fold",
        lambda f, s, a: request(b"%x\r\n%s\r\n0\r\nX-T: a\r\n b\r\n\r\n" % (len(f), f), a,
                                framing=te) + s)
    add("trailer with bare LF",
        lambda f, s, a: request(b"%x\r\n%s\r\n0\r\nX-T: a\n\r\n" % (len(f), f), a,
                                framing=te) + s)
    add("chunk extension with a control byte",
        lambda f, s, a: request(b"%x;a=\x01\r\n%s\r\n0\r\n\r\n" % (len(f), f), a,
                                framing=te) + s)
    return v


VECTORS = _vectors()

# The vectors where two readers could disagree on where the request ends:
# every HTTP parser in front of the server must refuse these.
AMBIGUOUS = {name for name, _, _ in VECTORS
             if ("Content-Length" in name or "Transfer-Encoding" in name or "obs-fold" in name
                 or name.startswith("chunk size") or name == "chunk data longer than its size")
             and "trailer" not in name}


def smuggled_request(rid, auth=b""):
    return request(record(rid, "smuggled"), auth)


def read_until_close(sock, limit):
    """Everything the server sends until it closes, or what came by `limit`
    seconds; and whether it closed."""
    sock.settimeout(0.2)
    data = b""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            continue
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        if not chunk:
            return data, True
        data += chunk
    return data, False


def split_responses(data):
    """The responses in `data`, each cut by its Content-Length (a partial
    one at the end counts too)."""
    out = []
    while data:
        head, sep, rest = data.partition(b"\r\n\r\n")
        if not sep:
            out.append(data)
            break
        m = re.search(rb"\r\ncontent-length:[ \t]*(\d+)", head, re.I)
        n = int(m.group(1)) if m else 0
        out.append(head + sep + rest[:n])
        data = rest[n:]
    return out


def run_corpus(connect, auth=b"", close_within=4.0, only=None):
    """Send every vector; returns a list of dicts (name, status, statuses,
    responses, closed, smuggled id, front id)."""
    results = []
    for i, (name, build, statuses) in enumerate(VECTORS):
        if only and name not in only:
            continue
        sid = FIRST_ID + i
        data = build(record(sid + 1000, "front"), smuggled_request(sid, auth), auth)
        s = connect()
        try:
            try:
                s.sendall(data)
            except (ConnectionResetError, BrokenPipeError):
                pass
            got, closed = read_until_close(s, close_within)
        finally:
            s.close()
        status = None
        if got.startswith(b"HTTP/1."):
            try:
                status = int(got.split(b" ", 2)[1])
            except ValueError:
                pass
        results.append({"name": name, "status": status, "statuses": statuses,
                        "responses": len(split_responses(got)),
                        "closed": closed, "smuggled": sid, "front": sid + 1000,
                        "head": got[:300], "got": got})
    return results


def landed(sql):
    """Ids of corpus records that reached the table (`sql` runs a query)."""
    rows = sql("SELECT id FROM %s WHERE id >= %d AND id < %d ORDER BY id"
               % (SINK, FIRST_ID, FIRST_ID + 2000))
    return [int(r[0]) for r in rows]
