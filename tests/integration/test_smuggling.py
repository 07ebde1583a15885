"""The attack corpus (attacks.py) straight at the server: plain HTTP, with
bearer tokens, and over TLS. Every vector gets its refusal (the status it
names, as problem+json), exactly one response, and the connection closed;
after the queue drains, not one smuggled or refused record is in the table.
The same corpus runs through nginx in test_proxy.py."""

import json
import os
import socket
import ssl
import subprocess
import unittest

import attacks
import harness
from harness import wait_for

SINKS = """
[sink.events]
table = public.events
columns = id bigint not null, payload text not null
"""
TABLES = "CREATE TABLE events (id bigint NOT NULL, payload text NOT NULL);"
EXTRA = {"server": {"threads": "4", "request_timeout_ms": "3000", "idle_timeout_ms": "3000"}}


class CorpusMixin:
    AUTH = b""

    def connect(self):
        return socket.create_connection(("127.0.0.1", self.svc.port), timeout=10)

    def test_corpus(self):
        results = attacks.run_corpus(self.connect, self.AUTH)
        failures = []
        for r in results:
            why = []
            if r["status"] not in r["statuses"]:
                why.append("status %s, want %s" % (r["status"], r["statuses"]))
            if r["responses"] != 1:
                why.append("%d responses" % r["responses"])
            if not r["closed"]:
                why.append("connection left open")
            if why:
                failures.append("%s: %s; got %r" % (r["name"], ", ".join(why), r["head"][:120]))
        # Whatever the answers, nothing from the corpus may land.
        wait_for(lambda: self.svc.queue()["depth"] == 0 and self.svc.queue()["in_flight"] == 0,
                 30, "the queue to drain")
        landed = attacks.landed(self.svc.sql)
        names = {r["smuggled"]: r["name"] for r in results}
        names.update({r["front"]: r["name"] + " (front)" for r in results})
        if landed:
            failures.append("records landed: %s" % ["%d %s" % (i, names.get(i, "?"))
                                                     for i in landed])
        self.assertEqual(failures, [], "\n" + "\n".join(failures))
        self.assertEqual(len(results), len(attacks.VECTORS))
        self.assertTrue(self.svc.server.alive())

    def test_refusals_are_problem_json(self):
        for name in ("two different Content-Length", "obs-fold line", "missing Host"):
            r = attacks.run_corpus(self.connect, self.AUTH, only={name})[0]
            head, _, body = r["head"].partition(b"\r\n\r\n")
            self.assertIn(b"Content-Type: application/problem+json", head, name)
            self.assertIn(b"Connection: close", head, name)

    def test_case_insensitive_chunked_is_chunked(self):
        # RFC 9112: transfer-coding names are case-insensitive. The record
        # lands, and a request pipelined after the body is served too.
        body = attacks.record(4190, "chunked upper")
        req = attacks.request(attacks.chunked(body), self.AUTH,
                              framing=b"Transfer-Encoding: CHUNKED\r\n")
        req += b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n" + self.AUTH + b"Connection: close\r\n\r\n"
        s = self.connect()
        try:
            s.sendall(req)
            data, closed = attacks.read_until_close(s, 5)
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 202"), data[:200])
        self.assertEqual(data.count(b"HTTP/1.1 "), 2, data)
        self.assertIn(b"HTTP/1.1 200", data)
        self.assertTrue(closed)
        job = json.loads(data.split(b"\r\n\r\n", 1)[1].split(b"HTTP/1.1")[0])["job_id"]
        self.svc.wait_jobs([job])
        self.assertEqual(self.svc.sql("SELECT payload FROM events WHERE id = 4190"),
                         [["chunked upper"]])


class PlainCorpusTest(CorpusMixin, harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = EXTRA


class TokenCorpusTest(CorpusMixin, unittest.TestCase):
    """With a tokens file: the smuggled request carries a valid token, so
    only the framing stands between it and the table."""

    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service("tokcorpus", SINKS, TABLES, EXTRA)
        cls.addClassCleanup(cls.svc.close)
        out = cls.svc.ctl("token", "new", "--sinks", "*")
        token, line = out.stdout.splitlines()
        path = os.path.join(cls.svc.tmp, "tokens")
        with open(path, "w") as f:
            f.write(line + "\n")
        cls.AUTH = b"Authorization: Bearer %s\r\n" % token.encode()
        cls.svc.server.terminate()
        cls.svc.start_server(SPILLWAY_SERVER_TOKENS_FILE=path)
        cls.headers = {"Authorization": "Bearer " + token}
        svc = cls.svc
        plain_request = svc.request
        svc.request = lambda m, p, body=None, headers=None, **kw: plain_request(
            m, p, body, dict(cls.headers, **(headers or {})), **kw)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()


class TlsCorpusTest(CorpusMixin, unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service("tlscorpus", SINKS, TABLES, EXTRA)
        cls.addClassCleanup(cls.svc.close)
        svc = cls.svc
        cert, key = os.path.join(svc.tmp, "cert.pem"), os.path.join(svc.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=localhost", "-keyout", key, "-out", cert],
                       check=True, capture_output=True)
        svc.server.terminate()
        svc.server = harness.Daemon("server", [os.path.join(harness.BIN, "spillway-server"),
                                               "--config", svc.config],
                                    dict(svc.env, SPILLWAY_SERVER_TLS_CERT=cert,
                                         SPILLWAY_SERVER_TLS_KEY=key),
                                    os.path.join(svc.tmp, "server.log"))
        cls.ctx = ssl.create_default_context()
        cls.ctx.check_hostname = False
        cls.ctx.verify_mode = ssl.CERT_NONE
        wait_for(lambda: cls._up(), 15, "the TLS server")
        # The harness' helpers (queue, jobs) speak TLS to it from now on.
        svc.ssl_context = cls.ctx

    @classmethod
    def _up(cls):
        try:
            cls.connect(cls).close()
            return True
        except OSError:
            return False

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def connect(self):
        raw = socket.create_connection(("127.0.0.1", self.svc.port), timeout=10)
        return self.ctx.wrap_socket(raw, server_hostname="localhost")


if __name__ == "__main__":
    harness.main()
