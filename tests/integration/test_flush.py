"""From 202 to rows: values per type, upsert/ignore semantics, poison
jobs isolated, a re-run batch recognised by the ledger, check-config."""

import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS = """
[sink.typed]
table = public.typed
columns = id bigint not null, s smallint, i integer, r real, d double precision,
  n numeric, f boolean, t text, v varchar(5), u uuid, dt date, tz timestamptz,
  ts timestamp, j json, jb jsonb

[sink.kv]
table = public.kv
mode = upsert
key = k
columns = k text not null, v integer, note text

[sink.first]
table = public.first
mode = ignore
key = k
columns = k text not null, v integer

[sink.checked]
table = public.checked
columns = id bigint not null, qty integer not null
"""
TABLES = """
CREATE TABLE typed (id bigint PRIMARY KEY, s smallint, i integer, r real, d double precision,
  n numeric, f boolean, t text, v varchar(5), u uuid, dt date, tz timestamptz, ts timestamp,
  j json, jb jsonb, created_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE kv (k text PRIMARY KEY, v integer, note text DEFAULT 'dflt');
CREATE TABLE first (k text PRIMARY KEY, v integer);
CREATE TABLE checked (id bigint PRIMARY KEY, qty integer NOT NULL CHECK (qty > 0));
"""


class FlushTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False

    def test_1_values_land_exactly(self):
        self.svc.start_flusher("f1")
        rec = {"id": 1, "s": -7, "i": 2147483647, "r": 1.5, "d": 0.1,
               "n": "123456789012345678901234567890.000000001", "f": True,
               "t": "tab\there\nnewline \\ back é", "v": "héllo",
               "u": "0190A0E4-7B8C-7ABC-8123-456789ABCDEF", "dt": "2024-02-29",
               "tz": "2026-01-31T12:00:00.250+02:00", "ts": "2026-01-31T12:00:00",
               "j": {"b": [1, 2.5], "a": None}, "jb": {"x": 0.1}}
        jid = self.svc.post_ok("typed", [rec, {"id": 2}])
        self.svc.wait_jobs([jid])
        code, job = self.svc.job(jid)
        self.assertEqual(job["status"], "committed")
        self.assertRegex(job["committed_at"], harness_rfc3339())
        self.assertGreaterEqual(job["committed_at"], job["enqueued_at"])
        rows = self.svc.sql(
            "SELECT s, i, r, d, n, f, t = E'tab\\there\\nnewline \\\\ back \u00e9', v, u, dt, "
            "tz AT TIME ZONE 'UTC', ts, j::text, jb::text FROM typed WHERE id = 1")
        self.assertEqual(rows, [["-7", "2147483647", "1.5", "0.1",
                                 "123456789012345678901234567890.000000001", "t", "t", "héllo",
                                 "0190a0e4-7b8c-7abc-8123-456789abcdef", "2024-02-29",
                                 "2026-01-31 10:00:00.25", "2026-01-31 12:00:00",
                                 '{"b":[1,2.5],"a":null}', '{"x": 0.1}']])
        # Record 2: every nullable column missing is NULL; the table
        # default fills an unlisted column.
        rows = self.svc.sql("SELECT s IS NULL, t IS NULL, jb IS NULL, created_at IS NOT NULL "
                            "FROM typed WHERE id = 2")
        self.assertEqual(rows, [["t", "t", "t", "t"]])

    def test_2_upsert_last_wins_ignore_first_wins(self):
        # All in one batch (later writes to one key in one INSERT) and
        # across batches.
        ids = [self.svc.post_ok("kv", [{"k": "a", "v": 1}, {"k": "b", "v": 1}, {"k": "a", "v": 2}]),
               self.svc.post_ok("kv", [{"k": "a", "v": 3, "note": "third"}]),
               self.svc.post_ok("first", [{"k": "a", "v": 1}, {"k": "a", "v": 2}]),
               self.svc.post_ok("first", {"k": "a", "v": 3})]
        self.svc.wait_jobs(ids)
        # A configured column missing from a record is NULL (the table
        # default applies only to columns the sink does not list).
        self.assertEqual(self.svc.sql("SELECT k, v, coalesce(note, 'NULL') FROM kv ORDER BY k"),
                         [["a", "3", "third"], ["b", "1", "NULL"]])
        jid = self.svc.post_ok("kv", {"k": "a", "v": 4})
        self.svc.wait_jobs([jid])
        # Upsert sets every configured non-key column: note was not sent,
        # so it becomes NULL.
        self.assertEqual(self.svc.sql("SELECT v, note IS NULL FROM kv WHERE k = 'a'"), [["4", "t"]])
        self.assertEqual(self.svc.sql("SELECT k, v FROM first"), [["a", "1"]])

    def test_3_poison_job_fails_alone(self):
        # Queue good and bad jobs with no flusher, so one batch holds them all.
        self.svc.flushers["f1"].terminate()
        good, bad = [], []
        for i in range(20):
            good.append(self.svc.post_ok("checked", [{"id": 1000 + 2 * i, "qty": 1},
                                                     {"id": 1001 + 2 * i, "qty": 2}]))
            if i in (3, 11):
                bad.append(self.svc.post_ok("checked", {"id": 5000 + i, "qty": -1}))
        dead_before = self.svc.queue()["dead_jobs"]
        self.svc.start_flusher("f2")
        self.svc.wait_jobs(good)
        self.svc.wait_jobs(bad, want="failed")
        for j in bad:
            code, job = self.svc.job(j)
            self.assertEqual(job["status"], "failed")
            self.assertIn("SQLSTATE 23514", job["error"])
            self.assertIn("checked_qty_check", job["error"])
        self.assertEqual(self.svc.sql("SELECT count(*), count(DISTINCT id) FROM checked"),
                         [["40", "40"]])
        self.assertEqual(self.svc.sql("SELECT count(*) FROM checked WHERE id >= 5000"), [["0"]])
        q = self.svc.queue()
        self.assertEqual(q["dead_jobs"], dead_before + 2)
        self.assertEqual((q["depth"], q["in_flight"]), (0, 0))

    def test_4_rerun_batch_is_not_applied_twice(self):
        """A crash between COMMIT and the Redis clean-up leaves a committed
        batch in a processing list; the flusher that resumes it must find
        it in the ledger and not insert again."""
        for d in self.svc.flushers.values():
            d.terminate()
        jid = self.svc.post_ok("checked", [{"id": 7000, "qty": 1}, {"id": 7001, "qty": 1}])
        p = self.svc.job_prefix(jid)
        self.assertEqual(self.svc.redis.cli("COPY", p + ":queue", p + ":saved"), "1")
        self.svc.start_flusher("f3")
        self.svc.wait_jobs([jid])
        self.svc.flushers["f3"].terminate()
        # Put the committed envelope back as if f4 had died before clean-up.
        self.svc.redis.cli("RENAME", p + ":saved", p + ":processing:f4")
        self.svc.redis.cli("HINCRBY", p + ":stats", "inflight_records", "2")
        self.svc.redis.cli("SET", p + ":inflight:f4", "2")
        self.assertEqual(self.svc.queue()["in_flight"], 2)
        self.svc.start_flusher("f4")
        harness.wait_for(lambda: self.svc.redis.cli("EXISTS", p + ":processing:f4") == "0", 15,
                         "f4 to finish its resumed batch")
        self.assertEqual(self.svc.sql("SELECT count(*) FROM checked WHERE id IN (7000, 7001)"),
                         [["2"]])
        self.assertEqual(self.svc.job(jid)[1]["status"], "committed")
        self.assertEqual(self.svc.queue()["in_flight"], 0)
        self.assertIn("resuming batch from processing list", self.svc.flushers["f4"].output())

    def test_5_check_config(self):
        # migrate ran at set-up; a second run applies nothing.
        self.assertIn("migrations: 0 applied", self.svc.ctl("migrate").stdout)
        self.assertEqual(self.svc.sql("SELECT version FROM spillway.schema_migrations"),
                         [["0001_ledger.sql"], ["0002_apply_each.sql"], ["0003_ledger_brin.sql"],
                          ["0004_keyed.sql"]])
        out = self.svc.ctl("check-config")
        self.assertIn("sink typed: ok", out.stdout)
        self.assertIn("sink kv: ok", out.stdout)
        self.svc.sql("ALTER TABLE first ALTER COLUMN v TYPE text; DROP TABLE checked")
        try:
            out = self.svc.ctl("check-config", check=False)
            self.assertEqual(out.returncode, 1)
            self.assertIn("sink first: column v is text in the table but integer in the config",
                          out.stderr)
            self.assertIn("sink checked: table public.checked does not exist", out.stderr)
            self.assertIn("2 mismatch(es)", out.stderr)
            # The flusher refuses to start on the same mismatch.
            d = self.svc.start_flusher("f5")
            self.assertNotEqual(d.proc.wait(timeout=30), 0)
            self.assertIn("sink does not match its table", d.output())
        finally:
            self.svc.sql("ALTER TABLE first ALTER COLUMN v TYPE integer USING v::integer;"
                         "CREATE TABLE checked (id bigint PRIMARY KEY, qty integer NOT NULL)")
        del self.svc.flushers["f5"]
        self.assertEqual(self.svc.ctl("check-config").returncode, 0)


    def test_6_sigterm_finishes_the_batch_in_hand(self):
        for d in self.svc.flushers.values():
            d.terminate()
        ids = [self.svc.post_ok("checked", {"id": 8000 + i, "qty": 1}) for i in range(5)]
        # A long interval and a large batch: the flusher holds the jobs.
        d = self.svc.start_flusher("f6", SPILLWAY_FLUSHER_FLUSH_INTERVAL_MS="600000",
                                   SPILLWAY_FLUSHER_BATCH_MAX_RECORDS="100000")
        harness.wait_for(lambda: self.svc.queue()["in_flight"] == 5, 15, "f6 to claim the jobs")
        self.assertEqual(self.svc.job(ids[0])[1]["status"], "queued")
        t0 = time.monotonic()
        self.assertEqual(d.terminate(timeout=30), 0)
        self.assertLess(time.monotonic() - t0, 10)
        for j in ids:
            self.assertEqual(self.svc.job(j)[1]["status"], "committed")
        self.assertEqual(self.svc.sql("SELECT count(*) FROM checked WHERE id >= 8000 AND id < 8005"),
                         [["5"]])
        self.assertEqual(self.svc.queue()["in_flight"], 0)
        self.assertIn('msg="flusher stopped"', d.output())


    def test_7_ledger_pruned_after_retention(self):
        for d in self.svc.flushers.values():
            d.terminate()
        self.svc.sql("INSERT INTO spillway.ledger (job_id, flusher, committed_at) VALUES "
                     "('00000000-0000-7000-8000-000000000001', 'old', now() - interval '8 days'),"
                     "('00000000-0000-7000-8000-000000000002', 'new', now() - interval '6 days')")
        before = int(self.svc.sql("SELECT count(*) FROM spillway.ledger")[0][0])
        d = self.svc.start_flusher("f7")
        harness.wait_for(lambda: 'msg="ledger pruned" rows=1' in d.output(), 15, "the prune")
        self.assertEqual(int(self.svc.sql("SELECT count(*) FROM spillway.ledger")[0][0]), before - 1)
        self.assertEqual(self.svc.sql("SELECT flusher FROM spillway.ledger WHERE job_id = "
                                      "'00000000-0000-7000-8000-000000000002'"), [["new"]])


    def test_8_dead_letters_list_drop_requeue(self):
        # test_3 left two jobs failed on the CHECK constraint that test_5
        # has since dropped: the operator "fixed the table".
        out = self.svc.ctl("dead", "list").stdout
        lines = [l for l in out.splitlines() if "error=" in l]
        self.assertEqual(len(lines), 2, out)
        for l in lines:
            self.assertIn("sink=checked records=1", l)
            self.assertIn("SQLSTATE 23514", l)
        self.assertIn("2 shown", out)
        self.assertEqual(len([l for l in self.svc.ctl("dead", "list", "--limit", "1").stdout.splitlines()
                              if "error=" in l]), 1)
        first = lines[0].split()[0]
        self.assertIn("1 dropped", self.svc.ctl("dead", "drop", first).stdout)
        self.assertEqual(self.svc.job(first)[1]["status"], "failed")
        second = lines[1].split()[0]
        for d in self.svc.flushers.values():
            d.terminate()
        self.assertIn("1 requeued", self.svc.ctl("dead", "requeue", "--all").stdout)
        self.assertEqual(self.svc.job(second)[1]["status"], "queued")
        self.assertEqual(self.svc.queue()["dead_jobs"], 0)
        self.svc.start_flusher("f8")
        self.svc.wait_jobs([second])
        self.assertEqual(self.svc.sql("SELECT count(*) FROM checked WHERE qty = -1"), [["1"]])
        out = self.svc.ctl("dead", "requeue", first, check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn("no dead-lettered job " + first, out.stderr)
        self.assertEqual(self.svc.ctl("dead", "bogus", check=False).returncode, 2)


def harness_rfc3339():
    return r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$"


class PartitionedTest(harness.ServiceTest):
    """Partitioned target tables (docs/OPERATIONS.md, scaling out): rows
    COPYed and upserted through the parent land in their partitions, and a
    row that fits no partition fails its job alone."""
    SINKS = """
[sink.pevents]
table = public.pevents
columns = id bigint not null, day date not null, payload text

[sink.pkv]
table = public.pkv
mode = upsert
key = k
columns = k bigint not null, v integer
"""
    TABLES = """
CREATE TABLE pevents (id bigint NOT NULL, day date NOT NULL, payload text) PARTITION BY RANGE (day);
CREATE TABLE pevents_jan PARTITION OF pevents FOR VALUES FROM ('2026-01-01') TO ('2026-02-01');
CREATE TABLE pevents_feb PARTITION OF pevents FOR VALUES FROM ('2026-02-01') TO ('2026-03-01');
CREATE TABLE pkv (k bigint PRIMARY KEY, v integer) PARTITION BY HASH (k);
CREATE TABLE pkv_0 PARTITION OF pkv FOR VALUES WITH (MODULUS 2, REMAINDER 0);
CREATE TABLE pkv_1 PARTITION OF pkv FOR VALUES WITH (MODULUS 2, REMAINDER 1);
"""
    FLUSHER = False

    def test_partitioned_tables(self):
        # Queued with no flusher, so they meet in one batch.
        good = [self.svc.post_ok("pevents", [{"id": i, "day": "2026-0%d-1%d" % (1 + i % 2, i % 10),
                                              "payload": "p"} for i in range(j * 10, j * 10 + 10)])
                for j in range(20)]
        bad = self.svc.post_ok("pevents", [{"id": 9999, "day": "2026-07-01"}])
        kv = [self.svc.post_ok("pkv", [{"k": k, "v": rnd} for k in range(50)]) for rnd in range(3)]
        self.svc.start_flusher("f1")
        self.svc.wait_jobs(good + kv)
        self.svc.wait_jobs([bad], want="failed")
        code, job = self.svc.job(bad)
        self.assertIn("no partition", job["error"])
        self.assertEqual(self.svc.sql("SELECT tableoid::regclass, count(*), count(DISTINCT id) "
                                      "FROM pevents GROUP BY 1 ORDER BY 1"),
                         [["pevents_jan", "100", "100"], ["pevents_feb", "100", "100"]])
        self.assertEqual(self.svc.sql("SELECT count(*), min(v), max(v) FROM pkv"),
                         [["50", "2", "2"]])
        self.assertEqual(self.svc.sql("SELECT count(*) > 0 FROM pkv_0"), [["t"]])
        self.assertEqual(self.svc.sql("SELECT count(*) > 0 FROM pkv_1"), [["t"]])


if __name__ == "__main__":
    harness.main()
