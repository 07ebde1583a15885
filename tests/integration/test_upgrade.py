"""An upgrade with jobs queued and in flight: Redis as release 0.1 left it
(fixtures/redis-0.1.json: the bytes 0.1's daemons wrote, see
fixtures/capture_redis.py) is loaded into a fresh Redis, and this
release's daemons take over. Every queued and in-flight job commits
exactly once, nothing is dead-lettered, the old dead letters can be listed
and requeued, old statuses answer, and an old Idempotency-Key still holds."""

import base64
import json
import os
import socket
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

FIXTURE = os.path.join(os.path.dirname(__file__), "fixtures", "redis-0.1.json")
SINKS = harness.EVENTS_SINK + harness.CHECKED_SINK
TABLES = harness.EVENTS_TABLE + harness.CHECKED_TABLE


def resp(*args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def load(port, keys):
    """Write the fixture's keys, byte for byte, with their TTLs."""
    cmds = []
    for k, e in keys.items():
        t = e["type"]
        if t == "string":
            cmds.append(resp("SET", k, base64.b64decode(e["value"])))
        elif t == "list":
            cmds.append(resp("RPUSH", k, *[base64.b64decode(v) for v in e["items"]]))
        elif t == "hash":
            flat = []
            for f, v in e["fields"].items():
                flat += [f, base64.b64decode(v)]
            cmds.append(resp("HSET", k, *flat))
        elif t == "set":
            cmds.append(resp("SADD", k, *e["members"]))
        else:
            raise AssertionError("fixture type %s" % t)
        if e["pttl"] > 0:
            cmds.append(resp("PEXPIRE", k, e["pttl"]))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(b"".join(cmds))
        f = s.makefile("rb")
        for _ in cmds:
            line = f.readline()
            assert line[:1] in (b"+", b":"), line


class UpgradeTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False
    # Release 0.1's data is one queue: an upgrade keeps shards = 0 (a
    # daemon with shards would be refused by the layout guard... once one
    # exists; 0.1 wrote none, so here the layout is pinned).
    EXTRA = {"redis": {"shards": "0"}}

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        with open(FIXTURE) as f:
            cls.fx = json.load(f)
        svc = cls.svc
        # The daemons run under the fixture's prefix.
        svc.server.terminate()
        with open(svc.config) as f:
            text = f.read().replace("prefix = %s" % svc.prefix, "prefix = " + cls.fx["prefix"])
        with open(svc.config, "w") as f:
            f.write(text)
        svc.prefix = cls.fx["prefix"]
        load(svc.redis.port, cls.fx["keys"])
        svc.start_server()

    def test_1_queued_and_in_flight_jobs_commit_once(self):
        jobs = self.fx["jobs"]
        # f2 held the in-flight batch when 0.1 was killed; f3 is new.
        self.svc.start_flusher("f2")
        self.svc.start_flusher("f3")
        self.svc.wait_jobs(jobs["in_flight"] + jobs["queued"], timeout=60)
        harness.wait_drained(self.svc)
        want = {100 + i for i in range(5)} | {200 + i for i in range(5)} | \
            {300 + i for i in range(7)}
        rows = [int(r[0]) for r in self.svc.sql("SELECT id FROM events")]
        self.assertEqual(sorted(rows), sorted(want))
        q = self.svc.queue()
        self.assertEqual((q["depth"], q["in_flight"], q["queued_jobs"], q["dead_jobs"]),
                         (0, 0, 0, 2))
        # The statuses 0.1 wrote still answer.
        for j in jobs["committed"]:
            self.assertEqual(self.svc.job(j)[1]["status"], "committed")
        log = self.svc.flushers["f2"].output()
        self.assertIn("dead letters converted from the 0.1 layout", log + self.svc.flushers["f3"].output())

    def test_2_old_dead_letters_list_and_requeue(self):
        bad = self.fx["jobs"]["failed"]
        out = self.svc.ctl("dead", "list").stdout
        for j in bad:
            self.assertIn(j, out)
        self.assertEqual(out.count("SQLSTATE 23514"), 2, out)
        self.svc.sql("ALTER TABLE checked DROP CONSTRAINT checked_qty_check")
        self.assertIn("2 requeued", self.svc.ctl("dead", "requeue", "--all").stdout)
        if not any(d.alive() for d in self.svc.flushers.values()):
            self.svc.start_flusher("f3")
        self.svc.wait_jobs(bad)
        self.assertEqual(self.svc.sql("SELECT count(*) FROM checked WHERE qty = -1"), [["2"]])
        self.assertEqual(self.svc.queue()["dead_jobs"], 0)

    def test_3_old_idempotency_key_holds(self):
        idem = self.fx["idempotency"]
        h = {"Content-Type": "application/json", "Idempotency-Key": idem["key"]}
        code, _, body = self.svc.request("POST", "/v1/sinks/%s/records" % idem["sink"],
                                         idem["body"], h)
        self.assertEqual(code, 200, body)
        code, _, body = self.svc.request("POST", "/v1/sinks/%s/records" % idem["sink"],
                                         '[{"id": 51, "payload": "other"}]', h)
        self.assertEqual(code, 409, body)


if __name__ == "__main__":
    harness.main()
