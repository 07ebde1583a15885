"""The HTTP API against a running server and a real Redis: statuses,
bodies, headers, and that no failed request enqueues anything."""

import json
import os
import re
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS = """
[sink.orders]
table = public.orders
mode = upsert
key = id
columns = id bigint not null, customer text not null, total numeric, tags jsonb, placed_at timestamptz
"""
TABLES = """
CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric(12,2),
                     tags jsonb, placed_at timestamptz);
"""
RFC3339 = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


class ApiTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = {"server": {"max_body_bytes": "4096", "max_records_per_request": "50"}}
    FLUSHER = False   # keep the queue still, so "nothing enqueued" is observable

    def queued(self):
        """(jobs in the queue list, job statuses) straight from Redis."""
        jobs = self.svc.llen("queue")
        return jobs, self.svc.status_entries()

    def assertProblem(self, resp, status, needle):
        code, headers, body = resp
        self.assertEqual(code, status, body)
        self.assertEqual(headers["content-type"], "application/problem+json")
        p = json.loads(body)
        self.assertEqual(p["status"], status)
        self.assertTrue(p["type"].startswith("urn:spillway:problem:"), p)
        self.assertTrue(p["title"])
        self.assertIn(needle, p["detail"])
        return p, headers

    def test_1_accept_and_status(self):
        before = self.queued()
        code, headers, body = self.svc.post("orders", [
            {"id": 1, "customer": "ann", "total": "12.50", "tags": {"vip": True},
             "placed_at": "2026-01-31T12:00:00Z"},
            {"id": 2, "customer": "bob"}])
        self.assertEqual(code, 202, body)
        j = json.loads(body)
        self.assertEqual(j["status"], "queued")
        self.assertEqual(j["records"], 2)
        self.assertRegex(j["job_id"], r"^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        self.assertEqual(headers["location"], "/v1/jobs/" + j["job_id"])
        self.assertEqual(self.queued(), (before[0] + 1, before[1] + 1))

        code, job = self.svc.job(j["job_id"])
        self.assertEqual(code, 200)
        self.assertEqual(job["status"], "queued")
        self.assertEqual(job["sink"], "orders")
        self.assertEqual(job["records"], 2)
        self.assertRegex(job["enqueued_at"], RFC3339)
        self.assertNotIn("committed_at", job)

        # NDJSON: one record per line, blank lines ignored.
        code, _, body = self.svc.post("orders", '{"id":3,"customer":"c"}\n\n{"id":4,"customer":"d"}\n',
                                      ctype="application/x-ndjson")
        self.assertEqual(code, 202, body)
        self.assertEqual(json.loads(body)["records"], 2)

        q = self.svc.queue()
        self.assertGreaterEqual(q["depth"], 4)
        self.assertEqual(q["in_flight"], 0)
        self.assertGreater(q["oldest_age_seconds"], 0)

    def test_2_errors_enqueue_nothing(self):
        before = self.queued()
        post = self.svc.post
        p, _ = self.assertProblem(post("orders", '{"id": 1, "customer": }'), 400, "line 1, column")
        self.assertProblem(post("orders", '{"id":1,"customer":"a"}\n{"id":2,', ctype="application/x-ndjson"),
                           400, "line 2,")
        self.assertProblem(post("nosuch", {"id": 1}), 404, 'no sink named "nosuch"')
        self.assertProblem(post("orders", {"id": 1, "customer": "x"}, ctype="text/csv"), 415,
                           "application/json")
        self.assertProblem(post("orders", "x" * 5000), 413, "limit of 4096 bytes")
        self.assertProblem(post("orders", [{"id": i, "customer": "x"} for i in range(51)]), 413,
                           "at most 50 records")
        # 422s name the record, the field and what was expected; one bad
        # record refuses the whole job.
        self.assertProblem(post("orders", [{"id": 1, "customer": "a"}, {"id": "2", "customer": "b"}]),
                           422, 'record 1, field "id": expected an integer, got a string')
        self.assertProblem(post("orders", [{"id": 1}]), 422,
                           'record 0: missing field "customer" (column is not null)')
        self.assertProblem(post("orders", [{"id": 1, "customer": "a", "colour": "red"}]), 422,
                           'record 0: unknown field "colour"')
        self.assertProblem(post("orders", [{"id": 1, "customer": None}]), 422,
                           "null is not allowed")
        self.assertProblem(post("orders", [{"id": 1, "customer": "a", "placed_at": "2026-01-31"}]),
                           422, "RFC 3339")
        self.assertProblem(post("orders", [{"id": 1, "customer": "a", "total": True}]), 422,
                           "decimal string")
        p, headers = self.assertProblem(self.svc.request("GET", "/v1/sinks/orders/records"), 405,
                                        "only POST")
        self.assertEqual(headers["allow"], "POST, DELETE")
        self.assertProblem(self.svc.request("DELETE", "/v1/queue"), 405, "only GET")
        self.assertEqual(self.queued(), before)

    def test_3_length_required(self):
        before = self.queued()
        with socket.create_connection(("127.0.0.1", self.svc.port), timeout=5) as s:
            s.sendall(b"POST /v1/sinks/orders/records HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Type: application/json\r\nConnection: close\r\n\r\n")
            data = harness.read_until_close(s)
        self.assertTrue(data.startswith(b"HTTP/1.1 411"), data[:200])
        self.assertIn(b"application/problem+json", data)
        self.assertIn(b"Content-Length", data.split(b"\r\n\r\n")[0])
        self.assertEqual(self.queued(), before)

    def test_4_chunked_body(self):
        conn = harness.http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=10)
        body = [b'[{"id": 10, "customer": "chunky"},', b'{"id": 11, "customer": "bits"}]']
        conn.request("POST", "/v1/sinks/orders/records", body=iter(body),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 202)
        self.assertEqual(json.loads(resp.read())["records"], 2)
        conn.close()
        # ...and a chunked body over the limit is refused while reading.
        conn = harness.http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=10)
        before = self.queued()
        conn.request("POST", "/v1/sinks/orders/records", body=iter([b"[" + b" " * 3000, b" " * 3000 + b"]"]),
                     headers={"Content-Type": "application/json"}, encode_chunked=True)
        resp = conn.getresponse()
        self.assertEqual(resp.status, 413)
        conn.close()
        self.assertEqual(self.queued(), before)

    def test_5_unknown_job_and_routes(self):
        self.assertProblem(self.svc.request("GET", "/v1/jobs/0190a0e4-7b8c-7abc-8123-456789abcdef"),
                           404, "no job with this id")
        self.assertProblem(self.svc.request("GET", "/v1/jobs/not-an-id"), 404, "no job with this id")
        self.assertProblem(self.svc.request("GET", "/nope"), 404, "no such resource")
        code, _, body = self.svc.request("GET", "/healthz")
        self.assertEqual((code, json.loads(body)["status"]), (200, "ok"))
        code, _, body = self.svc.request("GET", "/readyz")
        self.assertEqual((code, json.loads(body)["status"]), (200, "ready"))

    def test_6_metrics(self):
        self.svc.post_ok("orders", {"id": 99, "customer": "m"})
        code, headers, body = self.svc.request("GET", "/metrics")
        self.assertEqual(code, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        m = re.search(r'^spillway_http_requests_total\{route="/v1/sinks/\{sink\}/records",code="202"\} (\d+)$',
                      text, re.M)
        self.assertIsNotNone(m, text)
        self.assertGreaterEqual(int(m.group(1)), 1)
        self.assertRegex(text, r'(?m)^spillway_http_requests_total\{route="/v1/sinks/\{sink\}/records",code="422"\} [1-9]')
        self.assertRegex(text, r'(?m)^spillway_jobs_accepted_total\{sink="orders"\} [1-9]')
        self.assertRegex(text, r'(?m)^spillway_records_accepted_total\{sink="orders"\} [1-9]')
        depth = int(re.search(r"(?m)^spillway_queue_depth_records (\d+)", text).group(1))
        self.assertEqual(depth, self.svc.queue()["depth"])

    def test_7_config_errors_stop_startup(self):
        bad = os.path.join(self.svc.tmp, "bad.ini")
        cases = [
            ("[server]\nthreads = lots\n", 'bad.ini:2: [server] threads = "lots"'),
            ("[sink.x]\ntable = t\n", "[sink.x] has no columns"),
            ("[server]\nlisten = 127.0.0.1:1\nnope = 1\n", 'bad.ini:3: unknown key "nope" in [server]'),
        ]
        for text, want in cases:
            with open(bad, "w") as f:
                f.write(text)
            for prog in ("spillway-server", "spillway-flusher", "spillwayctl"):
                args = [os.path.join(harness.BIN, prog), "--config", bad] + (
                    ["queue"] if prog == "spillwayctl" else [])
                out = harness.subprocess.run(args, capture_output=True, text=True, timeout=10)
                self.assertEqual(out.returncode, 2, (prog, out.stderr))
                self.assertIn(want, out.stderr, prog)
        out = harness.subprocess.run([os.path.join(harness.BIN, "spillway-server"), "--config",
                                      "/nonexistent.ini"], capture_output=True, text=True, timeout=10)
        self.assertEqual(out.returncode, 2)
        self.assertIn("/nonexistent.ini: cannot open", out.stderr)

    def test_8_idempotency_keys(self):
        body = [{"id": 700, "customer": "idem"}]
        key = {"Idempotency-Key": "order-700:v1"}
        before = self.queued()
        code, h1, b1 = self.svc.post("orders", body, headers=key)
        self.assertEqual(code, 202, b1)
        code, h2, b2 = self.svc.post("orders", body, headers=key)
        self.assertEqual(code, 200, b2)
        self.assertEqual(b2, b1)
        self.assertEqual(h2["location"], h1["location"])
        self.assertEqual(self.queued(), (before[0] + 1, before[1] + 1))
        p, _ = self.assertProblem(self.svc.post("orders", [{"id": 701, "customer": "other"}],
                                                headers=key), 409, "already used for a different request")
        self.assertProblem(self.svc.post("orders", body, headers={"Idempotency-Key": "has space"}),
                           400, "Idempotency-Key is 1 to 200 characters")
        self.assertEqual(self.queued(), (before[0] + 1, before[1] + 1))
        # Media types compare in any case, parameters aside: the same request.
        code, _, b3 = self.svc.post("orders", body, ctype="Application/JSON; charset=utf-8",
                                    headers=key)
        self.assertEqual((code, b3), (200, b1))
        self.assertEqual(self.queued(), (before[0] + 1, before[1] + 1))

        # Racing repeats of one key make one job.
        import threading
        results = []
        racing = {"Idempotency-Key": "race-1"}

        def go():
            results.append(self.svc.post("orders", [{"id": 702, "customer": "race"}], headers=racing))
        threads = [threading.Thread(target=go) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        codes = sorted(r[0] for r in results)
        self.assertEqual(codes, [200] * 7 + [202])
        self.assertEqual(len({json.loads(r[2])["job_id"] for r in results}), 1)
        self.assertEqual(self.queued(), (before[0] + 2, before[1] + 2))

    def test_90_redis_too_slow_is_503_within_timeout(self):
        """A Redis that accepts connections but never answers (SIGSTOP):
        POST answers 503 within about twice [redis] timeout_ms (500 ms
        here: the group on the wire, then ours), never hangs, and says the
        job may have been queued; the same Idempotency-Key then makes it
        one job."""
        import signal as sig
        before = self.svc.queue()["depth"]
        key = {"Idempotency-Key": "stopped-redis-1"}
        body = [{"id": 3, "customer": "s"}]
        os.kill(self.svc.redis.proc.pid, sig.SIGSTOP)
        try:
            for i in range(3):
                t0 = time.monotonic()
                p, headers = self.assertProblem(self.svc.post("orders", body, headers=key),
                                                503, "Redis")
                self.assertLess(time.monotonic() - t0, 1.5)
                self.assertEqual(headers["retry-after"], "1")
                if i == 0:
                    # The script sat in the stopped Redis' socket: it may run.
                    self.assertEqual(p["type"], "urn:spillway:problem:redis-timeout")
                    self.assertIn("may have been queued", p["detail"])
                    self.assertIn("same Idempotency-Key", p["detail"])
        finally:
            os.kill(self.svc.redis.proc.pid, sig.SIGCONT)
        got = harness.wait_for(lambda: self.svc.post("orders", body, headers=key)[0] in (200, 202)
                               and "ok", 5, "the repeat to be answered after Redis woke")
        self.assertEqual(got, "ok")
        # Whatever ran when Redis woke, the key made it one job.
        self.assertEqual(self.svc.queue()["depth"], before + 1)

    def test_9_redis_down_is_503_fast(self):
        self.svc.redis.stop()
        try:
            t0 = time.monotonic()
            p, headers = self.assertProblem(self.svc.post("orders", {"id": 1, "customer": "x"}), 503,
                                            "Redis is not reachable")
            self.assertLess(time.monotonic() - t0, 2.0)
            self.assertEqual(headers["retry-after"], "1")
            self.assertProblem(self.svc.request("GET", "/readyz"), 503, "Redis")
            self.assertProblem(self.svc.request("GET", "/v1/queue"), 503, "Redis")
        finally:
            self.svc.redis.start()
        # It reconnects by itself.
        harness.wait_for(lambda: self.svc.post("orders", {"id": 5, "customer": "y"})[0] == 202, 5,
                         "POST to succeed after Redis came back")
        # A worker retries a failed connect at most every 100 ms; past that,
        # every worker's stale connection is replaced without a failed read.
        time.sleep(0.2)
        for _ in range(20):
            self.assertEqual(self.svc.request("GET", "/readyz")[0], 200)
            self.assertEqual(self.svc.request("GET", "/v1/queue")[0], 200)


class GroupedRepeatsTest(harness.ServiceTest):
    """Repeats of one Idempotency-Key that reach Redis in one group of the
    server's lane still make one job: Redis is held silent (a stalled
    fault proxy) while they gather behind the call on the wire."""
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False
    PROXIES = True

    def test_repeats_in_one_group(self):
        import threading
        before = self.svc.queue()["depth"]
        key = {"Idempotency-Key": "grouped-1"}
        results = []

        def go():
            results.append(self.svc.post("orders", [{"id": 801, "customer": "g"}], headers=key))
        self.svc.redis_proxy.stall(True)
        # An unrelated job holds the lane on the wire; the repeats gather.
        other = threading.Thread(target=lambda: results.append(
            self.svc.post("orders", [{"id": 800, "customer": "o"}])))
        threads = [threading.Thread(target=go) for _ in range(6)]
        try:
            other.start()
            time.sleep(0.05)
            for t in threads:
                t.start()
            time.sleep(0.25)   # inside [redis] timeout_ms (500 ms)
        finally:
            self.svc.redis_proxy.stall(False)
        for t in [other] + threads:
            t.join()
        keyed = [r for r in results if b'"records":1' in r[2] and r[0] in (200, 202)]
        self.assertEqual(sorted(r[0] for r in results), [200] * 5 + [202] * 2, results)
        self.assertEqual(len({json.loads(r[2])["job_id"] for r in keyed}), 2)
        self.assertEqual(self.svc.queue()["depth"], before + 2)


class PersistenceTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False

    def test_durability_reported_and_eviction_refused(self):
        # The main thread reads Redis' persistence once it runs (with
        # shards, every shard's): ready may come a moment before.
        harness.wait_for(lambda: "redis" in json.loads(self.svc.request("GET", "/readyz")[2]),
                         10, "the persistence settings read")
        code, _, body = self.svc.request("GET", "/readyz")
        redis = json.loads(body)["redis"]
        self.assertEqual(code, 200)
        self.assertEqual((redis["appendonly"], redis["maxmemory_policy"]), ("no", "noeviction"))
        self.assertIn("AOF is off", redis["durability"])
        code, _, text = self.svc.request("GET", "/metrics")
        self.assertIn('spillway_redis_persistence_info{appendonly="no",appendfsync="everysec",'
                      'maxmemory_policy="noeviction"} 1', text.decode())

        self.svc.redis.cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru")
        try:
            # A server will not start on it...
            out = harness.subprocess.run([os.path.join(harness.BIN, "spillway-server"), "--config",
                                          self.svc.config], env=dict(self.svc.env,
                                          SPILLWAY_SERVER_LISTEN="127.0.0.1:%d" % harness.free_port()),
                                         capture_output=True, text=True, timeout=20)
            self.assertEqual(out.returncode, 1)
            self.assertIn("redis may evict queued jobs", out.stderr)
            self.assertIn("maxmemory_policy=allkeys-lru", out.stderr)
            # ...and a running one stops accepting once it sees it.
            harness.wait_for(lambda: self.svc.post("orders", {"id": 1, "customer": "x"})[0] == 503,
                             10, "POST to be refused")
            depth = self.svc.queue()["depth"]
            p = json.loads(self.svc.post("orders", {"id": 1, "customer": "x"})[2])
            self.assertIn("maxmemory-policy noeviction", p["detail"])
            self.assertEqual(self.svc.request("GET", "/readyz")[0], 503)
            self.assertEqual(self.svc.queue()["depth"], depth)   # refused: nothing queued
        finally:
            self.svc.redis.cli("CONFIG", "SET", "maxmemory-policy", "noeviction")
        harness.wait_for(lambda: self.svc.post("orders", {"id": 2, "customer": "x"})[0] == 202,
                         10, "POST to be accepted again")


    def test_oom_is_503_never_202(self):
        used = int([l.split(":")[1] for l in self.svc.redis.cli("INFO", "memory").splitlines()
                    if l.startswith("used_memory:")][0])
        self.svc.redis.cli("CONFIG", "SET", "maxmemory", str(used + 200_000))
        try:
            big = [{"id": i, "customer": "x" * 900} for i in range(100)]   # ~95 KB a job
            codes = [self.svc.post("orders", big)[0] for _ in range(10)]
            self.assertIn(503, codes)
            self.assertEqual(set(codes) - {202, 503}, set())
            depth = self.svc.queue()["depth"]
            code, _, body = self.svc.post("orders", big)
            self.assertEqual(code, 503)
            p = json.loads(body)
            self.assertEqual(p["type"], "urn:spillway:problem:redis-out-of-memory")
            self.assertEqual(self.svc.queue()["depth"], depth)
        finally:
            self.svc.redis.cli("CONFIG", "SET", "maxmemory", "0")

    def test_readiness_means_writable(self):
        # A Redis that answers PING but refuses writes (a replica of a
        # master that is not there) is not ready, and the answers say why.
        depth = self.svc.queue()["depth"]
        self.assertEqual(self.svc.redis.cli("REPLICAOF", "127.0.0.1", str(harness.free_port())),
                         "OK")
        try:
            self.assertEqual(self.svc.redis.cli("PING"), "PONG")
            p, headers = ApiTest.assertProblem(self, self.svc.request("GET", "/readyz"), 503, "READONLY")
            self.assertEqual(p["type"], "urn:spillway:problem:not-ready")
            self.assertEqual(headers["retry-after"], "1")
            p, _ = ApiTest.assertProblem(self, self.svc.post("orders", {"id": 1, "customer": "x"}), 503,
                                      "READONLY")
            self.assertEqual(p["type"], "urn:spillway:problem:redis-refused")
            self.assertIn("nothing was queued", p["detail"])
        finally:
            self.assertEqual(self.svc.redis.cli("REPLICAOF", "NO", "ONE"), "OK")
        harness.wait_for(lambda: self.svc.request("GET", "/readyz")[0] == 200, 10, "ready again")
        self.assertEqual(self.svc.queue()["depth"], depth)
        # An unknown script command (the scripts flushed) is loaded again:
        # still ready, and writes go on.
        self.svc.redis.cli("SCRIPT", "FLUSH")
        self.assertEqual(self.svc.request("GET", "/readyz")[0], 200)
        self.assertEqual(self.svc.post("orders", {"id": 2, "customer": "x"})[0], 202)


class BackpressureTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = {"server": {"max_queue_records": "10"}}
    FLUSHER = False

    def test_429_above_the_high_water_mark(self):
        # With shards, each shard takes its share, ceil(10 / N): the first
        # full shard turns its jobs away.
        n = self.svc.shards
        share = -(-10 // n) if n else 10
        accepted = 0
        for i in range(100):
            code, headers, body = self.svc.post("orders", {"id": i, "customer": "x"})
            if code != 202:
                break
            accepted += 1
        if n:
            self.assertGreaterEqual(accepted, share)
            self.assertLessEqual(accepted, n * share)
        else:
            self.assertEqual(accepted, 10)
        self.assertEqual(code, 429, body)
        self.assertEqual(headers["retry-after"], "1")
        self.assertEqual(headers["content-type"], "application/problem+json")
        self.assertIn("max_queue_records", json.loads(body)["detail"])
        self.assertEqual(self.svc.queue()["depth"], accepted)
        code, _, text = self.svc.request("GET", "/metrics")
        self.assertRegex(text.decode(), r'(?m)^spillway_requests_rejected_total\{reason="backpressure"\} 1$')
        # Below the mark again, writes are accepted.
        self.svc.start_flusher("f1")
        harness.wait_drained(self.svc, timeout=30)
        self.svc.post_ok("orders", {"id": 100, "customer": "x"})


class MemoryBackpressureTest(harness.ServiceTest):
    """429 before Redis reaches its maxmemory, counting all it holds."""
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = {"server": {"max_redis_memory_percent": "90"}}

    def metric(self, name):
        text = self.svc.request("GET", "/metrics")[2].decode()
        m = re.search(r"(?m)^%s (\S+)$" % name, text)
        return float(m.group(1)) if m else None

    def test_429_before_maxmemory(self):
        # The gauge samples one shard's newest bucket, from 16 statuses up.
        for i in range(50 * max(1, self.svc.shards)):
            self.svc.post_ok("orders", {"id": i, "customer": "x"})
        harness.wait_drained(self.svc, timeout=30)
        # Statuses are what remains: a gauge prices one.
        harness.wait_for(lambda: self.metric("spillway_redis_status_bytes_per_job"), 10,
                         "the status cost gauge")
        per_job = self.metric("spillway_redis_status_bytes_per_job")
        self.assertGreater(per_job, 10)
        self.assertLess(per_job, 100)
        # Redis frees idle clients' query buffers after 2 s: let that
        # happen (there are more clients with shards) before taking the
        # figure the limit is set from.
        time.sleep(3)
        used = int(re.search(r"used_memory:(\d+)", self.svc.redis.raw("INFO", "memory")).group(1))
        # maxmemory just above what Redis holds: about 97% in use.
        self.svc.redis.cli("CONFIG", "SET", "maxmemory", str(used + used // 33))
        harness.wait_for(lambda: self.svc.post("orders", {"id": 1000, "customer": "x"})[0] == 429,
                         5, "429 for Redis memory")   # (earlier tries may be 202s)
        code, headers, body = self.svc.post("orders", {"id": 1001, "customer": "x"})
        self.assertEqual(code, 429, body)
        self.assertEqual(headers["retry-after"], "5")
        p = json.loads(body)
        self.assertEqual(p["type"], "urn:spillway:problem:redis-memory-high")
        self.assertIn("max_redis_memory_percent", p["detail"])
        self.assertLess(self.metric("spillway_redis_memory_headroom_bytes"), 0)
        harness.wait_drained(self.svc, timeout=30)
        self.assertEqual(self.svc.sql("SELECT count(*) FROM orders WHERE id = 1001"), [["0"]])
        self.assertIn("redis memory high", self.svc.server.output())
        # Room again: writes are accepted.
        self.svc.redis.cli("CONFIG", "SET", "maxmemory", "0")
        harness.wait_for(lambda: self.svc.post("orders", {"id": 1002, "customer": "x"})[0] == 202,
                         5, "202 again")
        self.assertIn("redis memory below the limit again", self.svc.server.output())


if __name__ == "__main__":
    harness.main()
