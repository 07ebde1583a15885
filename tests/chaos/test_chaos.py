"""Chaos: a steady write stream (several connections, insert-mode sink,
every record with a unique id) while, in turn, a flusher is SIGKILLed,
PostgreSQL is shut down immediately and restarted, Redis is SIGKILLed and
restarted from its append-only file (appendfsync always), and the server is
SIGKILLed and restarted. Then the queue drains and, from the clients' own
record of which writes got a 2xx, every acknowledged record must be in
PostgreSQL exactly once and every acknowledged job must say committed.
Loopback only; bounded to about a minute."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE


class ChaosTest(unittest.TestCase):
    def setUp(self):
        self.svc = harness.Service(
            "chaos", SINKS, TABLES, redis_aof=True,
            extra={"flusher": {"batch_max_records": "500", "flush_interval_ms": "20",
                               "heartbeat_ttl_s": "3"},
                   "redis": {"timeout_ms": "1000"}})
        self.svc.start_flusher("f2")

    def tearDown(self):
        try:
            harness.pg_cluster("start")
        except Exception:
            pass
        self.svc.redis.start()
        self.svc.finish()

    def kill(self, daemon):
        os.kill(daemon.proc.pid, signal.SIGKILL)
        daemon.proc.wait(timeout=10)

    def test_nothing_lost_nothing_doubled(self):
        svc = self.svc
        stream = harness.Stream(svc, "events", threads=6, duration=32, timeout=10)
        events = []

        def at(t0, secs):
            time.sleep(max(0, t0 + secs - time.monotonic()))

        t0 = time.monotonic()
        at(t0, 3)
        self.kill(svc.flushers["f1"])
        svc.start_flusher("f1")
        events.append("SIGKILL flusher f1")
        at(t0, 7)
        harness.pg_cluster("stop")
        events.append("PostgreSQL immediate shutdown")
        at(t0, 10)
        harness.pg_cluster("start")
        at(t0, 14)
        svc.redis.proc.kill()
        svc.redis.proc.wait(timeout=10)
        events.append("SIGKILL redis-server")
        at(t0, 15.5)
        svc.redis.start()
        at(t0, 20)
        self.kill(svc.server)
        events.append("SIGKILL spillway-server")
        at(t0, 21)
        svc.start_server()
        at(t0, 25)
        self.kill(svc.flushers["f2"])
        svc.start_flusher("f2")
        events.append("SIGKILL flusher f2")
        stream.join()
        harness.wait_drained(svc, timeout=120)

        acked = stream.accepted_ids
        rows = [int(r[0]) for r in svc.sql("SELECT id FROM events")]
        present = set(rows)
        lost = [i for i in acked if i not in present]
        duplicated = len(rows) - len(present)
        unacked_landed = len(present - set(acked))
        statuses = svc.statuses(stream.accepted_jobs)
        not_committed = [j for j, st in zip(stream.accepted_jobs, statuses)
                         if st is None or '"status":"committed"' not in st]
        print("\nchaos: %s" % "; ".join(events))
        print("chaos: acknowledged=%d landed=%d lost=%d duplicated=%d "
              "unacknowledged_but_landed=%d refused=%s hung=%d jobs_not_committed=%d"
              % (len(acked), len(rows), len(lost), duplicated, unacked_landed,
                 stream.refused, stream.hung, len(not_committed)))
        self.assertGreater(len(acked), 10000)
        self.assertEqual(lost, [])
        self.assertEqual(duplicated, 0)
        self.assertEqual(stream.hung, 0)
        self.assertEqual(not_committed, [])
        # Every refusal was an explicit one (429/503) or the server being
        # gone (connection refused or reset while it was killed).
        self.assertEqual(set(stream.refused) - {429, 503, "connection"}, set())


if __name__ == "__main__":
    harness.require_postgres()
    unittest.main(verbosity=2)
