"""Merge sinks, deletes and per-key order (common/keyed.h), as a client
uses them: partial updates that keep the fields they do not name, deletes
by key (one object, an array or NDJSON) that apply in acceptance order
with the writes around them, within a batch and across batches, and a
version_column that makes the last accepted write or delete of a key win
whichever flusher commits it and in whatever order: a write that lands
after a newer one, or after a newer delete (its tombstone), changes
nothing. Last, four flushers with batches forced to interleave (a trigger
that sleeps a random few ms per row) take thousands of writes and deletes
to five hot keys: the rows equal a sequential replay."""

import json
import os
import random
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS = harness.CHECKED_SINK + """
[sink.people]
table = public.people
mode = merge
key = id
version_column = version
columns = id bigint not null, name text, city text, visits integer not null, tags jsonb

[sink.acct]
table = public.acct
mode = merge
key = id
columns = id bigint not null, balance integer not null, note text

[sink.events]
table = public.events
key = id
deletes = on
columns = id bigint not null, note text
"""
TABLES = harness.CHECKED_TABLE + """
CREATE TABLE people (id bigint PRIMARY KEY, name text, city text DEFAULT 'nowhere',
                     visits integer NOT NULL DEFAULT 0, tags jsonb, version bigint);
CREATE TABLE events (id bigint NOT NULL, note text);
CREATE TABLE acct (id bigint PRIMARY KEY, balance integer NOT NULL CHECK (balance >= 0),
                   note text);
"""


def delete(svc, sink, body, ctype="application/json", headers=None):
    if not isinstance(body, str):
        body = json.dumps(body)
    h = {"Content-Type": ctype}
    h.update(headers or {})
    return svc.request("DELETE", "/v1/sinks/%s/records" % sink, body, h)


def delete_ok(svc, sink, body, ctype="application/json"):
    status, _, out = delete(svc, sink, body, ctype)
    if status != 202:
        raise AssertionError("DELETE got %d: %s" % (status, out))
    return json.loads(out)["job_id"]


class KeyedTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES

    def person(self, pid):
        rows = self.svc.sql("SELECT name, city, visits, tags::text, version > 0 FROM people "
                            "WHERE id = %d" % pid)
        return rows[0] if rows else None

    def in_one_batch(self, sink, ops, wait=True):
        """Run `ops` (callables returning job ids) while the sink's flushing
        is paused, then resume: the parked jobs come back in one claim."""
        svc = self.svc
        seen = "".join(f.output() for f in svc.flushers.values()).count(
            'msg="sink flushing paused" sink=%s' % sink)
        svc.ctl("sink", "pause", sink, "--flush")
        try:
            harness.wait_for(lambda: "".join(f.output() for f in svc.flushers.values()).count(
                'msg="sink flushing paused" sink=%s' % sink) > seen, 5, "the flusher to see it")
            # One line per process; each shard's drain looks once a second.
            time.sleep(1.1)
            ids = [op() for op in ops]
            harness.wait_for(lambda: svc.llen("parked:" + sink) == len(ids), 10,
                             "the jobs to be parked")
        finally:
            svc.ctl("sink", "resume", sink, "--flush")
        if wait:
            svc.wait_jobs(ids)
        return ids

    def test_1_merge_updates_only_the_named_fields(self):
        svc = self.svc
        svc.wait_jobs([svc.post_ok("people", {"id": 1, "name": "ann", "visits": 3,
                                              "tags": ["a"]})])
        self.assertEqual(self.person(1), ["ann", "nowhere", "3", '["a"]', "t"])
        svc.wait_jobs([svc.post_ok("people", {"id": 1, "city": "oslo"})])
        self.assertEqual(self.person(1), ["ann", "oslo", "3", '["a"]', "t"])
        # An explicit null still sets NULL.
        svc.wait_jobs([svc.post_ok("people", [{"id": 1, "tags": None}])])
        self.assertEqual(self.person(1), ["ann", "oslo", "3", "", "t"])
        # A new row takes the table's defaults for what the write leaves out.
        svc.wait_jobs([svc.post_ok("people", {"id": 2})])
        self.assertEqual(self.person(2), ["", "nowhere", "0", "", "t"])
        # The key is what a merge cannot do without.
        status, _, body = svc.post("people", {"name": "nobody"})
        self.assertEqual(status, 422, body)
        self.assertIn(b'missing key field \\"id\\"', body)
        # Partial writes to one key in one batch combine in order: the later
        # value wins, fields only an earlier write named survive.
        self.in_one_batch("people", [
            lambda: svc.post_ok("people", {"id": 3, "name": "a", "visits": 1}),
            lambda: svc.post_ok("people", {"id": 3, "city": "b"}),
            lambda: svc.post_ok("people", "\n".join(json.dumps(r) for r in [
                {"id": 3, "name": "c"}, {"id": 4, "visits": 7}, {"id": 3, "visits": 2}]),
                "application/x-ndjson")])
        self.assertEqual(self.person(3), ["c", "b", "2", "", "t"])
        self.assertEqual(self.person(4), ["", "nowhere", "7", "", "t"])

    def test_2_deletes(self):
        svc = self.svc
        svc.wait_jobs([svc.post_ok("people", [{"id": 20, "name": "x"}, {"id": 21},
                                              {"id": 22}, {"id": 23}])])
        svc.wait_jobs([delete_ok(svc, "people", {"id": 20})])
        self.assertIsNone(self.person(20))
        self.assertEqual(svc.sql("SELECT key::text, version > 0 FROM spillway.tombstones "
                                 "WHERE sink = 'people'"), [["{20}", "t"]])
        # An array, NDJSON, and a key no row has: none is an error.
        svc.wait_jobs([delete_ok(svc, "people", [{"id": 21}, {"id": 999}]),
                       delete_ok(svc, "people", '{"id": 22}\n\n{"id": 23}\n',
                                 "application/x-ndjson")])
        self.assertEqual(svc.sql("SELECT count(*) FROM people WHERE id BETWEEN 20 AND 23"),
                         [["0"]])
        # What a delete may hold, said at once; nothing is queued.
        for body, want in [({"id": 1, "name": "x"}, b'not a key column'),
                           ({}, b'missing key field'),
                           ({"id": None}, b'\\"id\\"'),
                           ([{"id": 1}, {"id": "one"}], b'record 1'),
                           ({"ID": 1}, b'unknown field')]:
            status, _, out = delete(svc, "people", body)
            self.assertEqual(status, 422, (body, out))
            self.assertIn(want, out)
            self.assertEqual(json.loads(out)["type"].rsplit(":", 1)[-1], "validation")
        status, _, out = delete(svc, "checked", {"id": 1})
        self.assertEqual(status, 422, out)
        self.assertEqual(json.loads(out)["type"].rsplit(":", 1)[-1], "deletes-not-allowed")
        self.assertIn(b"deletes = on", out)
        status, headers, _ = svc.request("PUT", "/v1/sinks/people/records", "{}",
                                         {"Content-Type": "application/json"})
        self.assertEqual((status, headers.get("allow")), (405, "POST, DELETE"))

        # In one batch: a write, a delete, a write: the row is replaced (the
        # field named before the delete does not survive); a write then a
        # delete: no row; an existing row deleted and written again.
        svc.wait_jobs([svc.post_ok("people", {"id": 7, "name": "old", "city": "rome"})])
        self.in_one_batch("people", [
            lambda: svc.post_ok("people", {"id": 5, "name": "x", "city": "y"}),
            lambda: delete_ok(svc, "people", {"id": 5}),
            lambda: svc.post_ok("people", {"id": 5, "name": "z"}),
            lambda: svc.post_ok("people", {"id": 6, "name": "gone"}),
            lambda: delete_ok(svc, "people", {"id": 6}),
            lambda: delete_ok(svc, "people", {"id": 7}),
            lambda: svc.post_ok("people", {"id": 7, "visits": 9})])
        self.assertEqual(self.person(5), ["z", "nowhere", "0", "", "t"])
        self.assertIsNone(self.person(6))
        self.assertEqual(self.person(7), ["", "nowhere", "9", "", "t"])

        # An insert sink with deletes = on: a delete removes every row of
        # its key inserted before it, never one inserted after.
        svc.wait_jobs([svc.post_ok("events", [{"id": 1, "note": "a"}, {"id": 1, "note": "b"},
                                              {"id": 2, "note": "keep"}])])
        svc.wait_jobs([delete_ok(svc, "events", {"id": 1})])
        self.in_one_batch("events", [
            lambda: svc.post_ok("events", {"id": 3, "note": "x"}),
            lambda: delete_ok(svc, "events", [{"id": 3}, {"id": 1}]),
            lambda: svc.post_ok("events", [{"id": 3, "note": "y"}, {"id": 1, "note": "c"}])])
        self.assertEqual(svc.sql("SELECT id, note FROM events ORDER BY id, note"),
                         [["1", "c"], ["2", "keep"], ["3", "y"]])

    def lmove(self, src, dst, end="RIGHT"):
        """The oldest job of list `src` (or with end="LEFT" its newest) to
        the newest end of `dst`."""
        out = subprocess.run(["redis-cli", "-p", str(self.svc.redis.port), "LMOVE", src, dst,
                              end, "LEFT"], capture_output=True, timeout=10)
        self.assertEqual(out.returncode, 0)
        self.assertGreater(len(out.stdout), 60)   # an envelope, not (nil)

    def test_3_an_older_write_that_lands_late_changes_nothing(self):
        """A job taken out of the queue and put back after newer jobs to
        its key committed: a batch that landed late."""
        svc = self.svc
        self.assertEqual(svc.flushers["f1"].terminate(), 0)
        late = svc.post_ok("people", {"id": 30, "name": "old", "city": "old"})
        late_del = svc.post_ok("people", {"id": 31, "name": "old"})
        # The only jobs queued: move each aside, oldest first (with shards,
        # each in its key's queue).
        stashed = [svc.job_prefix(late), svc.job_prefix(late_del)]
        for p in stashed:
            self.lmove(p + ":queue", p + ":stash")
        self.assertEqual(sum(int(svc.redis.cli("LLEN", p + ":stash")) for p in set(stashed)), 2)
        newer = [svc.post_ok("people", {"id": 30, "name": "new"}),
                 svc.post_ok("people", {"id": 31, "name": "new"}),
                 delete_ok(svc, "people", {"id": 31})]
        svc.start_flusher("f1")
        svc.wait_jobs(newer)
        self.assertEqual(self.person(30), ["new", "nowhere", "0", "", "t"])
        self.assertIsNone(self.person(31))
        # Back at the queue's newest end: the flusher takes them now.
        for p in stashed:
            self.lmove(p + ":stash", p + ":queue")
        svc.wait_jobs([late, late_del])
        # Committed, and older than what the rows saw: the row keeps the
        # newer write (the city the old write named too: the version is
        # the row's, not the field's), and the deleted row stays deleted.
        self.assertEqual(self.person(30), ["new", "nowhere", "0", "", "t"])
        self.assertIsNone(self.person(31))
        # A newer write than the tombstone brings the row back.
        svc.wait_jobs([svc.post_ok("people", {"id": 31, "name": "again"})])
        self.assertEqual(self.person(31), ["again", "nowhere", "0", "", "t"])

        # Partial writes W1 {name, city}, W2 {city}, W3 {name}: W2 commits
        # first, then W1 and W3 land in one batch. A replay gives W3's name
        # and W2's city: W1, older than the row, lends the fold nothing.
        self.assertEqual(svc.flushers["f1"].terminate(), 0)
        w1 = svc.post_ok("people", {"id": 32, "name": "n1", "city": "c1"})
        w2 = svc.post_ok("people", {"id": 32, "city": "c2"})
        w3 = svc.post_ok("people", {"id": 32, "name": "n3"})
        p = svc.job_prefix(w1)
        self.lmove(p + ":queue", p + ":stash")            # W1, the oldest
        self.lmove(p + ":queue", p + ":stash3", "LEFT")   # W3, the newest
        svc.start_flusher("f1")
        svc.wait_jobs([w2])
        self.assertEqual(self.person(32), ["", "c2", "0", "", "t"])
        self.in_one_batch("people", [lambda: self.lmove(p + ":stash", p + ":queue") or w1,
                                     lambda: self.lmove(p + ":stash3", p + ":queue") or w3])
        self.assertEqual(self.person(32), ["n3", "c2", "0", "", "t"])

    def test_4_not_null_columns_and_isolation(self):
        """A merge that leaves out a NOT NULL column without a default
        updates the row; a new row without it fails with PostgreSQL's
        error. A keyed batch with a job PostgreSQL refuses isolates it: the
        others apply, in order."""
        svc = self.svc
        svc.wait_jobs([svc.post_ok("acct", {"id": 1, "balance": 5})])
        svc.wait_jobs([svc.post_ok("acct", {"id": 1, "note": "x"})])
        self.assertEqual(svc.sql("SELECT balance, note FROM acct WHERE id = 1"), [["5", "x"]])
        bad = svc.post_ok("acct", {"id": 2, "note": "y"})
        svc.wait_jobs([bad], want="failed")
        self.assertIn("SQLSTATE 23502", svc.job(bad)[1]["error"])
        ids = self.in_one_batch("acct", [
            lambda: svc.post_ok("acct", {"id": 1, "balance": 7}),
            lambda: svc.post_ok("acct", [{"id": 3, "balance": 1}, {"id": 4, "balance": -1}]),
            lambda: svc.post_ok("acct", {"id": 1, "note": "z"}),
            lambda: delete_ok(svc, "acct", {"id": 1}),
            lambda: svc.post_ok("acct", {"id": 1, "balance": 9})], wait=False)
        svc.wait_jobs(ids[:1] + ids[2:])
        svc.wait_jobs(ids[1:2], want="failed")
        self.assertIn("SQLSTATE 23514", svc.job(ids[1])[1]["error"])
        self.assertEqual(svc.sql("SELECT id, balance, note FROM acct ORDER BY id"),
                         [["1", "9", ""]])

    def test_5_check_config_checks_the_version_column(self):
        svc = self.svc
        self.assertIn("sink people: ok", svc.ctl("check-config").stdout)
        for broken, mend, want in [
                ("RENAME COLUMN version TO v2", "RENAME COLUMN v2 TO version",
                 "version_column version is not in table public.people"),
                ("ALTER COLUMN version TYPE numeric", "ALTER COLUMN version TYPE bigint",
                 "version_column version is numeric in the table; it must be bigint")]:
            svc.sql("ALTER TABLE people " + broken)
            try:
                out = svc.ctl("check-config", check=False)
            finally:
                svc.sql("ALTER TABLE people " + mend)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn(want, out.stdout + out.stderr)


