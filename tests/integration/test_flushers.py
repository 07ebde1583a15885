"""Several flushers on one queue: heartbeats, orphaned batches taken over,
a stalled flusher fenced by the ledger, jobs that keep killing flushers
dead-lettered, and one id per live flusher."""

import os
import random
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE
HOLD = {"SPILLWAY_FLUSHER_FLUSH_INTERVAL_MS": "600000",
        "SPILLWAY_FLUSHER_BATCH_MAX_RECORDS": "100000"}


class FlushersTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False
    EXTRA = {"flusher": {"batch_max_records": "300", "flush_interval_ms": "20",
                         "heartbeat_ttl_s": "2", "max_deliveries": "3"}}

    def stop_all(self):
        for d in self.svc.flushers.values():
            if d.alive():
                self.assertEqual(d.terminate(), 0, d.output()[-2000:])

    def assertExactlyOnce(self, ids):
        landed, distinct = map(int, self.svc.sql("SELECT count(*), count(DISTINCT id) FROM events")[0])
        self.assertEqual(landed, distinct, "a record was applied twice")
        got = {int(r[0]) for r in self.svc.sql("SELECT id FROM events")}
        self.assertEqual(got, set(ids))

    def processing_lists(self):
        return self.svc.keys("processing:*")

    def test_1_three_flushers_two_killed_repeatedly(self):
        rnd = random.Random(7)
        for fid in ("keep", "a0", "b0"):
            self.svc.start_flusher(fid)
        stream = harness.Stream(self.svc, "events", threads=4, duration=10)
        kills, gen = 0, 0
        deadline = time.monotonic() + 9
        while time.monotonic() < deadline:
            time.sleep(rnd.uniform(0.3, 0.8))
            victim = rnd.choice([k for k in self.svc.flushers if k != "keep" and
                                 self.svc.flushers[k].alive()])
            d = self.svc.flushers[victim]
            os.kill(d.proc.pid, signal.SIGKILL)
            d.proc.wait(timeout=10)
            kills += 1
            if victim.startswith("a"):
                # Comes back under a new id: its old list is an orphan that
                # another flusher must take over once the heartbeat expires.
                gen += 1
                self.svc.start_flusher("a%d" % gen)
            else:
                self.svc.start_flusher(victim)   # same id: resumes its own list
        stream.join()
        harness.wait_drained(self.svc, timeout=90)
        harness.wait_for(lambda: not self.processing_lists(), 30, "orphaned lists to be taken over")
        print("\nthree flushers: kills=%d accepted_records=%d failed_requests=%d"
              % (kills, len(stream.accepted_ids), len(stream.failures)))
        self.assertGreater(kills, 8)
        self.assertEqual(stream.failures, [])
        self.assertExactlyOnce(stream.accepted_ids)
        q = self.svc.queue()
        self.assertEqual((q["depth"], q["in_flight"], q["dead_jobs"]), (0, 0, 0))
        logs = "".join(d.output() for d in self.svc.flushers.values())
        self.assertIn("took over the batch of a flusher whose heartbeat expired", logs)
        self.stop_all()

    def test_2_stalled_flusher_is_fenced(self):
        self.svc.sql("TRUNCATE events")
        ids = list(range(50_000_000, 50_000_040))
        jobs = [self.svc.post_ok("events", [{"id": i, "payload": "s"} for i in ids[k:k + 4]])
                for k in range(0, 40, 4)]
        slow = self.svc.start_flusher("stalled", **HOLD)
        harness.wait_for(lambda: self.svc.queue()["in_flight"] == 40, 15, "the batch to be claimed")
        os.kill(slow.proc.pid, signal.SIGSTOP)
        try:
            time.sleep(3)   # past heartbeat_ttl_s = 2
            other = self.svc.start_flusher("rescuer")
            self.svc.wait_jobs(jobs, timeout=30)
            self.assertIn("from=stalled", other.output())
            self.assertExactlyOnce(ids)
        finally:
            os.kill(slow.proc.pid, signal.SIGCONT)
        # The stalled flusher wakes with the same batch in memory and flushes
        # it on SIGTERM: the ledger turns it into a no-op.
        self.assertEqual(slow.terminate(), 0)
        self.assertExactlyOnce(ids)
        harness.wait_drained(self.svc)
        for j in jobs:
            self.assertEqual(self.svc.job(j)[1]["status"], "committed")
        self.assertEqual(self.svc.queue()["in_flight"], 0)
        self.stop_all()

    def test_3_job_that_keeps_killing_flushers_is_dead_lettered(self):
        self.stop_all()
        jid = self.svc.post_ok("events", [{"id": 7, "payload": "poison pill"}])
        # The flusher holds its batch (HOLD) or, once the job is a suspect
        # committed alone, waits on a lock: each life ends with the job in
        # hand, as if the job brought it down. The claim is life 1; lives 2
        # and 3 resume it (the log file is shared by the lives of one id);
        # the 4th start finds it handed out 3 times and dead-letters it.
        with harness.TableLock(self.svc.db, "events"):
            for attempt in range(4):
                d = self.svc.start_flusher("victim", **HOLD)
                if attempt == 0:
                    harness.wait_for(lambda: self.svc.queue()["in_flight"] == 1, 15, "the claim")
                elif attempt < 3:
                    harness.wait_for(lambda: d.output().count("resuming batch") == attempt, 15,
                                     "resume %d" % attempt)
                if attempt == 2:
                    # Alone now, and stuck writing its rows (COPY into the
                    # table: insert mode) on the lock.
                    harness.wait_for(lambda: self.svc.sql(
                        "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                        "AND query LIKE 'COPY %events%'")[0][0] == "1", 15, "the stuck COPY")
                if attempt < 3:
                    os.kill(d.proc.pid, signal.SIGKILL)
                    d.proc.wait(timeout=10)
        # The last life's decision waits for the lock too: the killed
        # third life's transaction still holds the job's ledger row until
        # its INSERT gets the lock, finds its client gone and rolls back.
        self.svc.wait_jobs([jid], want="failed", timeout=30)
        job = self.svc.job(jid)[1]
        self.assertIn("handed to a flusher 3 times without finishing (max_deliveries)", job["error"])
        q = self.svc.queue()
        self.assertEqual((q["in_flight"], q["dead_jobs"]), (0, 1))
        self.assertEqual(self.svc.sql("SELECT count(*) FROM events WHERE id = 7"), [["0"]])
        self.stop_all()

    def test_4_one_live_flusher_per_id(self):
        self.stop_all()
        first = self.svc.start_flusher("twin")
        harness.wait_for(lambda: 'msg="flusher started"' in first.output(), 15, "the first twin")
        second = harness.Daemon("twin2", [os.path.join(harness.BIN, "spillway-flusher"), "--config",
                                          self.svc.config],
                                dict(self.svc.env, SPILLWAY_FLUSHER_ID="twin"),
                                os.path.join(self.svc.tmp, "flusher-twin2.log"))
        self.assertEqual(second.proc.wait(timeout=30), 1)
        self.assertIn("another flusher runs with this id", second.output())
        self.assertTrue(first.alive())
        self.stop_all()

    def test_5_orphan_taken_over_while_busy(self):
        """A flusher that never runs out of work still takes over a dead
        flusher's batch within a few heartbeat TTLs, not once it is idle."""
        self.stop_all()
        victim = self.svc.start_flusher("victim5", **HOLD)
        orphans = list(range(900_000_000, 900_000_005))
        for i in orphans:
            self.svc.post_ok("events", [{"id": i, "payload": "orphan"}])
        harness.wait_for(lambda: self.svc.llen("processing:victim5") == 5,
                         15, "the victim's claim")
        os.kill(victim.proc.pid, signal.SIGKILL)
        victim.proc.wait(timeout=10)
        # Every commit takes 50 ms and holds 20 records, so the stream
        # outruns the flusher: its queue never empties, it always holds
        # jobs, and never has a quiet moment to take the list over in.
        self.svc.sql("CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
                     "$$ BEGIN PERFORM pg_sleep(0.05); RETURN NULL; END $$; "
                     "CREATE TRIGGER slow AFTER INSERT ON events "
                     "FOR EACH STATEMENT EXECUTE FUNCTION slow()")
        self.svc.start_flusher("busy5", SPILLWAY_FLUSHER_BATCH_MAX_RECORDS="20")
        stream = harness.Stream(self.svc, "events", threads=4, duration=7, id_base=800_000_000)
        taken_at = None
        t0 = time.monotonic()
        while time.monotonic() < t0 + 6.5:
            if not self.svc.keys("processing:victim5"):
                taken_at = time.monotonic() - t0
                break
            time.sleep(0.05)
        busy_then = self.svc.queue()["depth"]
        stream.join()
        self.svc.sql("DROP TRIGGER slow ON events; DROP FUNCTION slow()")
        self.assertIsNotNone(taken_at, "the orphaned batch waited for the stream to end")
        self.assertGreater(busy_then, 0, "the flusher was not kept busy")
        self.assertIn("took over the batch", self.svc.flushers["busy5"].output())
        harness.wait_drained(self.svc, timeout=120)
        rows = self.svc.sql("SELECT count(*), count(DISTINCT id) FROM events WHERE id >= 800000000")
        self.assertEqual(rows, [[str(len(stream.accepted_ids) + 5)] * 2])
        self.assertEqual(self.svc.sql("SELECT count(*) FROM events WHERE payload = 'orphan'"),
                         [["5"]])
        self.stop_all()

if __name__ == "__main__":
    harness.main()
