"""The shipped alert rules against a real Prometheus scraping real daemons
every second (deploy/prometheus/spillway-alerts.yml; promtool's unit tests
prove each rule's `for` and wording, see the alert_rules test). A healthy
service raises no alert; then each outage is made for real and the rule
that must catch it turns active (pending or firing), its own expression
being true for the reason the outage gives:

- Redis refusing writes: out of memory (writes fail, reads answer), an
  eviction policy (the server refuses), a wrong password (nothing
  answers) -> SpillwayRedisRefusingWrites, and SpillwayPostsFailing from
  the 503s;
- a job failed for its data -> SpillwayDeadLetters (and JobsFailing);
- PostgreSQL unreachable -> SpillwayPostgresDown, SpillwayFlushRetrying;
- the only flusher stopped -> SpillwayNoLiveFlusher, and the queue's
  oldest age rising (SpillwayQueueStalled's expression, at a threshold a
  test can wait for)."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.CHECKED_SINK, harness.CHECKED_TABLE
RULES = os.path.join(harness.SOURCE, "deploy", "prometheus", "spillway-alerts.yml")


class Prometheus:
    """prometheus on a loopback port of its own, scraping and evaluating
    every second, stopped by pid."""

    def __init__(self, workdir, server_port, flusher_port):
        self.dir = os.path.join(workdir, "prometheus")
        os.makedirs(self.dir)
        shutil.copy(RULES, os.path.join(self.dir, "rules.yml"))
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write("global: {scrape_interval: 1s, evaluation_interval: 1s, "
                    "scrape_timeout: 900ms}\n"
                    "rule_files: [rules.yml]\n"
                    "scrape_configs:\n"
                    "  - job_name: spillway-server\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                    "  - job_name: spillway-flusher\n"
                    "    static_configs: [{targets: ['127.0.0.1:%d']}]\n"
                    % (server_port, flusher_port))
        self.port = harness.free_port()
        self.log = open(os.path.join(self.dir, "prometheus.log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", "--config.file=" + os.path.join(self.dir, "prometheus.yml"),
             "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
             "--web.listen-address=127.0.0.1:%d" % self.port, "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, cwd=self.dir)
        harness.wait_for(self.ready, 60, "prometheus to start")

    def api(self, path, **params):
        url = "http://127.0.0.1:%d/api/v1/%s" % (self.port, path)
        if params:
            url += "?" + urllib.parse.urlencode(params)
        with urllib.request.urlopen(url, timeout=10) as r:
            body = json.loads(r.read())
        assert body["status"] == "success", body
        return body["data"]

    def ready(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/-/ready" % self.port, timeout=2) as r:
                return r.status == 200
        except OSError:
            return False

    def query(self, expr):
        return self.api("query", query=expr)["result"]

    def active(self):
        """Alert name -> states of its active alerts (pending, firing)."""
        out = {}
        for a in self.api("alerts")["alerts"]:
            out.setdefault(a["labels"]["alertname"], set()).add(a["state"])
        return out

    def rules(self):
        """Alert name -> its expression, as Prometheus loaded it."""
        return {r["name"]: r["query"] for g in self.api("rules")["groups"]
                for r in g["rules"] if r["type"] == "alerting"}

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


class AlertsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = harness.Service("alerts", SINKS, TABLES, {
            # Memory is tested as Redis' own OOM, not the server's 429 line.
            "server": {"max_redis_memory_percent": "0"},
            "flusher": {"heartbeat_ttl_s": "2", "retry_max_ms": "300"},
        }, flusher=False, redis_aof=True, proxies=True)
        cls.addClassCleanup(cls.svc.close)
        cls.metrics_port = harness.free_port()
        cls.flusher = cls.svc.start_flusher(
            "a1", SPILLWAY_FLUSHER_METRICS_LISTEN="127.0.0.1:%d" % cls.metrics_port)
        cls.tmp = tempfile.mkdtemp(prefix="sw-alerts-")
        cls.prom = Prometheus(cls.tmp, cls.svc.port, cls.metrics_port)
        cls.addClassCleanup(cls.prom.stop)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def wait_active(self, name, timeout=30):
        harness.wait_for(lambda: name in self.prom.active(), timeout,
                         "alert %s to turn active (active: %s)" % (name, self.prom.active()))

    def wait_true(self, expr, timeout=30, pred=lambda r: r != []):
        """Wait until `expr` gives a result `pred` accepts; return it."""
        out = []

        def check():
            out[:] = self.prom.query(expr)
            return pred(out)
        harness.wait_for(check, timeout, "%s to hold (last: %s)" % (expr, out))
        return list(out)

    next_id = 1

    def posts(self, n):
        """POST n good one-record jobs (ids of their own); the statuses
        answered."""
        codes = []
        for _ in range(n):
            AlertsTest.next_id += 1
            code, _, _ = self.svc.post("checked", {"id": self.next_id, "qty": 1})
            codes.append(code)
        return codes

    def redis_cli(self, *args, password=None):
        cmd = ["redis-cli", "-p", str(self.svc.redis.port)]
        if password:
            cmd += ["-a", password, "--no-auth-warning"]
        out = subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def test_1_healthy_is_quiet(self):
        self.assertEqual(self.posts(20), [202] * 20)
        self.wait_true('up{job="spillway-flusher"} == 1')
        self.wait_true('up{job="spillway-server"} == 1')
        self.wait_true("spillway_flushers_live == 1")
        self.wait_true('spillway_queue_depth_records == 0')
        # A few evaluations over live figures with nothing wrong.
        time.sleep(4)
        self.assertEqual(self.prom.active(), {})
        rules = self.prom.rules()
        self.assertEqual(len(rules), 15, sorted(rules))
        # The queue's gauges come from the server alone.
        self.assertEqual(self.prom.query('spillway_dead_letter_jobs{job="spillway-flusher"}'), [])

    def test_2_redis_refusing(self):
        expr = self.prom.rules()["SpillwayRedisRefusingWrites"]
        # Out of memory: Redis answers reads (the scrape, /readyz's queue
        # script), refuses the enqueue. Only the rejections show it.
        used = int(re.search(r"used_memory:(\d+)", self.redis_cli("INFO", "memory")).group(1))
        self.assertEqual(self.redis_cli("CONFIG", "SET", "maxmemory", str(used // 2)), "OK")
        try:
            stop = time.monotonic() + 8
            codes = []
            while time.monotonic() < stop:
                codes += self.posts(10)
                time.sleep(0.1)
            self.assertEqual(set(codes), {503}, codes[:5])
            legs = self.wait_true(expr)
            self.assertEqual([r["metric"].get("__name__") for r in legs], [None], legs)
            self.wait_active("SpillwayRedisRefusingWrites")
            self.wait_active("SpillwayPostsFailing")
        finally:
            self.assertEqual(self.redis_cli("CONFIG", "SET", "maxmemory", "0"), "OK")
        self.assertEqual(self.posts(3), [202] * 3)
        # An eviction policy: the server refuses while Redis would accept.
        self.assertEqual(self.redis_cli("CONFIG", "SET", "maxmemory-policy", "allkeys-lru"),
                         "OK")
        try:
            legs = self.wait_true(expr, pred=lambda r: any(
                x["metric"].get("__name__") == "spillway_redis_writable" for x in r))
            self.assertEqual(set(self.posts(5)), {503})
        finally:
            self.assertEqual(self.redis_cli("CONFIG", "SET", "maxmemory-policy", "noeviction"),
                             "OK")
        self.wait_true('spillway_redis_writable{job="spillway-server"} == 1')
        self.assertEqual(self.posts(3), [202] * 3)
        # A wrong password: the daemons' connections are dropped and their
        # AUTH-less reconnects refused; nothing answers the scrape.
        self.assertEqual(self.redis_cli("CONFIG", "SET", "requirepass", "s3cret"), "OK")
        try:
            self.redis_cli("CLIENT", "KILL", "TYPE", "normal", password="s3cret")
            legs = self.wait_true(expr, pred=lambda r: any(
                x["metric"].get("__name__") == "spillway_redis_up" and
                x["metric"]["job"] == "spillway-server" for x in r))
            self.assertEqual(set(self.posts(5)), {503})
            # A flusher given the wrong password says so, not "is Redis
            # running?".
            wrong = self.svc.start_flusher("a2", SPILLWAY_REDIS_PASSWORD="not-it")
            harness.wait_for(lambda: 'msg="redis unavailable"' in wrong.output(), 30,
                             "flusher a2 to report Redis")
            wrong.proc.send_signal(signal.SIGTERM)
            self.assertEqual(wrong.proc.wait(timeout=30), 0)
            line = next(l for l in wrong.output().splitlines() if "redis unavailable" in l)
            self.assertIn("WRONGPASS", line)
            self.assertIn('hint="Redis refused [redis] user and password', line)
            del self.svc.flushers["a2"]
        finally:
            self.assertEqual(self.redis_cli("CONFIG", "SET", "requirepass", "",
                                            password="s3cret"), "OK")
        self.wait_true('spillway_redis_up{job="spillway-server"} == 1', timeout=30)
        self.assertEqual(self.posts(5), [202] * 5)
        # The server logged each outage of writes once, with its real
        # cause and what to do; the flusher named the password too.
        log = self.svc.server.output()
        refusing = [l for l in log.splitlines() if 'msg="redis refusing writes"' in l]
        self.assertEqual(len(refusing), 2, refusing)
        self.assertIn('cause="OOM"', refusing[0])
        self.assertIn("maxmemory", refusing[0])
        self.assertIn('cause="NOAUTH"', refusing[1])
        self.assertIn("set [redis] password", refusing[1])
        self.assertEqual(log.count('msg="redis taking writes again"'), 2)
        self.assertLessEqual(log.count('msg="redis unavailable"'), 1)
        self.assertIn('maxmemory_policy=allkeys-lru durability="AOF fsync always: an '
                      'acknowledged job survives a Redis or host crash" action="refusing writes '
                      'until maxmemory-policy is noeviction"', log)
        # The flusher's connection was cut first (its cause), and it said
        # so once for the whole outage.
        flog = [l for l in self.flusher.output().splitlines()
                if 'msg="redis unavailable"' in l]
        self.assertEqual(len(flog), 1, flog)

    def test_3_dead_letters(self):
        job = self.svc.post_ok("checked", {"id": 9_000_000, "qty": -1})
        self.svc.wait_jobs([job], want="failed")
        self.wait_true("max(spillway_dead_letter_jobs) > 0")
        self.wait_active("SpillwayDeadLetters")
        self.assertIn("firing", self.prom.active()["SpillwayJobsFailing"])
        # The row's values (PostgreSQL's DETAIL: "Failing row contains
        # (9000000, -1)") stay out of the logs.
        code, st = self.svc.job(job)
        self.assertIn("violates check constraint", st["error"])
        out = self.flusher.output()
        self.assertIn('msg="job failed" job_id=%s' % job, out)
        self.assertNotIn("Failing row", out)
        self.assertNotIn("9000000", out)
        self.svc.ctl("dead", "drop", job)
        self.wait_true("max(spillway_dead_letter_jobs) == 0")

    def test_4_postgres_down(self):
        proxy = self.svc.pg_proxy
        proxy.drop(True)
        proxy.cut_all()
        try:
            self.assertEqual(self.posts(3), [202] * 3)
            self.wait_true("spillway_postgres_up == 0")
            self.wait_active("SpillwayPostgresDown")
            self.wait_active("SpillwayFlushRetrying")
        finally:
            proxy.drop(False)
        self.wait_true("spillway_postgres_up == 1", timeout=60)
        harness.wait_drained(self.svc)

    def test_6_logs_are_logfmt(self):
        """After all of the above, every line either daemon wrote is
        logfmt, led by its timestamp."""
        for name, daemon in [("server", self.svc.server)] + sorted(self.svc.flushers.items()):
            text = daemon.output()
            self.assertGreater(len(text.splitlines()), 5, name)
            self.assertEqual(harness.bad_log_lines(text), [], name)

    def test_5_no_flusher(self):
        self.assertEqual(self.flusher.terminate(), 0)
        self.assertEqual(self.posts(3), [202] * 3)
        self.wait_true("max(spillway_flushers_live) == 0")
        self.wait_active("SpillwayNoLiveFlusher")
        # The stalled rule's own expression, at a threshold this test can
        # wait for (promtool's tests cover its 2 minutes).
        stalled = self.prom.rules()["SpillwayQueueStalled"]
        self.assertIn("> 120", stalled)
        self.wait_true(stalled.replace("> 120", "> 3"))
        self.flusher = self.svc.start_flusher(
            "a1", SPILLWAY_FLUSHER_METRICS_LISTEN="127.0.0.1:%d" % self.metrics_port)
        harness.wait_drained(self.svc)
        self.wait_true("max(spillway_flushers_live) == 1")


if __name__ == "__main__":
    harness.main()
