"""SIGKILL the flusher again and again during a stream of writes: every
accepted record lands exactly once (insert mode, no unique key in the
table, so a duplicate would show)."""

import os
import random
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE


class CrashTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = {"flusher": {"batch_max_records": "300", "flush_interval_ms": "20"}}

    def test_sigkill_flusher_during_stream(self):
        rnd = random.Random(42)
        stream = harness.Stream(self.svc, "events", threads=4, duration=10)
        kills = 0
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(0.3, 1.0))
            d = self.svc.flushers["f1"]
            self.assertTrue(d.alive(), d.output()[-2000:])
            os.kill(d.proc.pid, signal.SIGKILL)
            d.proc.wait(timeout=10)
            kills += 1
            self.svc.start_flusher("f1")   # same id: it resumes its processing list
        stream.join()
        harness.wait_drained(self.svc, timeout=90)

        accepted = len(stream.accepted_ids)
        rows = self.svc.sql("SELECT count(*), count(DISTINCT id) FROM events")[0]
        landed, distinct = int(rows[0]), int(rows[1])
        print("\ncrash test: kills=%d accepted_jobs=%d accepted_records=%d landed=%d "
              "duplicated=%d failed_requests=%d" % (kills, len(stream.accepted_jobs), accepted,
                                                    landed, landed - distinct, len(stream.failures)))
        self.assertGreater(kills, 5)
        self.assertGreater(accepted, 1000)
        self.assertEqual(stream.failures, [])
        self.assertEqual(landed, distinct, "some record was applied twice")
        self.assertEqual(landed, accepted, "rows in PostgreSQL != accepted records")
        got = {int(r[0]) for r in self.svc.sql("SELECT id FROM events")}
        self.assertEqual(got, set(stream.accepted_ids))
        # Every accepted job reports committed (a sample keeps the test fast).
        sample = rnd.sample(stream.accepted_jobs, 200)
        for j in sample:
            code, job = self.svc.job(j)
            self.assertEqual((code, job["status"]), (200, "committed"), job)


if __name__ == "__main__":
    harness.main()
