"""Stop PostgreSQL (immediate shutdown) for a few seconds while writes
continue: no request fails, and every job commits once it is back."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE


class OutageTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    EXTRA = {"flusher": {"batch_max_records": "500", "flush_interval_ms": "20"}}

    def test_postgres_down_during_stream(self):
        stream = harness.Stream(self.svc, "events", threads=4, duration=9)
        time.sleep(2)
        harness.pg_cluster("stop")
        try:
            time.sleep(4)
            # The queue grows while PostgreSQL is away; the API keeps accepting.
            self.assertGreater(self.svc.queue()["depth"] + self.svc.queue()["in_flight"], 0)
        finally:
            harness.pg_cluster("start")
        stream.join()
        harness.wait_drained(self.svc, timeout=90)

        accepted = len(stream.accepted_ids)
        landed, distinct = map(int, self.svc.sql("SELECT count(*), count(DISTINCT id) FROM events")[0])
        print("\noutage test: accepted_records=%d landed=%d failed_requests=%d"
              % (accepted, landed, len(stream.failures)))
        self.assertEqual(stream.failures, [])
        self.assertGreater(accepted, 1000)
        self.assertEqual((landed, distinct), (accepted, accepted))
        for j in stream.accepted_jobs[-50:]:
            self.assertEqual(self.svc.job(j)[1]["status"], "committed")
        log = self.svc.flushers["f1"].output()
        # One line per state change, not one per retry.
        self.assertEqual(log.count('msg="postgres unavailable"'), 1, log[-3000:])
        self.assertEqual(log.count('msg="postgres available again"'), 1, log[-3000:])


if __name__ == "__main__":
    harness.main()
