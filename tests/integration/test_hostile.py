"""Hostile input against the running server: every request here gets a
clear 4xx (problem+json) or lands exactly as sent; none crashes the
server, holds a worker, or queues part of a job. Raw sockets, so the bytes
on the wire are exactly what the test says."""

import json
import socket
import threading
import time
import unittest

import harness
from harness import wait_for

SINKS = """
[sink.events]
table = public.events
columns = id bigint not null, payload text not null

[sink.docs]
table = public.docs
columns = id bigint not null, body jsonb, amount numeric, note text
"""
TABLES = """
CREATE TABLE events (id bigint NOT NULL, payload text NOT NULL);
CREATE TABLE docs (id bigint NOT NULL, body jsonb, amount numeric, note text);
"""
TIMEOUT_MS = 1500


def read_response(sock, deadline=10.0):
    """(status, headers, body) of one response, or None if the server closed
    the connection (or sent nothing) first."""
    sock.settimeout(deadline)
    buf = b""
    try:
        while b"\r\n\r\n" not in buf:
            chunk = sock.recv(65536)
            if not chunk:
                return None
            buf += chunk
        head, _, rest = buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            headers[k.strip().lower()] = v.strip()
        n = int(headers.get("content-length", "0"))
        while len(rest) < n:
            chunk = sock.recv(65536)
            if not chunk:
                break
            rest += chunk
        return status, headers, rest[:n]
    except (ConnectionResetError, socket.timeout):
        return None


def closed_by_server(sock, within):
    """True when the server closes the connection within `within` s."""
    sock.settimeout(within)
    try:
        while True:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


class HostileTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = {"server": {"threads": "4", "request_timeout_ms": str(TIMEOUT_MS),
                        "idle_timeout_ms": "1000",
                        "max_header_bytes": "8192", "max_string_bytes": "1000",
                        "max_json_depth": "8", "max_body_bytes": "65536"}}
    accepted = {"events": 0, "docs": 0}
    lock = threading.Lock()

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.svc.port), timeout=10)

    def raw(self, data):
        with self.connect() as s:
            s.sendall(data)
            return read_response(s)

    def post_raw(self, sink, body, ctype=b"application/json", extra=b""):
        if isinstance(body, str):
            body = body.encode()
        req = (b"POST /v1/sinks/%s/records HTTP/1.1\r\nHost: x\r\nContent-Type: %s\r\n"
               b"Content-Length: %d\r\n%s\r\n" % (sink.encode(), ctype, len(body), extra) + body)
        r = self.raw(req)
        self.assertIsNotNone(r, "no response to %r" % req[:200])
        if r[0] in (200, 202):
            with self.lock:
                self.accepted[sink] += json.loads(r[2])["records"]
        return r

    def assert_problem(self, r, status, needle=None):
        self.assertIsNotNone(r, "connection closed without an answer")
        st, h, body = r
        self.assertEqual(st, status, body)
        self.assertEqual(h["content-type"], "application/problem+json")
        doc = json.loads(body)
        self.assertEqual(doc["status"], status)
        if needle:
            self.assertIn(needle, doc["detail"])
        return doc

    # --- bodies -------------------------------------------------------
    def test_invalid_utf8_and_nul_bytes(self):
        self.assert_problem(self.post_raw("events", b'{"id":1,"payload":"\xff\xfe"}'), 400,
                            "unable to decode byte 0xff")
        self.assert_problem(self.post_raw("events", b'{"id":1,"payload":"\xc0\xaf"}'), 400)
        self.assert_problem(self.post_raw("events", b'{"id":1,"payload":"a\\u0000b"}'), 400,
                            "\\u0000")
        self.assert_problem(self.post_raw("events", b'{"id":1,"payload":"a\x00b"}'), 400)
        # NDJSON: the bad line is named; the good lines before it are not queued.
        r = self.post_raw("events", b'{"id":1,"payload":"ok"}\n{"id":2,"payload":"\xff"}\n',
                          b"application/x-ndjson")
        self.assert_problem(r, 400, "line 2")

    def test_duplicate_keys(self):
        self.assert_problem(self.post_raw("events", '{"id":1,"id":2,"payload":"x"}'), 400,
                            "duplicate")

    def test_nesting(self):
        ok = {"id": 30, "body": {"a": [[[[[[[1]]]]]]]}}     # 8 containers: the limit
        r = self.post_raw("docs", json.dumps(ok))
        self.assertEqual(r[0], 202, r)
        deep = {"id": 31, "body": {"a": [[[[[[[[1]]]]]]]]}}
        self.assert_problem(self.post_raw("docs", json.dumps(deep)), 422, "max_json_depth")
        # Far deeper than anything: the JSON parser's own bound answers.
        self.assert_problem(self.post_raw("docs", "[" * 30000 + "]" * 30000), 400)
        self.assert_problem(self.post_raw("docs", '{"id":1,"body":' + "[" * 30000), 400)

    def test_string_length(self):
        r = self.post_raw("events", json.dumps({"id": 40, "payload": "x" * 1000}))
        self.assertEqual(r[0], 202, r)
        doc = self.assert_problem(self.post_raw("events", json.dumps({"id": 41,
                                                                      "payload": "y" * 1001})),
                                  422, "max_string_bytes")
        self.assertIn("1001 bytes", doc["detail"])
        # Multi-byte: the limit counts bytes, not characters.
        self.assert_problem(self.post_raw("events", json.dumps({"id": 42, "payload": "é" * 501},
                                                               ensure_ascii=False)), 422)

    def test_huge_numbers(self):
        self.assert_problem(self.post_raw("events", '{"id":123456789012345678901234567890,'
                                                    '"payload":"x"}'), 400)
        self.assert_problem(self.post_raw("events", '{"id":1e400,"payload":"x"}'), 400)
        self.assert_problem(self.post_raw("events", '{"id":1.5,"payload":"x"}'), 422)
        self.assert_problem(self.post_raw("docs", '{"id":50,"amount":"1e999999"}'), 422)
        big = "9" * 900 + "." + "1" * 90
        r = self.post_raw("docs", json.dumps({"id": 51, "amount": big}))
        self.assertEqual(r[0], 202, r)
        wait_for(lambda: self.svc.sql("SELECT amount::text FROM docs WHERE id = 51") == [[big]],
                 30, "the 991-digit numeric to land exactly")

    def test_sql_and_copy_metacharacters_land_verbatim(self):
        values = ["'); DROP TABLE events; --", "\\.", "\\N", "a\tb\nc\rd\\e", "\"quoted\"",
                  "$$; SELECT pg_sleep(10); $$", "Robert'); DROP TABLE docs;--"]
        body = [{"id": 60 + i, "payload": v} for i, v in enumerate(values)]
        r = self.post_raw("events", json.dumps(body))
        self.assertEqual(r[0], 202, r)
        self.svc.wait_jobs([json.loads(r[2])["job_id"]])
        rows = self.svc.sql("SELECT count(*) FROM events WHERE id BETWEEN 60 AND 66 AND "
                            "payload IS NOT NULL")
        self.assertEqual(rows, [["7"]])
        for i, v in enumerate(values):
            got = self.svc.sql("SELECT encode(convert_to(payload, 'UTF8'), 'hex') FROM events "
                               "WHERE id = %d" % (60 + i))
            self.assertEqual(bytes.fromhex(got[0][0]).decode(), v)
        self.assertEqual(self.svc.sql("SELECT to_regclass('public.docs') IS NOT NULL"), [["t"]])

    # --- framing ------------------------------------------------------
    def test_chunked_body_lands_and_is_capped(self):
        body = json.dumps([{"id": 70, "payload": "chunked"}, {"id": 71, "payload": "two"}])
        chunks = b"".join(b"%x\r\n%s\r\n" % (len(body[i:i + 7]), body[i:i + 7].encode())
                          for i in range(0, len(body), 7))
        req = (b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks + b"0\r\n\r\n")
        r = self.raw(req)
        self.assertEqual(r[0], 202, r)
        with self.lock:
            self.accepted["events"] += 2
        big = b"x" * 70000
        req = (b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n0\r\n\r\n"
               % (len(big), big))
        self.assert_problem(self.raw(req), 413, "max_body_bytes")
        # A broken chunk size line.
        req = (b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
               b"application/json\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n")
        self.assert_problem(self.raw(req), 400)

    def test_smuggling_shapes_are_400(self):
        body = b'{"id":80,"payload":"x"}'
        base = b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        for extra in (b"Content-Length: %d\r\nTransfer-Encoding: chunked\r\n" % len(body),
                      b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n" % len(body),
                      b"Content-Length: %d\r\nContent-Length: %d\r\n" % (len(body), len(body)),
                      b"Content-Length: %dx\r\n" % len(body),
                      b"Content-Length: +%d\r\n" % len(body),
                      b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
                      b"Transfer-Encoding: gzip, chunked\r\n"):
            with self.connect() as s:
                s.sendall(base + extra + b"\r\n" + b"%x\r\n" % len(body) + body + b"\r\n0\r\n\r\n")
                r = read_response(s)
                self.assert_problem(r, 400)
                # And the connection is closed: the rest is never read as a request.
                self.assertTrue(closed_by_server(s, 5), extra)

    def test_wrong_content_length(self):
        body = b'{"id":90,"payload":"short"}'
        # Fewer bytes than announced, then the client half-closes.
        with self.connect() as s:
            s.sendall(b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n" % (len(body) + 50) + body)
            s.shutdown(socket.SHUT_WR)
            self.assert_problem(read_response(s), 400, "Content-Length")
        # More bytes than announced: the first part is the request, the
        # rest is read as the next request and refused.
        with self.connect() as s:
            s.sendall(b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body +
                      b"GARBAGE{}\r\n\r\n")
            data = harness.read_until_close(s)
            first, sep, second = data.partition(b"\r\n\r\n{")
            self.assertTrue(first.startswith(b"HTTP/1.1 202"), data)
            with self.lock:
                self.accepted["events"] += 1
            self.assertEqual(data.count(b"HTTP/1.1 "), 2, data)
            self.assertIn(b"HTTP/1.1 400", second)
            self.assertIn(b"application/problem+json", second)

    def test_refused_large_body_is_not_read(self):
        # 10 MB announced to a sink that does not exist: the 404 comes at
        # once and the connection closes, without waiting for the body.
        with self.connect() as s:
            s.sendall(b"POST /v1/sinks/nosuch/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 10000000\r\n\r\n" + b"[" * 1000)
            t0 = time.monotonic()
            r = read_response(s, deadline=5)
            self.assert_problem(r, 404)
            self.assertEqual(r[1].get("connection"), "close")
            self.assertTrue(closed_by_server(s, 5))
            self.assertLess(time.monotonic() - t0, 3)
        # A small refused body is read and dropped: the connection lives on.
        with self.connect() as s:
            s.sendall(b"POST /v1/sinks/nosuch/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nContent-Length: 2\r\n\r\n{}"
                      b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n\r\n")
            s.settimeout(10)
            data = b""
            while data.count(b"HTTP/1.1 ") < 2 or not data.rstrip().endswith(b"}"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            self.assertTrue(data.startswith(b"HTTP/1.1 404"), data[:100])
            self.assertIn(b"HTTP/1.1 200", data)

    # --- heads --------------------------------------------------------
    def test_header_limits(self):
        big = b"X-Pad: " + b"a" * 9000 + b"\r\n"
        r = self.raw(b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
        self.assert_problem(r, 431, "max_header_bytes")
        # More than 100 fields: refused whole, not read in part (a
        # Content-Length past a cut would frame the body differently).
        many = b"".join(b"X-H%d: v\r\n" % i for i in range(120))
        body = b'{"id":120,"payload":"smuggled"}'
        with self.connect() as s:
            s.sendall(b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\n" + many + b"Content-Length: %d\r\n\r\n" % len(body)
                      + body)
            self.assert_problem(read_response(s), 431, "more than 100 header fields")
            self.assertTrue(closed_by_server(s, 5))
        r = self.raw(b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n" +
                     b"".join(b"X-H%d: v\r\n" % i for i in range(98)) + b"\r\n")
        self.assertEqual(r[0], 200, r)
        # Far past the limit: still an answer as soon as the limit is
        # reached, and closed.
        huge = b"X-Pad: " + b"a" * 40000 + b"\r\n"
        with self.connect() as s:
            s.sendall(b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n" + huge + b"\r\n")
            r = read_response(s)
            if r is not None:
                self.assertGreaterEqual(r[0], 400)
                self.assertLess(r[0], 500)
            self.assertTrue(closed_by_server(s, 5))

    def test_injection_and_traversal_in_paths(self):
        for path in (b"/v1/sinks/events%0d%0aX-Evil:%201/records",
                     b"/v1/sinks/..%2f..%2fetc%2fpasswd/records",
                     b"/v1/sinks/events;DROP%20TABLE%20events/records",
                     b"/v1/sinks/EVENTS/records",
                     b"/v1/sinks/%2e%2e/records"):
            r = self.raw(b"POST " + path + b" HTTP/1.1\r\nHost: x\r\nContent-Type: "
                         b"application/json\r\nContent-Length: 2\r\n\r\n{}")
            self.assertIsNotNone(r, path)
            self.assertIn(r[0], (400, 404), path)
            self.assertNotIn("x-evil", r[1])
            if r[0] == 404:
                self.assertEqual(r[1]["content-type"], "application/problem+json")
        for path in (b"/v1/jobs/../../etc/passwd", b"/v1/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
                     b"/v1/jobs/0190a0e4-7b8c-7abc-8123-456789abcdef%00",
                     b"/v1/jobs/" + b"a" * 3000, b"/v1/jobs/*"):
            r = self.raw(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertIsNotNone(r, path)
            self.assertIn(r[0], (400, 404), (path, r))
        # Versions: a malformed one is a 400, an unserved one a 505; the
        # request line is never echoed.
        for version, status in ((b'HTTP/"9', 400), (b"HTTP/9\\", 400), (b"HTTP/9.9", 505),
                                (b"HTTP/2.0", 505)):
            doc = self.assert_problem(self.raw(b"GET /v1/queue " + version +
                                               b"\r\nHost: x\r\n\r\n"), status)
            self.assertIn("HTTP/1", doc["detail"])
        # Client text echoed back stays inside a JSON string, and the body
        # stays valid UTF-8 whatever bytes the client sent.
        r = self.post_raw("events", b"{}", ctype=b'text/plain"}, "evil": "1')
        doc = self.assert_problem(r, 415)
        self.assertNotIn("evil", doc)
        r = self.post_raw("events", b"{}", ctype=b"\xff\xfe/\xc3(")
        self.assertEqual(r[0], 415)
        doc = json.loads(r[2].decode("utf-8", errors="strict"))
        self.assertIn("\ufffd\ufffd/\ufffd(", doc["detail"])
        r = self.raw(b"POST /v1/sinks/\xc3\xa9v%ff%fe/records HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Length: 2\r\n\r\n{}")
        self.assertEqual(r[0], 400)          # bytes over 0x7f must be %-encoded
        r = self.raw(b"POST /v1/sinks/%c3%a9v%ff%fe/records HTTP/1.1\r\nHost: x\r\n"
                     b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
        self.assertEqual(r[0], 404)
        doc = json.loads(r[2].decode("utf-8", errors="strict"))
        self.assertIn("\u00e9v\ufffd\ufffd", doc["detail"])
        r = self.post_raw("events", b'{"id":1,"payload":"x"}',
                          extra=b"Idempotency-Key: a b<script>\r\n")
        self.assert_problem(r, 400, "Idempotency-Key")

    # --- slow clients -------------------------------------------------
    def trickle(self, first, step, every=0.3, limit=12.0):
        """Send `first`, then `step` every `every` s until the server closes
        or answers; seconds until it did (or `limit`)."""
        t0 = time.monotonic()
        s = self.connect()
        try:
            s.sendall(first)
            while time.monotonic() - t0 < limit:
                time.sleep(every)
                try:
                    s.sendall(step)
                except (BrokenPipeError, ConnectionResetError):
                    return time.monotonic() - t0, None
                s.settimeout(0.01)
                try:
                    data = s.recv(65536)
                    return time.monotonic() - t0, data
                except socket.timeout:
                    pass
                except ConnectionResetError:
                    return time.monotonic() - t0, None
            return limit, None
        finally:
            s.close()

    def test_slowloris_is_cut_off(self):
        head = (b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                b"application/json\r\n")
        results = {}

        def run(name, first, step):
            results[name] = self.trickle(first, step)

        # Four at once: as many as the server has workers.
        shapes = {
            "head": (b"POST /v1/sinks/events/records HTTP/1.1\r\n", b"X"),
            "body": (head + b"Content-Length: 1000\r\n\r\n[", b" "),
            "chunked": (head + b"Transfer-Encoding: chunked\r\n\r\n1\r\n[\r\n", b"1\r\n \r\n"),
            "chunk-size": (head + b"Transfer-Encoding: chunked\r\n\r\n", b"0"),
        }
        threads = [threading.Thread(target=run, args=(k,) + v) for k, v in shapes.items()]
        for t in threads:
            t.start()
        time.sleep(0.5)
        # Meanwhile every worker is held; an honest client waits, then is served.
        t0 = time.monotonic()
        r = self.post_raw("events", '{"id":100,"payload":"patient"}')
        waited = time.monotonic() - t0
        for t in threads:
            t.join()
        self.assertEqual(r[0], 202, r)
        self.assertLess(waited, 8.0)
        for name, (secs, data) in results.items():
            # request_timeout_ms is 1.5 s; deadlines are checked every 0.1 s.
            self.assertLess(secs, 6.0, (name, secs))
            # Every one is told why: a 408, not a silent close.
            self.assertIsNotNone(data, name)
            self.assertTrue(data.startswith(b"HTTP/1.1 408"), (name, data[:80]))
            self.assertIn(b"Connection: close", data)
        # Slow clients hold no worker: the honest client did not wait.
        self.assertLess(waited, 1.0)
        metrics = self.svc.request("GET", "/metrics")[2].decode()
        self.assertRegex(metrics, r'spillway_requests_rejected_total\{reason="timeout"\} [1-9]')
        self.assertRegex(metrics, r'spillway_http_timeouts_total [1-9]')

    def test_idle_keepalive_is_closed(self):
        with self.connect() as s:
            s.sendall(b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n\r\n")
            r = read_response(s)
            self.assertEqual(r[0], 200)
            t0 = time.monotonic()
            # idle_timeout_ms is 1 s: closed well before 5 s, and not at once.
            self.assertTrue(closed_by_server(s, 5))
            self.assertGreater(time.monotonic() - t0, 0.8)

    # --- and nothing half-queued ---------------------------------------
    def test_zz_only_accepted_records_were_queued(self):
        st, _, body = self.svc.request("GET", "/v1/stats")
        self.assertEqual(st, 200)
        total = sum(self.accepted.values())
        self.assertEqual(json.loads(body)["accepted_records_total"], total)
        wait_for(lambda: self.svc.queue()["depth"] == 0 and self.svc.queue()["in_flight"] == 0,
                 30, "the queue to drain")
        rows = int(self.svc.sql("SELECT (SELECT count(*) FROM events) + "
                                "(SELECT count(*) FROM docs)")[0][0])
        self.assertEqual(rows, total)
        self.assertTrue(self.svc.server.alive())


if __name__ == "__main__":
    harness.main()
