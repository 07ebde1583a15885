"""Error answers, not deaths: under a steady write stream with three
flushers, Redis and PostgreSQL answer with errors or lose replies, again and
again, one fault type per phase:

  redis_restart  Redis SIGKILLed and restarted from a large append-only file
                 (LOADING while it reads it back), 20 times
  oom            maxmemory cut to 1 byte (OOM command not allowed), 20 windows
  readonly       Redis made a replica of a closed port (READONLY), 20 windows
  script_flush   SCRIPT FLUSH (NOSCRIPT), 20 times
  client_kill    CLIENT KILL of every daemon connection, 20 times
  pg_lock        the sink's table locked for longer than heartbeat_ttl_s, 4 times
  proxy          replies lost or cut mid-way by a TCP fault proxy between the
                 daemons and Redis / PostgreSQL, 24 faults

After each phase the queue drains and, from the clients' own record of which
writes got a 202, every acknowledged record must be in PostgreSQL exactly
once, every acknowledged job must say committed, and no job (all are valid)
may be dead-lettered. Loopback only; bounded to a few minutes."""

import os
import random
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE
HEARTBEAT_TTL_S = 3


class FaultsTest(unittest.TestCase):
    def setUp(self):
        self.svc = harness.Service(
            "faults", SINKS, TABLES, redis_aof=True, proxies=True,
            extra={"flusher": {"batch_max_records": "500", "flush_interval_ms": "20",
                               "heartbeat_ttl_s": str(HEARTBEAT_TTL_S), "retry_max_ms": "500"},
                   "redis": {"timeout_ms": "1000"}})
        self.svc.start_flusher("f2")
        self.svc.start_flusher("f3")
        self.rng = random.Random(int(os.environ.get("SW_CHAOS_SEED", "9")))

    def tearDown(self):
        r = self.svc.redis
        r.start()
        for cmd in (["CONFIG", "SET", "maxmemory", "0"], ["REPLICAOF", "NO", "ONE"]):
            try:
                r.cli(*cmd)
            except Exception:
                pass
        self.svc.finish()

    # faults ---------------------------------------------------------------

    def redis_restart(self):
        r = self.svc.redis
        for _ in range(20):
            time.sleep(0.6)
            r.proc.kill()
            r.proc.wait(timeout=10)
            r.start()
        return 20

    def window(self, on, off, n=20, hold=0.8, gap=0.6):
        r = self.svc.redis
        for _ in range(n):
            time.sleep(gap)
            r.cli(*on)
            time.sleep(hold)
            r.cli(*off)
        return n

    def oom(self):
        return self.window(["CONFIG", "SET", "maxmemory", "1"], ["CONFIG", "SET", "maxmemory", "0"])

    def readonly(self):
        return self.window(["REPLICAOF", "127.0.0.1", "1"], ["REPLICAOF", "NO", "ONE"])

    def script_flush(self):
        for _ in range(20):
            time.sleep(0.4)
            self.svc.redis.cli("SCRIPT", "FLUSH")
        return 20

    def client_kill(self):
        for _ in range(20):
            time.sleep(0.5)
            self.svc.redis.cli("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
        return 20

    def pg_lock(self):
        hold = HEARTBEAT_TTL_S + 2
        for _ in range(4):
            time.sleep(1)
            subprocess.run(["psql", "-X", "-q", "-d", self.svc.db, "-c",
                            "BEGIN; LOCK TABLE events IN ACCESS EXCLUSIVE MODE; "
                            "SELECT pg_sleep(%d); COMMIT;" % hold],
                           check=True, capture_output=True, timeout=60)
        return 4

    def proxy(self):
        rp, pp = self.svc.redis_proxy, self.svc.pg_proxy
        n = 0
        for i in range(12):
            time.sleep(0.5)
            kind = i % 4
            if kind == 0:
                rp.cut_at(self.rng.randint(1, 120), "down")   # a reply cut mid-way
                pp.cut_at(self.rng.randint(1, 400), "down")
            elif kind == 1:
                rp.drop(True)                                 # replies lost
                pp.drop(True)
                time.sleep(0.3)
                rp.drop(False)
                pp.drop(False)
            elif kind == 2:
                rp.cut_at(self.rng.randint(1, 300), "up")     # a request cut mid-way
                pp.cut_at(self.rng.randint(1, 2000), "up")
            else:
                rp.cut_all()
                pp.cut_all()
            n += 2
            time.sleep(0.5)
            rp.cut_at(None, "down")
            rp.cut_at(None, "up")
            pp.cut_at(None, "down")
            pp.cut_at(None, "up")
        return n

    # the run --------------------------------------------------------------

    def evidence(self):
        """Counters that show a fault really happened: scripts loaded,
        daemon reconnects, proxy cuts, takeovers logged."""
        stats = self.svc.redis.raw("INFO", "commandstats")
        loads = 0
        for line in stats.splitlines():
            if line.startswith("cmdstat_script|load:"):
                loads = int(line.split("calls=")[1].split(",")[0])
        _, _, text = self.svc.request("GET", "/metrics")
        reconnects = 0
        for line in text.decode().splitlines():
            if line.startswith("spillway_redis_reconnects_total "):
                reconnects = float(line.split()[1])
        takeovers = sum(d.output().count("took over the batch") for d in self.svc.flushers.values())
        return {"script_loads": loads, "server_reconnects": reconnects, "takeovers": takeovers,
                "proxy_cuts": self.svc.redis_proxy.cuts + self.svc.pg_proxy.cuts}

    def run_phase(self, index, name, fault):
        svc = self.svc
        base = (index + 1) * 1_000_000_000
        dead_before = svc.queue()["dead_jobs"]
        before = self.evidence()
        stream = harness.Stream(svc, "events", threads=6, duration=3600, timeout=10,
                                id_base=base)
        time.sleep(1)
        t0 = time.monotonic()
        faults = fault()
        elapsed = time.monotonic() - t0
        time.sleep(1)
        stream.stop_at = 0
        stream.join()
        try:
            harness.wait_drained(svc, timeout=180)
        except AssertionError:
            print("faults: %s did not drain: queue %s" % (name, svc.queue()))
            for fid, d in svc.flushers.items():
                print("--- flusher %s (alive=%s) ---\n%s" % (fid, d.alive(), d.output()[-2500:]))
            raise
        acked = stream.accepted_ids
        rows = [int(r[0]) for r in svc.sql(
            "SELECT id FROM events WHERE id >= %d AND id < %d" % (base, base + 1_000_000_000))]
        present = set(rows)
        after = self.evidence()
        seen = set()
        for status, body in stream.failures:
            text = body.decode(errors="replace") if isinstance(body, bytes) else str(body)
            for word in ("LOADING", "READONLY", "redis-out-of-memory", "redis-timeout",
                         "redis-unavailable", "queue-full"):
                if word in text:
                    seen.add(word)
        statuses = svc.statuses(stream.accepted_jobs)
        result = {
            "phase": name, "faults": faults, "seconds": round(elapsed, 1),
            "acknowledged": len(acked), "landed": len(rows),
            "lost": sum(1 for i in acked if i not in present),
            "duplicated": len(rows) - len(present),
            "dead_lettered": svc.queue()["dead_jobs"] - dead_before,
            "not_committed": sum(1 for st in statuses
                                 if st is None or '"status":"committed"' not in st),
            "hung": stream.hung,
            "refused": dict(stream.refused),
            "unacked_landed": len(present - set(acked)),
            "answers": sorted(seen),
            "evidence": {k: after[k] - before[k] for k in after},
        }
        print("faults: %s" % result, flush=True)
        return result

    def test_error_answers(self):
        svc = self.svc
        # Ballast, so that every restart spends a while LOADING the AOF.
        svc.redis.cli("EVAL", "for i = 1, 300000 do redis.call('SET', 'ballast:' .. i, "
                      "string.rep('x', 200)) end return 1", "0")
        phases = [("redis_restart", self.redis_restart), ("oom", self.oom),
                  ("readonly", self.readonly), ("script_flush", self.script_flush),
                  ("client_kill", self.client_kill), ("pg_lock", self.pg_lock),
                  ("proxy", self.proxy)]
        only = os.environ.get("SW_FAULTS_PHASES")
        results = [self.run_phase(i, name, fn) for i, (name, fn) in enumerate(phases)
                   if not only or name in only.split(",")]
        print("\n%-14s %6s %8s %8s %6s %6s %6s %9s %6s  refused" %
              ("fault", "faults", "acked", "landed", "lost", "dup", "dead", "uncommit", "hung"))
        for r in results:
            print("%-14s %6d %8d %8d %6d %6d %6d %9d %6d  %s" %
                  (r["phase"], r["faults"], r["acknowledged"], r["landed"], r["lost"],
                   r["duplicated"], r["dead_lettered"], r["not_committed"], r["hung"],
                   r["refused"]))
        for r in results:
            with self.subTest(phase=r["phase"]):
                self.assertGreater(r["acknowledged"], 1000)
                self.assertEqual((r["lost"], r["duplicated"], r["dead_lettered"],
                                  r["not_committed"], r["hung"]), (0, 0, 0, 0, 0))
                self.assertEqual(set(r["refused"]) - {429, 503, "connection"}, set())
        # Each fault really happened, as its own signs show.
        by = {r["phase"]: r for r in results}
        expect = {"redis_restart": lambda r: "LOADING" in r["answers"],
                  "oom": lambda r: "redis-out-of-memory" in r["answers"],
                  "readonly": lambda r: "READONLY" in r["answers"],
                  "script_flush": lambda r: r["evidence"]["script_loads"] >= 20,
                  "client_kill": lambda r: r["evidence"]["server_reconnects"] >= 10,
                  "proxy": lambda r: r["evidence"]["proxy_cuts"] >= 12,
                  # A lock held past heartbeat_ttl_s is waited out, not
                  # mistaken for a dead flusher.
                  "pg_lock": lambda r: r["evidence"]["takeovers"] == 0}
        for name, ok in expect.items():
            if name in by:
                with self.subTest(phase=name, check="fault happened"):
                    self.assertTrue(ok(by[name]), by[name])
        for fid, d in svc.flushers.items():
            self.assertTrue(d.alive(), "flusher %s died: %s" % (fid, d.output()[-3000:]))


if __name__ == "__main__":
    harness.require_postgres()
    unittest.main(verbosity=2)
