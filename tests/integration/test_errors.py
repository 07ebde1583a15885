"""Every PostgreSQL error decides, and nothing lands in the wrong place:
non-data errors from one job beside good ones (54000, a trigger's XX000,
42703 after an ALTER TABLE), a sink redefined while jobs wait, a storm of
duplicate keys in insert mode (its drain rate against the same stream
without conflicts, in one run), bounded batches and dead letters."""

import json
import os
import random
import string
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS = """
[sink.words]
table = public.words
columns = w text not null, n integer

[sink.events]
table = public.events
columns = id bigint not null, payload text not null

[sink.keyed]
table = public.keyed
columns = id bigint not null, payload text not null
"""
TABLES = """
CREATE TABLE words (w text PRIMARY KEY, n integer);
CREATE TABLE events (id bigint NOT NULL, payload text NOT NULL);
CREATE TABLE keyed (id bigint PRIMARY KEY, payload text NOT NULL);
CREATE FUNCTION refuse_13() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 13 THEN RAISE EXCEPTION 'thirteen' USING ERRCODE = 'XX000'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_13 BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_13();
"""


def incompressible(n):
    rnd = random.Random(54000)
    return "".join(rnd.choice(string.ascii_letters + string.digits) for _ in range(n))


def post_many(svc, sink, bodies, threads=4):
    """POST every body (in order per thread); return the job ids, all 202."""
    ids = [None] * len(bodies)
    errors = []

    def run(part):
        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=30)
        for i in part:
            conn.request("POST", "/v1/sinks/%s/records" % sink, body=bodies[i],
                         headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            if resp.status != 202:
                errors.append((resp.status, data[:200]))
            else:
                ids[i] = json.loads(data)["job_id"]
        conn.close()
    ts = [threading.Thread(target=run, args=(range(t, len(bodies), threads),))
          for t in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert errors == [], errors[:3]
    return ids


class PoisonTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False
    EXTRA = {"flusher": {"batch_max_records": "5000", "flush_interval_ms": "100",
                         "retry_max_ms": "200"}}

    def queue_then_flush(self, jobs):
        """POST `jobs` ((sink, records) pairs) with no flusher, so one batch
        holds them all, then start one; returns the job ids."""
        for d in self.svc.flushers.values():
            d.terminate()
        ids = [self.svc.post_ok(sink, recs) for sink, recs in jobs]
        self.svc.start_flusher("f%d" % len(self.svc.flushers))
        return ids

    def test_1_index_row_too_large_fails_alone(self):
        # 54000 (program_limit_exceeded) is not a data class: it used to be
        # retried for ever as "postgres unavailable", wedging the flusher.
        big = incompressible(4000)
        jobs = [("words", [{"w": "w%d" % i, "n": i}]) for i in range(20)]
        jobs.insert(7, ("words", [{"w": big, "n": -1}]))
        ids = self.queue_then_flush(jobs)
        poison = ids.pop(7)
        self.svc.wait_jobs(ids, timeout=60)
        self.svc.wait_jobs([poison], want="failed", timeout=30)
        err = self.svc.job(poison)[1]["error"]
        self.assertIn("SQLSTATE 54000", err)
        self.assertIn("index row size", err)
        self.assertEqual(self.svc.sql("SELECT count(*) FROM words WHERE n >= 0"), [["20"]])
        # Not wedged: the next job commits.
        self.svc.wait_jobs([self.svc.post_ok("words", {"w": "after", "n": 99})])

    def test_2_trigger_error_fails_alone(self):
        jobs = [("events", [{"id": 100 + i, "payload": "ok"}, {"id": 200 + i, "payload": "ok"}])
                for i in range(10)]
        jobs.insert(4, ("events", [{"id": 13, "payload": "refused"}, {"id": 14, "payload": "x"}]))
        ids = self.queue_then_flush(jobs)
        poison = ids.pop(4)
        self.svc.wait_jobs(ids, timeout=60)
        self.svc.wait_jobs([poison], want="failed", timeout=30)
        self.assertIn("SQLSTATE XX000: thirteen", self.svc.job(poison)[1]["error"])
        # The job is all or nothing: its other record is not there either.
        self.assertEqual(self.svc.sql("SELECT count(*) FROM events WHERE id IN (13, 14)"), [["0"]])
        self.assertEqual(self.svc.sql("SELECT count(*) FROM events WHERE id >= 100"), [["20"]])

    def test_3_dropped_column_fails_that_sinks_jobs_only(self):
        # 42703 after an ALTER TABLE under a running flusher: every job of
        # that sink fails with it, the other sink's jobs in the same batch
        # commit. (A flusher started now would refuse to: its check at
        # start-up sees the mismatch.)
        for d in self.svc.flushers.values():
            d.terminate()
        jobs = [("words", {"w": "gone-%d" % i, "n": i}) for i in range(3)]
        jobs += [("events", {"id": 500 + i, "payload": "fine"}) for i in range(3)]
        ids = [self.svc.post_ok(sink, recs) for sink, recs in jobs]
        d = self.svc.start_flusher("altered", SPILLWAY_FLUSHER_FLUSH_INTERVAL_MS="3000")
        harness.wait_for(lambda: self.svc.queue()["in_flight"] == 6, 15, "the claim")
        self.svc.sql("ALTER TABLE words DROP COLUMN n")
        try:
            self.svc.wait_jobs(ids[3:], timeout=60)
            self.svc.wait_jobs(ids[:3], want="failed", timeout=30)
            self.assertIn("SQLSTATE 42703", self.svc.job(ids[0])[1]["error"])
            # Retried once as it is, then isolated.
            self.assertIn('msg="batch refused by postgres" sqlstate=42703', d.output())
        finally:
            d.terminate()
            self.svc.sql("ALTER TABLE words ADD COLUMN n integer")
        # Fixed; requeued; committed.
        for j in ids[:3]:
            self.assertIn("1 requeued", self.svc.ctl("dead", "requeue", j).stdout)
        self.svc.start_flusher("fixed")
        self.svc.wait_jobs(ids[:3], timeout=60)
        self.assertEqual(self.svc.sql("SELECT count(*) FROM words WHERE w LIKE 'gone-%'"), [["3"]])


class LadderTest(harness.ServiceTest):
    """Errors PostgreSQL calls transient, or that every job meets alike:
    retried first, then isolated or failed, never for ever."""
    SINKS = SINKS + """
[sink.gated]
table = public.gated
columns = id bigint not null
"""
    TABLES = TABLES + """
CREATE TABLE gated (id bigint NOT NULL);
CREATE TABLE gate (closed boolean NOT NULL);
INSERT INTO gate VALUES (false);
CREATE FUNCTION gate_check() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF (SELECT closed FROM gate) THEN RAISE EXCEPTION 'gate closed' USING ERRCODE = 'XX000'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER gate_check BEFORE INSERT ON gated FOR EACH ROW EXECUTE FUNCTION gate_check();
CREATE FUNCTION refuse_40001() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.id = 40001 THEN RAISE EXCEPTION 'as if serialization failed' USING ERRCODE = '40001'; END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER refuse_40001 BEFORE INSERT ON events FOR EACH ROW EXECUTE FUNCTION refuse_40001();
CREATE FUNCTION slow_57014() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  IF NEW.n = 57014 THEN PERFORM pg_sleep(3); END IF;
  RETURN NEW;
END $$;
CREATE TRIGGER slow_57014 BEFORE INSERT ON words FOR EACH ROW EXECUTE FUNCTION slow_57014();
"""
    FLUSHER = False
    # The ladder is one drain's: these jobs must share a batch, which only
    # one queue makes sure of (with shards they spread, and a poison job
    # alone in its batch climbs the all-alike ladder instead).
    EXTRA = {"flusher": {"flush_interval_ms": "100", "retry_max_ms": "800"},
             "postgres": {"statement_timeout_ms": "1000"}, "redis": {"shards": "0"}}

    def run_jobs(self, jobs, name):
        ids = [self.svc.post_ok(sink, recs) for sink, recs in jobs]
        d = self.svc.start_flusher(name)
        return ids, d

    def test_1_transient_error_of_one_job(self):
        # A trigger raising 40001 for one row: retried as transient a few
        # times, then isolated; that job fails alone.
        jobs = [("events", {"id": 700 + i, "payload": "ok"}) for i in range(8)]
        jobs.insert(3, ("events", {"id": 40001, "payload": "refused"}))
        ids, d = self.run_jobs(jobs, "t1")
        poison = ids.pop(3)
        self.svc.wait_jobs(ids, timeout=60)
        self.svc.wait_jobs([poison], want="failed", timeout=30)
        self.assertIn("SQLSTATE 40001", self.svc.job(poison)[1]["error"])
        d.terminate()

    def test_2_statement_timeout_of_one_job(self):
        # One job's rows take longer than statement_timeout every time:
        # isolation too is cancelled as a whole, so the jobs go one per
        # transaction, and only that one fails.
        jobs = [("words", {"w": "slow-ok-%d" % i, "n": i}) for i in range(4)]
        jobs.insert(2, ("words", {"w": "slow", "n": 57014}))
        ids, d = self.run_jobs(jobs, "t2")
        poison = ids.pop(2)
        self.svc.wait_jobs(ids, timeout=90)
        self.svc.wait_jobs([poison], want="failed", timeout=60)
        self.assertIn("SQLSTATE 57014", self.svc.job(poison)[1]["error"])
        d.terminate()

    def test_3_all_alike_briefly_is_waited_out(self):
        # Every job fails alike (as after a revoked grant): for a while that
        # is taken for the database's state and retried, not dead-lettered.
        self.svc.sql("UPDATE gate SET closed = true")
        dead = self.svc.queue()["dead_jobs"]
        ids, d = self.run_jobs([("gated", {"id": i}) for i in range(3)], "t3")
        time.sleep(2)
        self.svc.sql("UPDATE gate SET closed = false")
        self.svc.wait_jobs(ids, timeout=60)
        self.assertEqual(self.svc.queue()["dead_jobs"], dead)
        d.terminate()

    def test_4_all_alike_for_good_fails_in_the_end(self):
        self.svc.sql("UPDATE gate SET closed = true")
        try:
            ids, d = self.run_jobs([("gated", {"id": 10 + i}) for i in range(2)], "t4")
            self.svc.wait_jobs(ids, want="failed", timeout=90)
            self.assertIn("SQLSTATE XX000: gate closed", self.svc.job(ids[0])[1]["error"])
            d.terminate()
        finally:
            self.svc.sql("UPDATE gate SET closed = false")


class StormTest(harness.ServiceTest):
    """10% of one-record jobs hit a key the table already has (insert
    mode): the drain rate of that stream against the same stream without
    conflicts, both measured here, in two rounds taken in turn; the best
    round counts (the suite runs two tests at once on two cores: one slow
    drain is the neighbour's doing, not the storm's)."""
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False
    JOBS = 10000
    ROUNDS = 2

    def drain(self, name):
        t0 = time.monotonic()
        d = self.svc.start_flusher(name)
        harness.wait_for(lambda: 'msg="flusher started"' in d.output(), 30, "the flusher")
        t1 = time.monotonic()
        # A drain takes a fraction of a second: poll finely, or the step
        # is what is measured.
        harness.wait_for(lambda: (lambda q: q["depth"] == 0 and q["in_flight"] == 0)(
            self.svc.queue()), 300, "the queue to drain", step=0.005)
        t2 = time.monotonic()
        self.assertEqual(d.terminate(), 0)
        return t2 - t1, t1 - t0

    def test_duplicate_key_storm(self):
        n, rounds = self.JOBS, self.ROUNDS
        self.svc.sql("INSERT INTO keyed SELECT g, 'existing' FROM generate_series(1, %d) g" % n)
        ratios = []
        for r in range(rounds):
            # Clean: keys above anything the table holds.
            clean = ['{"id": %d, "payload": "clean"}' % (10 * n + r * n + i) for i in range(n)]
            post_many(self.svc, "keyed", clean)
            clean_s, _ = self.drain("clean%d" % r)
            # Storm: every 10th job reuses an existing key (another one each
            # round).
            storm = ['{"id": %d, "payload": "storm"}' % (i + 1 + r if i % 10 == 0
                                                          else 20 * n + r * n + i)
                     for i in range(n)]
            ids = post_many(self.svc, "keyed", storm)
            storm_s, _ = self.drain("storm%d" % r)
            ratios.append((n / storm_s) / (n / clean_s))
            print("\nstorm round %d: %d one-record jobs each; clean %.0f rows/s, 10%% duplicate "
                  "keys %.0f rows/s; ratio %.2f"
                  % (r, n, n / clean_s, (n - n // 10) / storm_s, ratios[-1]))
        dead = self.svc.queue()["dead_jobs"]
        self.assertEqual(dead, rounds * (n // 10))
        self.assertEqual(self.svc.sql("SELECT count(*) FROM keyed WHERE payload = 'storm'"),
                         [[str(rounds * (n - n // 10))]])
        self.assertEqual(self.svc.sql("SELECT count(*) FROM keyed WHERE payload = 'clean'"),
                         [[str(rounds * n)]])
        st, job = self.svc.job(ids[10])
        self.assertEqual(job["status"], "failed")
        self.assertIn("SQLSTATE 23505: duplicate key value violates unique constraint "
                      "\"keyed_pkey\"", job["error"])
        self.assertGreaterEqual(max(ratios), 0.5, ratios)


class RedefinedSinkTest(harness.ServiceTest):
    """A sink's columns changed in the config while its jobs waited."""
    SINKS = """
[sink.kv]
table = public.kv
columns = a bigint not null, b bigint, note varchar(10)
"""
    TABLES = "CREATE TABLE kv (a bigint NOT NULL, b bigint, note text, extra integer);"
    FLUSHER = False

    def restart_with(self, columns, flusher=True):
        """Rewrite the sink's columns; restart the server (and a flusher)."""
        self.svc.server.terminate()
        for d in self.svc.flushers.values():
            if d.alive():
                d.terminate()
        with open(self.svc.config) as f:
            text = f.read()
        start = text.index("columns = ", text.index("[sink.kv]"))
        end = text.find("\n[", start)
        text = text[:start] + "columns = " + columns + "\n" + (text[end + 1:] if end >= 0 else "")
        with open(self.svc.config, "w") as f:
            f.write(text)
        self.svc.start_server()
        if flusher:
            self.svc.start_flusher("f%d" % len(self.svc.flushers))

    def test_1_reordered_columns_map_by_name(self):
        ids = [self.svc.post_ok("kv", {"a": i, "b": 10 * i, "note": "n%d" % i}) for i in range(5)]
        # Reordered, one column added, varchar widened to text.
        self.restart_with("note text, extra integer, b bigint, a bigint not null")
        self.svc.wait_jobs(ids)
        self.assertEqual(self.svc.sql("SELECT a, b, note, extra IS NULL FROM kv ORDER BY a"),
                         [[str(i), str(10 * i), "n%d" % i, "t"] for i in range(5)])
        # New jobs use the new order.
        self.svc.wait_jobs([self.svc.post_ok("kv", {"a": 9, "b": 90, "note": "new", "extra": 1})])
        self.assertEqual(self.svc.sql("SELECT note, extra FROM kv WHERE a = 9"), [["new", "1"]])

    def test_2_unsafe_change_dead_letters_and_requeue_after_fix(self):
        self.restart_with("a bigint not null, b bigint, note varchar(10)", flusher=False)
        ids = [self.svc.post_ok("kv", {"a": 100 + i, "b": 7, "note": "x"}) for i in range(3)]
        # b narrowed to integer while they waited: not every bigint fits.
        self.svc.sql("ALTER TABLE kv ALTER COLUMN b TYPE integer")
        self.restart_with("a bigint not null, b integer, note varchar(10)")
        self.svc.wait_jobs(ids, want="failed")
        err = self.svc.job(ids[0])[1]["error"]
        self.assertIn("column b was bigint and is now integer", err)
        self.assertEqual(self.svc.sql("SELECT count(*) FROM kv WHERE a >= 100"), [["0"]])
        # The fix: the old definition back; the jobs come back and land.
        self.restart_with("a bigint not null, b integer, note varchar(10)", flusher=False)
        self.svc.sql("ALTER TABLE kv ALTER COLUMN b TYPE bigint")
        self.restart_with("a bigint not null, b bigint, note varchar(10)")
        self.assertIn("3 requeued", self.svc.ctl("dead", "requeue", "--all").stdout)
        self.svc.wait_jobs(ids)
        self.assertEqual(self.svc.sql("SELECT count(*), min(b) FROM kv WHERE a >= 100"),
                         [["3", "7"]])


class BoundsTest(harness.ServiceTest):
    """Batches bounded in bytes; the dead-letter store bounded in count."""
    SINKS = SINKS
    TABLES = TABLES + "CREATE TABLE IF NOT EXISTS checked (id bigint PRIMARY KEY, qty integer);"
    FLUSHER = False
    EXTRA = {"flusher": {"batch_max_bytes": "4096", "flush_interval_ms": "50",
                         "dead_max_jobs": "5"},
             "log": {"level": "debug"}}

    def test_1_batches_bounded_in_bytes(self):
        text = "p" * 700   # each job's envelope is a little over 700 bytes
        ids = [self.svc.post_ok("events", {"id": 1000 + i, "payload": text}) for i in range(30)]
        big = self.svc.post_ok("events", {"id": 5000, "payload": "q" * 6000})
        d = self.svc.start_flusher("bytes")
        self.svc.wait_jobs(ids + [big])
        sizes = [int(line.split("jobs=")[1].split()[0]) for line in d.output().splitlines()
                 if 'msg="batch committed"' in line]
        self.assertEqual(sum(sizes), 31, sizes)
        self.assertLessEqual(max(sizes), 5, sizes)   # 5 x ~720 bytes < 4096
        self.assertIn(1, sizes)                      # the 6 KB job alone

    def test_2_dead_letters_bounded(self):
        bad = [self.svc.post_ok("words", {"w": incompressible(4000) + str(i), "n": i})
               for i in range(8)]
        if "bytes" not in self.svc.flushers:
            self.svc.start_flusher("bytes")
        self.svc.wait_jobs(bad, want="failed", timeout=60)
        harness.wait_drained(self.svc)
        if self.svc.shards:
            # Each shard keeps its share, ceil(5 / N), newest first.
            share = -(-5 // self.svc.shards)
            per = {}
            for j in bad:
                per.setdefault(j[21:23], []).append(j)
            kept = [j for jobs in per.values() for j in jobs[-share:]]
            self.assertEqual(self.svc.queue()["dead_jobs"], len(kept))
            _, _, body = self.svc.request("GET", "/v1/stats")
            self.assertEqual(json.loads(body)["dead_dropped_total"], 8 - len(kept))
            listed = [l.split()[0] for l in self.svc.ctl("dead", "list").stdout.splitlines()
                      if "error=" in l]
            self.assertEqual(set(listed), set(kept))
            for j in set(bad) - set(kept):
                self.assertEqual(self.svc.job(j)[1]["status"], "failed")
            return
        self.assertEqual(self.svc.queue()["dead_jobs"], 5)
        _, _, body = self.svc.request("GET", "/v1/stats")
        self.assertEqual(json.loads(body)["dead_dropped_total"], 3)
        # The newest five are kept; the dropped ones still say failed.
        listed = [l.split()[0] for l in self.svc.ctl("dead", "list").stdout.splitlines()
                  if "error=" in l]
        self.assertEqual(set(listed), set(bad[3:]))
        self.assertEqual(self.svc.job(bad[0])[1]["status"], "failed")
        self.assertIn("dead letters dropped", self.svc.flushers["bytes"].output())


class LedgerPruneTest(harness.ServiceTest):
    """The ledger is pruned in chunks, by one flusher at a time."""
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False

    def count(self):
        return int(self.svc.sql("SELECT count(*) FROM spillway.ledger")[0][0])

    def test_prune(self):
        self.svc.sql("INSERT INTO spillway.ledger SELECT gen_random_uuid(), 'old', "
                     "now() - interval '8 days' FROM generate_series(1, 12000); "
                     "INSERT INTO spillway.ledger SELECT gen_random_uuid(), 'new', now() "
                     "FROM generate_series(1, 10)")
        # Another flusher prunes (it holds the lock): this one leaves it.
        name = "sw-prune-%d" % os.getpid()
        holder = subprocess.Popen(
            ["psql", "-X", "-q", "-d", self.svc.db, "-c",
             "SELECT pg_advisory_lock(7326813450129871); SELECT pg_sleep(60)"],
            env=dict(os.environ, PGAPPNAME=name), stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        try:
            harness.wait_for(lambda: self.svc.sql(
                "SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a USING (pid) "
                "WHERE a.application_name = '%s' AND l.locktype = 'advisory' AND l.granted"
                % name)[0][0] == "1", 30, "the advisory lock")
            d = self.svc.start_flusher("p1")
            harness.wait_for(lambda: 'msg="flusher started"' in d.output(), 30, "the flusher")
            time.sleep(1)
            self.assertEqual(self.count(), 12010)
            d.terminate()
        finally:
            self.svc.sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                         "WHERE application_name = '%s'" % name)
            holder.wait(timeout=30)
        d = self.svc.start_flusher("p2")
        harness.wait_for(lambda: self.count() == 10, 30, "the prune")
        self.assertIn('msg="ledger pruned" rows=12000', d.output())


if __name__ == "__main__":
    harness.main()
