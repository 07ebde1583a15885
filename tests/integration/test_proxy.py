"""Behind nginx, configured with deploy/nginx/spillway.conf as shipped:
the attack corpus through the proxy smuggles nothing, requests of any
shape reach the server whole and framed by Content-Length, and the client
address nginx passes is the one the server names."""

import json
import os
import socket
import time
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


class ProxyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service("proxy", SINKS, TABLES, {
            "server": {"threads": "4", "trusted_proxies": "127.0.0.1",
                       "max_connections_per_address": "0"},
            "log": {"level": "debug"}})
        cls.addClassCleanup(cls.svc.close)
        cls.nginx = harness.Nginx(cls.svc.tmp, cls.svc.port)
        cls.addClassCleanup(cls.nginx.stop)

    @classmethod
    def tearDownClass(cls):
        cls.nginx.stop()
        cls.svc.finish()

    def connect(self, source="127.0.0.1"):
        return socket.create_connection(("127.0.0.1", self.nginx.port), timeout=10,
                                        source_address=(source, 0))

    def test_corpus_through_nginx(self):
        results = attacks.run_corpus(self.connect, close_within=2.0)
        failures = []
        for r in results:
            r["all"] = [int(x.split(b" ", 2)[1]) for x in attacks.split_responses(r["got"])
                        if x.startswith(b"HTTP/1.")]
            print("  %-60s %s" % (r["name"], r["all"]))
            # Where the framing itself is ambiguous (two lengths, two
            # codings, a cut or folded head), nginx must refuse: it is the
            # first parser, and the corpus's smuggling lives there.
            if r["name"] in attacks.AMBIGUOUS and (not r["all"] or r["all"][0] < 400):
                failures.append("%s: first answer %s" % (r["name"], r["all"][:1]))
        wait_for(lambda: self.svc.queue()["depth"] == 0 and self.svc.queue()["in_flight"] == 0,
                 30, "the queue to drain")
        landed = set(attacks.landed(self.svc.sql))
        for r in results:
            # Other malformed shapes nginx may accept and pass on rebuilt
            # (bare LF, a leading blank line...): then the client was told
            # so on the wire. A record lands only with a 202 of its own:
            # the front one with the first answer, the next one with a
            # later answer. Nothing lands that no answer accounts for.
            front = r["front"] in landed
            second = r["smuggled"] in landed
            if front and (not r["all"] or r["all"][0] != 202):
                failures.append("%s: the front record landed after %s" % (r["name"], r["all"]))
            if second and 202 not in r["all"][1:]:
                failures.append("%s: the second record landed after %s" % (r["name"], r["all"]))
            if r["all"].count(202) != front + second:
                failures.append("%s: %d 202s but %d records" % (r["name"], r["all"].count(202),
                                                                 front + second))
        self.assertEqual(failures, [], "\n".join(failures))
        self.assertEqual(len(results), len(attacks.VECTORS))
        self.assertTrue(self.svc.server.alive())

    def test_chunked_and_slow_bodies_arrive_whole(self):
        body = json.dumps([{"id": 9001, "payload": "chunked via nginx"}]).encode()
        s = self.connect()
        try:
            s.sendall(b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                      b"application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
            for i in range(0, len(body), 5):
                piece = body[i:i + 5]
                s.sendall(b"%x\r\n%s\r\n" % (len(piece), piece))
                time.sleep(0.02)
            s.sendall(b"0\r\n\r\nGET /v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, closed = attacks.read_until_close(s, 10)
        finally:
            s.close()
        answers = attacks.split_responses(data)
        self.assertEqual(len(answers), 2, data)
        self.assertTrue(answers[0].startswith(b"HTTP/1.1 202"), answers[0])
        job = json.loads(answers[0].split(b"\r\n\r\n", 1)[1])["job_id"]
        self.svc.wait_jobs([job])
        self.assertEqual(self.svc.sql("SELECT payload FROM events WHERE id = 9001"),
                         [["chunked via nginx"]])

    def test_client_address_is_passed(self):
        # From 127.0.0.7 through nginx (at 127.0.0.1, a trusted proxy): the
        # server names 127.0.0.7.
        s = self.connect("127.0.0.7")
        try:
            s.sendall(b"GET /v1/nosuch-7 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            data, _ = attacks.read_until_close(s, 5)
        finally:
            s.close()
        self.assertTrue(data.startswith(b"HTTP/1.1 404"), data[:100])
        wait_for(lambda: 'client=127.0.0.7 method=GET path="/v1/nosuch-7"' in
                 self.svc.server.output(), 5, "the refusal logged with the client's address")
        # A client that claims an address itself is not believed: only a
        # trusted peer's header counts, and nginx replaces it.
        s = self.connect("127.0.0.8")
        try:
            s.sendall(b"GET /v1/nosuch-8 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\n"
                      b"Connection: close\r\n\r\n")
            attacks.read_until_close(s, 5)
        finally:
            s.close()
        wait_for(lambda: 'path="/v1/nosuch-8"' in self.svc.server.output(), 5, "the log line")
        self.assertIn('client=127.0.0.8 method=GET path="/v1/nosuch-8"', self.svc.server.output())
        # Straight to the server, the header is not believed either when the
        # peer is not a trusted proxy... (127.0.0.1 is trusted here, so the
        # direct check uses another source address.)
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=10,
                                      source_address=("127.0.0.9", 0)) as d:
            d.sendall(b"GET /v1/nosuch-9 HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 10.9.9.9\r\n"
                      b"Connection: close\r\n\r\n")
            attacks.read_until_close(d, 5)
        wait_for(lambda: 'path="/v1/nosuch-9"' in self.svc.server.output(), 5, "the log line")
        self.assertIn('client=127.0.0.9 method=GET path="/v1/nosuch-9"', self.svc.server.output())


class Ipv6ProxyTest(unittest.TestCase):
    """A proxy on IPv6: trusted by its full address (the per-address caps
    key IPv6 by its /64, trust does not)."""

    def test_trusted_ipv6_proxy(self):
        try:
            socket.socket(socket.AF_INET6).bind(("::1", 0))
        except OSError:
            self.skipTest("no IPv6 loopback")
        svc = harness.Service("proxy6", SINKS, TABLES, {"log": {"level": "debug"}},
                              flusher=False)
        try:
            port = harness.free_port()
            server = harness.Daemon(
                "server6", [os.path.join(harness.BIN, "spillway-server"), "--config", svc.config],
                dict(svc.env, SPILLWAY_SERVER_LISTEN="[::1]:%d" % port,
                     SPILLWAY_SERVER_TRUSTED_PROXIES="::1"),
                os.path.join(svc.tmp, "server6.log"))

            def ask(path, xff):
                s = socket.create_connection(("::1", port), timeout=5)
                try:
                    s.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: %s\r\n"
                              b"Connection: close\r\n\r\n" % (path, xff))
                    return attacks.read_until_close(s, 5)[0]
                finally:
                    s.close()

            def up():
                try:
                    return ask(b"/healthz", b"10.0.0.1").startswith(b"HTTP/1.1 200")
                except OSError:
                    return False
            wait_for(up, 15, "the IPv6 server")
            self.assertTrue(ask(b"/v1/nosuch-6", b"10.1.2.3, 10.4.5.6").startswith(b"HTTP/1.1 404"))
            wait_for(lambda: 'client=10.4.5.6 method=GET path="/v1/nosuch-6"' in server.output(),
                     5, "the proxy's client named in the log")
            self.assertEqual(server.terminate(), 0)
        finally:
            svc.finish()


if __name__ == "__main__":
    harness.main()
