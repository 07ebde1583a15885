"""Stop PostgreSQL (immediate shutdown) for 60 s while writes continue and
the flusher is killed and restarted in the middle of it: every POST still
gets 202, nothing is dead-lettered (restarts during an outage do not count
as deliveries), and every job commits once it is back."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE
OUTAGE_S = 60


class OutageTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = {"flusher": {"batch_max_records": "500", "flush_interval_ms": "20",
                         "max_deliveries": "2", "retry_max_ms": "2000"}}

    def test_postgres_down_for_a_minute(self):
        stream = harness.Stream(self.svc, "events", threads=2, duration=OUTAGE_S + 8,
                                max_jobs=10**9)
        time.sleep(2)
        harness.pg_cluster("stop")
        try:
            time.sleep(OUTAGE_S / 3)
            # The queue grows while PostgreSQL is away; the API keeps accepting.
            q = self.svc.queue()
            self.assertGreater(q["depth"] + q["in_flight"], 0)
            # The flusher dies twice with its batch in hand; each new life
            # waits for PostgreSQL before taking the batch up again.
            for _ in range(2):
                f = self.svc.flushers["f1"]
                os.kill(f.proc.pid, signal.SIGKILL)
                f.proc.wait(timeout=10)
                self.svc.start_flusher("f1")
                time.sleep(OUTAGE_S / 3 - 1)
        finally:
            harness.pg_cluster("start")
        stream.join()
        harness.wait_drained(self.svc, timeout=180)

        accepted = len(stream.accepted_ids)
        landed, distinct = map(int, self.svc.sql("SELECT count(*), count(DISTINCT id) FROM events")[0])
        q = self.svc.queue()
        print("\noutage test: %d s; accepted_records=%d landed=%d failed_requests=%d dead=%d"
              % (OUTAGE_S, accepted, landed, len(stream.failures), q["dead_jobs"]))
        self.assertEqual(stream.failures, [])
        self.assertGreater(accepted, 10000)
        self.assertEqual((landed, distinct), (accepted, accepted))
        self.assertEqual(q["dead_jobs"], 0)
        statuses = self.svc.statuses(stream.accepted_jobs)
        self.assertEqual([s for s in statuses if '"status":"committed"' not in (s or "")], [])
        log = self.svc.flushers["f1"].output()
        # One line per state change, not one per retry (three lives share
        # the log: the first saw the outage begin, the last saw it end);
        # with shards, per drain: each says which shard it drains.
        for shard in (range(self.svc.shards) if self.svc.shards else [None]):
            mine = [l for l in log.splitlines()
                    if shard is None or ' shard=%d ' % shard in l + ' ']
            self.assertEqual(sum('msg="postgres available again"' in l for l in mine), 1,
                             log[-3000:])
            self.assertLessEqual(sum('msg="postgres unavailable"' in l for l in mine), 3,
                                 log[-3000:])


class MultiHostTest(harness.ServiceTest):
    """libpq multi-host conninfo with target_session_attrs=read-write (the
    PostgreSQL-side failover docs/OPERATIONS.md describes): the first
    host is down, so the flusher connects to the next; PostgreSQL then
    restarts under a write stream, and every record lands once."""
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False

    def test_multi_host_conninfo_and_restart(self):
        dead = harness.free_port()
        pg = int(harness.os.environ.get("PGPORT", "5432"))
        conninfo = ("host=127.0.0.1,127.0.0.1 port=%d,%d dbname=%s connect_timeout=2 "
                    "target_session_attrs=read-write" % (dead, pg, self.svc.db))
        self.svc.start_flusher("f1", SPILLWAY_POSTGRES_CONNINFO=conninfo)
        stream = harness.Stream(self.svc, "events", threads=2, duration=12)
        time.sleep(3)
        harness.pg_cluster("stop")
        time.sleep(2)
        harness.pg_cluster("start")
        stream.join()
        harness.wait_drained(self.svc, timeout=120)
        accepted = len(stream.accepted_ids)
        landed, distinct = map(int, self.svc.sql("SELECT count(*), count(DISTINCT id) FROM events")[0])
        print("\nmulti-host conninfo, PostgreSQL restarted: accepted_records=%d landed=%d "
              "failed_requests=%d" % (accepted, landed, len(stream.failures)))
        self.assertEqual(stream.failures, [])
        self.assertGreater(accepted, 1000)
        self.assertEqual((landed, distinct), (accepted, accepted))
        log = self.svc.flushers["f1"].output()
        self.assertIn('msg="postgres available again"', log)


if __name__ == "__main__":
    harness.main()