HOT_SINK = """
[sink.hot]
table = public.hot
mode = upsert
key = k
version_column = ver
columns = k integer not null, v text not null, n integer not null

[sink.hotm]
table = public.hotm
mode = merge
key = k
version_column = ver
columns = k integer not null, v text not null, n integer not null
"""
HOT_TABLE = """
CREATE TABLE hot (k integer PRIMARY KEY, v text NOT NULL, n integer NOT NULL, ver bigint);
CREATE TABLE hotm (k integer PRIMARY KEY, v text NOT NULL, n integer NOT NULL, ver bigint);
CREATE FUNCTION jitter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN PERFORM pg_sleep(random() * 0.02); RETURN NULL; END $$;
"""


class InterleavedTest(harness.ServiceTest):
    SINKS = HOT_SINK
    TABLES = HOT_TABLE
    EXTRA = {"flusher": {"batch_max_records": "8", "flush_interval_ms": "5"}}

    def test_1_four_flushers_equal_a_sequential_replay(self):
        svc = self.svc
        # Each job the ledger records (the first thing a batch does in its
        # transaction) sleeps a random few ms: batches of different
        # flushers reach their keys in any order, so they commit in any
        # order.
        svc.sql("CREATE TRIGGER jitter BEFORE INSERT ON spillway.ledger FOR EACH STATEMENT "
                "EXECUTE FUNCTION jitter()")
        for fid in ("f2", "f3", "f4"):
            svc.start_flusher(fid)
        # Everything is accepted while flushing is paused, then four
        # flushers take batches of 8 at once. Each operation goes to an
        # upsert sink and to a merge sink (its writes name every field).
        sinks = ("hot", "hotm")
        for sink in sinks:
            svc.ctl("sink", "pause", sink, "--flush")
        harness.wait_for(lambda: all('msg="sink flushing paused" sink=hotm' in f.output()
                                     for f in svc.flushers.values()), 10,
                         "every flusher to see the pause")
        time.sleep(1.1)   # each shard's drain looks once a second
        rnd = random.Random(14)
        replay, ids = {}, []
        for i in range(2400):
            k = rnd.randrange(5)
            if rnd.random() < 0.2:
                ids += [delete_ok(svc, sink, {"k": k}) for sink in sinks]
                replay.pop(k, None)
            else:
                ids += [svc.post_ok(sink, {"k": k, "v": "w%d" % i, "n": i}) for sink in sinks]
                replay[k] = ("w%d" % i, i)
        harness.wait_for(lambda: sum(svc.llen("parked:" + sink) for sink in sinks) +
                         svc.llen("queue") == len(ids), 30, "every job parked or queued")
        for sink in sinks:
            svc.ctl("sink", "resume", sink, "--flush")
        svc.wait_jobs(ids, timeout=120)
        for sink in sinks:
            rows = {int(r[0]): (r[1], int(r[2]))
                    for r in svc.sql("SELECT k, v, n FROM %s" % sink)}
            self.assertEqual(rows, replay, sink)
        # The four flushers all committed batches, so batches overlapped.
        # (With shards, each key's jobs go to one shard, drained by one
        # flusher at a time: order holds without overlap.)
        if not svc.shards:
            used = svc.sql("SELECT count(DISTINCT flusher) FROM spillway.ledger")
            self.assertEqual(used, [["4"]])


if __name__ == "__main__":
    harness.main()
