"""Never starve: with a thousand idle sockets, slow heads and idle
keep-alive connections held open, a well-behaved client and the health
checks are answered within 100 ms; one address cannot take more than its
share; a full server makes room by closing idle connections; when every
API worker is stuck, probes still answer and the wait is logged. All on
loopback, bounded in count and time; the sockets are the test's own."""

import json
import resource
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
"""
TABLES = "CREATE TABLE events (id bigint NOT NULL, payload text NOT NULL);"
IDLE = 1000          # idle sockets, 100 from each of 10 addresses
SLOW = 200           # heads that never finish
KEEPALIVE = 100      # connections idle after one request each


def raise_nofile(want):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(want, hard), hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def timed_request(port, raw, source="127.0.0.1"):
    """(seconds, first line) for one request on a new connection."""
    t0 = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10,
                                  source_address=(source, 0)) as s:
        s.sendall(raw)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
    return time.monotonic() - t0, data.split(b"\r\n", 1)[0]


def post(n):
    body = json.dumps({"id": n, "payload": "patient"}).encode()
    return (b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
            b"application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(body)
            + body)


GET_HEALTHZ = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
GET_READYZ = b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


class StarvationTest(unittest.TestCase):
    """The default connection settings, and only 4 API workers."""

    @classmethod
    def setUpClass(cls):
        if raise_nofile(IDLE + SLOW + KEEPALIVE + 600) < IDLE + SLOW + KEEPALIVE + 400:
            raise unittest.SkipTest("not enough file descriptors for this test")
        cls.svc = harness.Service("starve", SINKS, TABLES, {
            "server": {"threads": "4", "header_timeout_ms": "3000"}})
        cls.addClassCleanup(cls.svc.close)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def open_many(self, n, source, send=b""):
        socks = []
        for _ in range(n):
            s = socket.create_connection(("127.0.0.1", self.svc.port), timeout=10,
                                         source_address=(source, 0))
            if send:
                s.sendall(send)
            socks.append(s)
        return socks

    def metric(self, name):
        text = self.svc.request("GET", "/metrics")[2].decode()
        for line in text.splitlines():
            if line.startswith(name + " ") or line.startswith(name + "{"):
                return float(line.rsplit(" ", 1)[1])
        return None

    def test_1_thousand_idle_sockets_starve_nobody(self):
        held = []
        try:
            for a in range(10):
                held += self.open_many(IDLE // 10, "127.0.0.%d" % (20 + a))
            held += self.open_many(SLOW, "127.0.0.40",
                                   b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\n")
            for s in self.open_many(KEEPALIVE, "127.0.0.41"):
                s.sendall(b"GET /v1/queue HTTP/1.1\r\nHost: x\r\n\r\n")
                held.append(s)
            for s in held[-KEEPALIVE:]:
                self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
            wait_for(lambda: (self.metric('spillway_http_connections') or 0) >=
                     IDLE + SLOW + KEEPALIVE, 10, "every socket to be accepted")
            # Meanwhile: new clients, writes and probes, one at a time.
            times = {"post": [], "healthz": [], "readyz": []}
            for i in range(20):
                t, line = timed_request(self.svc.port, post(10000 + i))
                self.assertTrue(line.startswith(b"HTTP/1.1 202"), line)
                times["post"].append(t)
                t, line = timed_request(self.svc.port, GET_HEALTHZ)
                self.assertTrue(line.startswith(b"HTTP/1.1 200"), line)
                times["healthz"].append(t)
                t, line = timed_request(self.svc.port, GET_READYZ)
                self.assertTrue(line.startswith(b"HTTP/1.1 200"), line)
                times["readyz"].append(t)
            for what, ts in times.items():
                ts.sort()
                print("  %s with %d sockets held: median %.1f ms, max %.1f ms" %
                      (what, len(held), 1000 * ts[len(ts) // 2], 1000 * ts[-1]))
                self.assertLess(ts[-1], 0.100, (what, ts))
            # The slow heads get their 408 at header_timeout_ms (3 s).
            for s in held[IDLE:IDLE + SLOW]:
                s.settimeout(10)
                self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 408"))
        finally:
            for s in held:
                s.close()
        self.assertGreaterEqual(self.metric("spillway_http_timeouts_total"), SLOW)

    def test_2_one_address_gets_its_share(self):
        # Default max_connections_per_address is 256.
        held = self.open_many(256, "127.0.0.50")
        try:
            before = self.metric('spillway_http_connections_refused_total{reason="per_address"}')
            for _ in range(5):
                t, line = timed_request(self.svc.port, GET_HEALTHZ, "127.0.0.50")
                self.assertTrue(line.startswith(b"HTTP/1.1 429"), line)
            after = self.metric('spillway_http_connections_refused_total{reason="per_address"}')
            self.assertEqual(after - before, 5)
            # Another address is served at once.
            t, line = timed_request(self.svc.port, GET_HEALTHZ, "127.0.0.51")
            self.assertTrue(line.startswith(b"HTTP/1.1 200"), line)
            self.assertLess(t, 0.100)
        finally:
            for s in held:
                s.close()
        # Closing gives the address its share back.
        wait_for(lambda: timed_request(self.svc.port, GET_HEALTHZ, "127.0.0.50")[1]
                 .startswith(b"HTTP/1.1 200"), 5, "the address to be served again")


class BodyBudgetTest(unittest.TestCase):
    """Bodies being received count against the server's budget (here 8 MiB)
    and one address may hold an eighth of it: an address that sends half
    of many large bodies and stops gets 503 for the rest, and everyone else
    is served, probes included."""

    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service("budget", SINKS, TABLES, {
            "server": {"threads": "2", "max_body_bytes": "262144",
                       "max_body_buffer_bytes": str(8 << 20), "request_timeout_ms": "5000"}},
            flusher=False)
        cls.addClassCleanup(cls.svc.close)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def test_one_address_holds_its_share(self):
        held, refused = [], 0
        try:
            for _ in range(8):
                s = socket.create_connection(("127.0.0.1", self.svc.port), timeout=10,
                                             source_address=("127.0.0.70", 0))
                s.sendall(b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\nContent-Type: "
                          b"application/json\r\nContent-Length: 262144\r\n\r\n[" +
                          b" " * 140000)
                held.append(s)
            time.sleep(0.5)
            for s in held:
                s.settimeout(0.2)
                try:
                    data = s.recv(65536)
                except socket.timeout:
                    continue
                self.assertTrue(data.startswith(b"HTTP/1.1 503"), data[:100])
                self.assertIn(b"server-busy", data)
                refused += 1
            # Each half body holds a 256 KiB buffer: 4 fit in 1 MiB.
            self.assertEqual(refused, 4)
            # Another address: probes and writes as usual.
            t, line = timed_request(self.svc.port, GET_HEALTHZ, "127.0.0.71")
            self.assertTrue(line.startswith(b"HTTP/1.1 200"), line)
            t, line = timed_request(self.svc.port, post(40001), "127.0.0.71")
            self.assertTrue(line.startswith(b"HTTP/1.1 202"), line)
        finally:
            for s in held:
                s.close()


class PipelineTest(unittest.TestCase):
    """Tens of thousands of pipelined requests on one connection, with a
    1 MiB head buffer: answered in order, without the I/O thread going
    deeper per request (it once recursed and overflowed its stack), and
    without holding up other clients meanwhile."""

    N = 30000

    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service("pipeline", SINKS, TABLES, {
            "server": {"threads": "2", "max_header_bytes": "1048576"}}, flusher=False)
        cls.addClassCleanup(cls.svc.close)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def test_deep_pipeline(self):
        first = b"GET /healthz HTTP/1.1\r\nHost: a\r\nX-Pad: " + b"a" * 900000 + b"\r\n\r\n"
        tiny = b"GET /healthz HTTP/1.1\r\nHost:\r\n\r\n"
        data = first + tiny * self.N
        got = bytearray()
        s = socket.create_connection(("127.0.0.1", self.svc.port), timeout=30)
        done = threading.Event()

        def reader():
            while got.count(b"HTTP/1.1 200") < self.N + 1:
                chunk = s.recv(1 << 20)
                if not chunk:
                    break
                got.extend(chunk)
            done.set()
        t = threading.Thread(target=reader)
        t.start()
        try:
            s.sendall(data)
            # Meanwhile another client is answered at once.
            slowest = max(timed_request(self.svc.port, GET_HEALTHZ)[0] for _ in range(10))
            self.assertTrue(done.wait(120), "only %d answers" % got.count(b"HTTP/1.1 200"))
        finally:
            s.close()
            t.join(10)
        self.assertEqual(got.count(b"HTTP/1.1 200 OK\r\n"), self.N + 1)
        self.assertLess(slowest, 0.100)
        self.assertTrue(self.svc.server.alive())


class FullServerTest(unittest.TestCase):
    """A small server: 64 connections, 1 API worker."""

    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service("full", SINKS, TABLES, {
            "server": {"threads": "1", "max_connections": "64", "header_timeout_ms": "3000",
                       "max_connections_per_address": "0"},
            "redis": {"timeout_ms": "500"}})
        cls.addClassCleanup(cls.svc.close)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def metric(self, name):
        text = self.svc.request("GET", "/metrics")[2].decode()
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.rsplit(" ", 1)[1])
        return None

    def test_idle_connections_make_room(self):
        held = []
        try:
            for _ in range(64):
                s = socket.create_connection(("127.0.0.1", self.svc.port), timeout=10)
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
                self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200"))
                held.append(s)
            # All 64 slots hold idle keep-alive connections: a new client
            # is served, the longest-idle one is closed for it.
            t, line = timed_request(self.svc.port, post(20001))
            self.assertTrue(line.startswith(b"HTTP/1.1 202"), line)
            self.assertLess(t, 0.100)
            held[0].settimeout(5)
            self.assertEqual(held[0].recv(100), b"")
            # Every slot mid-request (heads that never end): refused with
            # 503 at once, not left waiting.
            for s in held:
                s.close()
            held = []
            # Until the server has closed them all (its side lingers a moment).
            wait_for(lambda: self.metric('spillway_http_connections{listener="api"}') == 1, 10,
                     "the old connections to be closed")
            def open_partial():
                s = socket.create_connection(("127.0.0.1", self.svc.port), timeout=10)
                s.sendall(b"GET /healthz HTTP/1.1\r\n")
                return s
            held = [open_partial() for _ in range(64)]
            # Each must hold its slot: one that came while another was
            # still closing was turned away (503); it tries again.
            for _ in range(20):
                time.sleep(0.1)
                turned_away = []
                for i, s in enumerate(held):
                    s.setblocking(False)
                    try:
                        if s.recv(100).startswith(b"HTTP/1.1 503"):
                            turned_away.append(i)
                    except BlockingIOError:
                        pass
                    s.setblocking(True)
                for i in turned_away:
                    held[i].close()
                    held[i] = open_partial()
                if not turned_away:
                    break
            t, line = timed_request(self.svc.port, GET_HEALTHZ)
            self.assertTrue(line.startswith(b"HTTP/1.1 503"), line)
            self.assertLess(t, 0.100)
            self.assertIn("connection refused: server full", self.svc.server.output())
        finally:
            for s in held:
                s.close()

    def test_stuck_workers_leave_probes_alone(self):
        """Redis stops answering (SIGSTOP): writes do not hold the one API
        worker (the Redis lane answers them, 503 after its timeout), reads
        of Redis do: later ones queue for it. /healthz still answers at
        once, the wait is logged and counted, and every request gets its
        503."""
        import signal
        results = []
        get_queue = b"GET /v1/queue HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

        def write(n):
            results.append(timed_request(self.svc.port, post(30000 + n)))

        def read(n):
            results.append(timed_request(self.svc.port, get_queue))
        self.svc.redis.proc.send_signal(signal.SIGSTOP)
        try:
            clients = ([threading.Thread(target=write, args=(i,)) for i in range(4)] +
                       [threading.Thread(target=read, args=(i,)) for i in range(4)])
            for w in clients:
                w.start()
            time.sleep(0.3)
            for _ in range(5):
                t, line = timed_request(self.svc.port, GET_HEALTHZ)
                self.assertTrue(line.startswith(b"HTTP/1.1 200"), line)
                self.assertLess(t, 0.100)
            for w in clients:
                w.join(30)
        finally:
            self.svc.redis.proc.send_signal(signal.SIGCONT)
        self.assertEqual(len(results), 8)
        for t, line in results:
            self.assertTrue(line.startswith(b"HTTP/1.1 503"), line)
        wait_for(lambda: "requests waited for a worker" in self.svc.server.output(), 5,
                 "the wait to be logged")
        metrics = self.svc.request("GET", "/metrics")[2].decode()
        self.assertRegex(metrics, r'spillway_http_requests_waited_total\{pool="api"\} [1-9]')
        self.assertRegex(metrics, r'spillway_http_workers\{pool="api"\} 1')
        self.assertRegex(metrics, r'spillway_http_workers_busy\{pool="api"\} 0')


if __name__ == "__main__":
    harness.main()
