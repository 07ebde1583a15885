"""Redis Cluster: a 6-node cluster (3 masters, 3 replicas) on loopback
ports of its own, started here and stopped by pid. With a hash-tagged
prefix every Spillway key is in one slot, and the daemons follow that
slot: jobs (with and without Idempotency-Keys) land exactly once; the slot
migrated to another master under a write stream (SETSLOT MIGRATING /
IMPORTING, MIGRATE, SETSLOT NODE: MOVED, ASK and TRYAGAIN on the way)
loses nothing; the slot's master SIGKILLed under a write stream with
min_replica_acks = 1 loses no acknowledged record, and the daemons recover
without a restart.

ShardedClusterTest runs [redis] shards = 4 over the same kind of cluster:
the shards' slots on at least two masters, jobs land exactly once, two
flushers share the shard leases, a SIGKILLed flusher's shards and
processing lists are taken over, a shard's master SIGKILLed loses no
acknowledged record, and a daemon with another shard count is refused."""

import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE


def cluster_port():
    """A free loopback port whose cluster bus port (port + 10000) is free
    too."""
    import random
    import socket
    for _ in range(200):
        port = random.randint(20000, 45000)
        try:
            for p in (port, port + 10000):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", p))
            return port
        except OSError:
            continue
    raise AssertionError("no free port pair for a cluster node")


class Cluster:
    """`masters` masters with one replica each, created with
    redis-cli --cluster create; every node appends (AOF) and judges a
    silent peer failed after 1 s."""

    def __init__(self, workdir, masters=3):
        self.nodes = []
        try:
            for i in range(masters * 2):
                d = os.path.join(workdir, "n%d" % i)
                os.makedirs(d)
                node = harness.Redis.__new__(harness.Redis)
                node.port, node.dir, node.aof, node.proc = cluster_port(), d, True, None
                node.args = ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                             "--cluster-node-timeout", "1000"]
                self.nodes.append(node)
                node.start()
            out = subprocess.run(["redis-cli", "--cluster", "create"] +
                                 ["127.0.0.1:%d" % n.port for n in self.nodes] +
                                 ["--cluster-replicas", "1", "--cluster-yes"],
                                 capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, out.stdout + out.stderr
            harness.wait_for(self.ok, 30, "cluster_state:ok on every node")
        except BaseException:
            self.stop()
            raise

    def ok(self):
        """Every running node sees the cluster ok, and every master has its
        replica attached."""
        for n in self.nodes:
            if n.proc is None:
                continue
            if "cluster_state:ok" not in n.raw("CLUSTER", "INFO"):
                return False
            info = n.raw("INFO", "replication")
            if "role:master" in info and "state=online" not in info:
                return False
        return True

    def seeds(self):
        return ",".join("127.0.0.1:%d" % n.port for n in self.nodes)

    def by_port(self, port):
        return next(n for n in self.nodes if n.port == port)

    def live(self):
        return next(n for n in self.nodes if n.proc is not None and n.ping())

    def table(self):
        """CLUSTER NODES as seen by a live node: id -> (port, flags, slots)."""
        out = {}
        for line in self.live().raw("CLUSTER", "NODES").splitlines():
            f = line.split()
            port = int(f[1].split("@")[0].rsplit(":", 1)[1])
            out[f[0]] = (port, f[2], f[8:])
        return out

    def owner(self, slot):
        """The live master serving `slot`, by its own node's view."""
        for nid, (port, flags, slots) in self.table().items():
            if "master" not in flags or "fail" in flags:
                continue
            for s in slots:
                if s.startswith("["):
                    continue
                lo, _, hi = s.partition("-")
                if int(lo) <= slot <= int(hi or lo):
                    return self.by_port(port), nid
        return None, None

    def stop(self):
        for n in self.nodes:
            n.stop()


class RespError(Exception):
    pass


def resp(port, *args):
    """One command over RESP with binary-safe arguments (redis-cli takes
    text); an error reply raises RespError."""
    import socket
    args = [a if isinstance(a, bytes) else str(a).encode() for a in args]
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"*%d\r\n" % len(args) +
                  b"".join(b"$%d\r\n%s\r\n" % (len(a), a) for a in args))
        f = s.makefile("rb")

        def read():
            line = f.readline()
            kind, rest = line[:1], line[1:-2]
            if kind == b"-":
                raise RespError(rest.decode())
            if kind in (b"+",):
                return rest.decode()
            if kind == b":":
                return int(rest)
            if kind == b"$":
                n = int(rest)
                if n < 0:
                    return None
                data = f.read(n + 2)
                return data[:-2]
            if kind == b"*":
                n = int(rest)
                return None if n < 0 else [read() for _ in range(n)]
            raise RespError("unexpected reply %r" % line)
        return read()


class Scripts:
    """The daemons' Lua scripts as they send them (test-script-text), and
    envelopes the scripts can read: `records` records, an id of their own."""

    def __init__(self):
        self.text = {}
        head = self.load("claim").decode()
        m = re.search(r"local ENV_HEAD, ENV_COUNT, ENV_TIME = (\d+), (\d+), (\d+)\n"
                      r"local ENV_ID, ENV_ID_LEN = (\d+), (\d+)", head)
        assert m, head[:400]
        self.head, self.count_at, _, self.id_at, self.id_len = map(int, m.groups())

    def load(self, name):
        if name not in self.text:
            self.text[name] = subprocess.run(
                [os.path.join(harness.BIN, "test-script-text"), name], check=True,
                capture_output=True, timeout=10).stdout
        return self.text[name]

    def envelope(self, records, job):
        """Bytes where env_count reads `records` and env_id reads `job`
        (ENV_* are 1-based)."""
        jid = job.encode().ljust(self.id_len, b"x")[:self.id_len]
        size = max(self.head, self.id_at + self.id_len) + 8
        v = bytearray(size)
        v[self.count_at - 1:self.count_at + 3] = records.to_bytes(4, "big")
        v[self.id_at - 3] = 0xd9
        v[self.id_at - 2] = self.id_len
        v[self.id_at - 1:self.id_at - 1 + self.id_len] = jid
        return bytes(v)

    def run(self, port, name, keys, argv):
        return resp(port, "EVAL", self.load(name), len(keys), *keys, *argv)


def keyslot(node, key):
    return int(node.cli("CLUSTER", "KEYSLOT", key))


def thousand_jobs(test):
    """~1,000 one-record jobs, every other one with an Idempotency-Key that
    is then sent again: the repeat answers 200 with the same job. Returns
    the job ids; the records are promised."""
    ids, jobs = [], []
    for i in range(1000):
        rec = [{"id": 10_000 + i, "payload": "c%d" % i}]
        h = {"Idempotency-Key": "k-%d" % i} if i % 2 else {}
        code, _, body = test.svc.post("events", rec, headers=h)
        test.assertEqual(code, 202, body)
        job = harness.json.loads(body)["job_id"]
        if h:
            code, _, again = test.svc.post("events", rec, headers=h)
            test.assertEqual(code, 200, again)
            test.assertEqual(harness.json.loads(again)["job_id"], job)
        ids.append(10_000 + i)
        jobs.append(job)
    test.promised.acked.update(ids)
    return jobs


def kill_slot_master(test, slot, what, id_base):
    """SIGKILL the master serving `slot` under a write stream; once a
    replica has taken the slot over, start the old master again (it
    rejoins as the new one's replica, so acks come again). Nothing
    acknowledged is lost or doubled, and the daemons follow without a
    restart."""
    cluster, svc = test.cluster, test.svc
    old, old_id = cluster.owner(slot)
    stream = harness.Stream(svc, "events", threads=4, duration=90, id_base=id_base)
    try:
        time.sleep(2)
        t0 = time.monotonic()
        old.stop()
        harness.wait_for(lambda: cluster.owner(slot)[1] not in (None, old_id), 30,
                         "a replica to take the slot over")
        promoted = time.monotonic() - t0
        old.start()
        harness.wait_for(lambda: cluster.ok() and "state=online" in
                         cluster.owner(slot)[0].raw("INFO", "replication"), 60,
                         "the old master to rejoin as a replica")
        n_before = len(stream.accepted_ids)
        stream.stop_at = time.monotonic() + 3
    except BaseException:
        stream.stop()
        raise
    stream.join()
    after = len(stream.accepted_ids) - n_before
    test.check_exactly_once(what, stream)
    kinds = stream.kinds()
    print("\n%s: promoted_after_s=%.1f accepted_records=%d accepted_after_rejoin=%d lost=0 "
          "duplicated=0 unacked_requests=%d (%s) %s" % (
              what, promoted, len(stream.accepted_ids), after, len(stream.failures),
              stream.refused, sorted(kinds)))
    test.assertGreater(after, 50, "the daemons did not follow the failover")
    test.assertLessEqual(kinds, {"redis-unavailable", "redis-timeout", "redis-not-replicated",
                                 "redis-refused"}, kinds)
    test.assertEqual(stream.hung, 0)
    test.assertTrue(svc.server.alive())
    test.assertTrue(svc.flushers["f1"].alive())
    code, _, body = svc.request("GET", "/readyz")
    test.assertEqual(code, 200, body)


class ClusterCase(unittest.TestCase):
    """A cluster and a service over it (set up by each class), and what
    the class's writes were promised."""

    @classmethod
    def setUpClass(cls):
        cls.promised = harness.Promises()

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def check_exactly_once(self, what, stream=None):
        if stream:
            self.promised.add(stream)
        return self.promised.check(self, self.svc, what)[0]


class ClusterTest(ClusterCase):
    PREFIX = "{swc%d}" % os.getpid()

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="sw-cluster-")
        cls.cluster = Cluster(cls.tmp)
        cls.addClassCleanup(cls.cluster.stop)
        cls.slot = keyslot(cls.cluster.nodes[0], cls.PREFIX + ":queue")
        owner, _ = cls.cluster.owner(cls.slot)
        cls.svc = harness.Service("cluster", SINKS, TABLES, {
            "redis": {"host": "127.0.0.1", "port": "1",   # unused: the cluster map decides
                      "prefix": cls.PREFIX, "cluster_nodes": cls.cluster.seeds(),
                      "min_replica_acks": "1", "timeout_ms": "1000",
                      "shards": "0"},   # this class is about one slot
            "flusher": {"batch_max_records": "300", "flush_interval_ms": "20"},
        }, redis=owner)
        cls.addClassCleanup(cls.svc.close)


    def redirects(self):
        """The server's spillway_redis_redirects_total by kind."""
        text = self.svc.request("GET", "/metrics")[2].decode()
        return {k: float(v) for k, v in re.findall(
            r'^spillway_redis_redirects_total\{kind="(\w+)"\} (\S+)$', text, re.M)}

    def test_1_slot_map_and_exactly_once(self):
        node = self.cluster.nodes[0]
        # Every key of the prefix is in the prefix's slot (the adapter's own
        # CRC16 is checked against Redis' values in unit/test_cluster.c;
        # that it routes to the right node, by everything below).
        self.assertEqual(keyslot(node, "foo"), 12182)
        self.assertEqual(keyslot(node, self.PREFIX + ":st:8:123"), self.slot)
        code, _, body = self.svc.request("GET", "/readyz")
        self.assertEqual(code, 200, body)
        jobs = thousand_jobs(self)
        landed = self.check_exactly_once("1,000 jobs")
        self.assertEqual(len(landed), 1000)
        for j in jobs[::97]:
            code, st = self.svc.job(j)
            self.assertEqual((code, st["status"]), (200, "committed"), st)
        # spillwayctl finds the slot's master the same way.
        out = self.svc.ctl("queue").stdout
        self.assertIn("depth 0\n", out)
        self.assertIn("dead_jobs 0\n", out)

    def test_2_slot_migrated_under_load(self):
        src, src_id = self.cluster.owner(self.slot)
        dst_id = next(nid for nid, (port, flags, slots) in self.cluster.table().items()
                      if "master" in flags and nid != src_id and "fail" not in flags)
        dst = self.cluster.by_port(self.cluster.table()[dst_id][0])
        before = self.redirects()
        stream = harness.Stream(self.svc, "events", threads=4, duration=60, id_base=1_000_000_000)
        try:
            time.sleep(2)
            t0 = time.monotonic()
            n_start = len(stream.accepted_ids)
            self.assertEqual(dst.cli("CLUSTER", "SETSLOT", str(self.slot), "IMPORTING", src_id),
                             "OK")
            self.assertEqual(src.cli("CLUSTER", "SETSLOT", str(self.slot), "MIGRATING", dst_id),
                             "OK")
            # Held migrating before any key moves: every script then runs
            # on the source with its keys there, and a command on a key the
            # script itself emptied is refused mid-script (what the scripts
            # must never do: prelude.lua).
            time.sleep(5)
            moved = 0
            while time.monotonic() < t0 + 45:
                keys = src.raw("CLUSTER", "GETKEYSINSLOT", str(self.slot), "20").split()
                if not keys:
                    break
                out = src.cli("MIGRATE", "127.0.0.1", str(dst.port), "", "0", "5000", "KEYS",
                              *keys)
                self.assertIn(out, ("OK", "NOKEY"), out)
                moved += len(keys) if out == "OK" else 0
                time.sleep(0.1)      # a slow migration: the stream meets it half-way
            for n in (dst, src):
                self.assertEqual(n.cli("CLUSTER", "SETSLOT", str(self.slot), "NODE", dst_id),
                                 "OK")
            took = time.monotonic() - t0
            during = len(stream.accepted_ids) - n_start
            harness.wait_for(lambda: self.cluster.owner(self.slot)[1] == dst_id, 20,
                             "the cluster to agree on the new owner")
            n_before = len(stream.accepted_ids)
            stream.stop_at = time.monotonic() + 3
        except BaseException:
            stream.stop()
            raise
        stream.join()
        after = len(stream.accepted_ids) - n_before
        self.check_exactly_once("slot migration", stream)
        kinds = stream.kinds()
        got = {k: v - before[k] for k, v in self.redirects().items()}
        print("\nslot migration: keys_moved=%d took_s=%.1f accepted_records=%d "
              "accepted_during=%d accepted_after=%d lost=0 duplicated=0 unacked_requests=%d "
              "(%s) %s redirects=%s" % (
                  moved, took, len(stream.accepted_ids), during, after, len(stream.failures),
                  stream.refused, sorted(kinds), got))
        # The adapter met and followed the cluster's redirections, and
        # writes were acknowledged while keys were on both nodes.
        self.assertGreater(got["moved"], 0, got)
        self.assertGreater(got["ask"] + got["tryagain"], 0, got)
        self.assertGreater(during, 0, "no write acknowledged during the migration")
        self.assertLessEqual(kinds, {"redis-refused", "redis-timeout", "redis-not-replicated",
                                     "redis-unavailable"}, kinds)
        self.assertGreater(moved, 0)
        self.assertGreater(after, 50, "no writes after the migration")
        self.assertEqual(stream.hung, 0)
        self.assertTrue(self.svc.server.alive())
        self.assertTrue(self.svc.flushers["f1"].alive())

    def test_3_master_killed(self):
        kill_slot_master(self, self.slot, "cluster kill -9 master", 2_000_000_000)

    def test_4_prefix_without_hash_tag_refused(self):
        out = subprocess.run([os.path.join(harness.BIN, "spillway-server"), "--config",
                              self.svc.config], env=dict(self.svc.env, SPILLWAY_REDIS_PREFIX="sw"),
                             capture_output=True, text=True, timeout=20)
        self.assertEqual(out.returncode, 2)
        self.assertIn("prefix \"sw\" has no hash tag", out.stderr)

    def test_5_scripts_whole_on_a_migrating_slot(self):
        """A slot being migrated, every key still on its source node: there
        Redis refuses, mid-script, a command on a key of the slot it does
        not hold, and the script stops half-applied. Each script path that
        empties a key runs here whole: a claim that empties the queue
        (reading on past it, and with a job that does not fit), a release
        of a whole processing list, a finish that trims the dead letters
        empty and clears every delivery count, the last flusher leaving,
        a claim that parks a paused sink's jobs until the queue is empty,
        one that takes a resumed sink's whole parked list, and a purge of
        it. (The tag is
        this test's own, not the service's.)"""
        sc = Scripts()
        tag = "{swm%d}" % os.getpid()
        slot = keyslot(self.cluster.nodes[0], tag)
        src, src_id = self.cluster.owner(slot)
        dst_id = next(nid for nid, (port, flags, _) in self.cluster.table().items()
                      if "master" in flags and nid != src_id and "fail" not in flags)
        dst = self.cluster.by_port(self.cluster.table()[dst_id][0])
        k = {n: "%s:%s" % (tag, n) for n in ("queue", "stats", "proc", "inflight", "dead",
                                              "deadenv", "deadinfo", "deliveries", "members",
                                              "bucket", "job", "parked", "waiters",
                                              "done")}
        P = src.port

        def migrating(setup, name, keys, argv):
            for key in k.values():
                resp(P, "DEL", key)
            setup()
            self.assertEqual(dst.cli("CLUSTER", "SETSLOT", str(slot), "IMPORTING", src_id), "OK")
            self.assertEqual(src.cli("CLUSTER", "SETSLOT", str(slot), "MIGRATING", dst_id), "OK")
            try:
                return sc.run(P, name, [k[n] for n in keys], argv)
            finally:
                for node in (src, dst):
                    self.assertEqual(node.cli("CLUSTER", "SETSLOT", str(slot), "STABLE"), "OK")

        def queue_of(n, records=1, extra=()):
            def setup():
                envs = [sc.envelope(records, "q%d" % i) for i in range(n)] + list(extra)
                resp(P, "LPUSH", k["queue"], *envs)
                resp(P, "HSET", k["stats"], "queued_records", sum(
                    int.from_bytes(e[sc.count_at - 1:sc.count_at + 3], "big") for e in envs))
                resp(P, "LPUSH", k["proc"], sc.envelope(1, "held"))
                resp(P, "SET", k["inflight"], 1)
            return setup

        claim_keys = ["queue", "stats", "proc", "inflight"]
        # Exactly one chunk (16): the claim reads on past the queue's end.
        got = migrating(queue_of(16), "claim", claim_keys, [300, 10000, 1 << 30, 0])
        self.assertEqual(len(got), 16)
        self.assertEqual(resp(P, "EXISTS", k["queue"]), 0)
        self.assertEqual(resp(P, "LLEN", k["proc"]), 17)
        self.assertEqual(resp(P, "HGET", k["stats"], "queued_records"), b"0")
        # The last job does not fit: it stays, nothing is pushed back.
        got = migrating(queue_of(3, records=100), "claim", claim_keys, [250, 10000, 1 << 30, 0])
        self.assertEqual(len(got), 2)
        self.assertEqual(resp(P, "LLEN", k["queue"]), 1)
        self.assertEqual(resp(P, "HGET", k["stats"], "queued_records"), b"100")

        # A release moves the whole processing list back: the last move
        # empties it.
        def held():
            resp(P, "LPUSH", k["queue"], sc.envelope(1, "waiting"))
            resp(P, "LPUSH", k["proc"], *[sc.envelope(2, "h%d" % i) for i in range(5)])
            resp(P, "SET", k["inflight"], 10)
            resp(P, "HSET", k["stats"], "inflight_records", 10, "queued_records", 1)
        self.assertEqual(migrating(held, "release", claim_keys, []), 5)
        self.assertEqual(resp(P, "EXISTS", k["proc"]), 0)
        self.assertEqual(resp(P, "LLEN", k["queue"]), 6)
        self.assertEqual(resp(P, "HMGET", k["stats"], "inflight_records", "queued_records"),
                         [b"0", b"11"])

        # A finish of the whole list that also trims the dead letters to
        # none (dead_max_jobs 0) and clears the only delivery count.
        env = sc.envelope(1, "f1")
        jid = env[sc.id_at - 1:sc.id_at - 1 + sc.id_len]

        def finishing():
            resp(P, "LPUSH", k["proc"], env)
            resp(P, "SET", k["inflight"], 1)
            resp(P, "HSET", k["deliveries"], jid, 2)
            resp(P, "LPUSH", k["dead"], "d1", "d2")
            resp(P, "HSET", k["deadenv"], "d1", "xx", "d2", "yyy")
            resp(P, "HSET", k["deadinfo"], "d1", "{}", "d2", "{}")
            resp(P, "HSET", k["stats"], "inflight_records", 1, "dead_bytes", 5)
            resp(P, "HSET", k["bucket"], "other", "c")
            resp(P, "SET", k["job"], "{}")
            # A client waits for it (GET ?wait=N): the finish says so.
            resp(P, "ZADD", k["waiters"], 99999999999999, jid)
            resp(P, "XADD", k["done"], "*", "ids", "earlier")
        got = migrating(finishing, "finish",
                        ["stats", "dead", "deadenv", "deadinfo", "deliveries", "proc",
                         "inflight", "waiters", "done", "bucket", "job"],
                        ["2026-01-01T00:00:00Z", 60, 0, 1 << 30, jid, len(env), jid, "f",
                         "c1", "", "", 1])
        self.assertEqual(got, [1, 2])
        for gone in ("proc", "inflight", "deliveries", "dead", "deadenv", "deadinfo"):
            self.assertEqual(resp(P, "EXISTS", k[gone]), 0, gone)
        self.assertEqual(resp(P, "HMGET", k["stats"], "inflight_records", "dead_bytes",
                              "dead_dropped", "committed_records"), [b"0", b"0", b"2", b"1"])
        self.assertEqual(resp(P, "XLEN", k["done"]), 2)

        # A paused sink's jobs (these envelopes' sink reads as '') are all
        # parked: the claim empties the queue and moves nothing. (Its
        # parked list holds one already: a key missing on the source node
        # makes Redis answer TRYAGAIN, which the daemons retry.)
        def parking():
            queue_of(5)()
            resp(P, "LPUSH", k["parked"], sc.envelope(1, "before"))
            resp(P, "HSET", k["stats"], "parked_records", 1, "parked:", 1, "queued_records", 6)
        got = migrating(parking, "claim", claim_keys + ["parked"],
                        [300, 10000, 1 << 30, 0, "", "1"])
        self.assertEqual(got, 1)
        self.assertEqual(resp(P, "EXISTS", k["queue"]), 0)
        self.assertEqual(resp(P, "LLEN", k["parked"]), 6)
        self.assertEqual(resp(P, "HMGET", k["stats"], "queued_records", "parked_records",
                              "parked:"), [b"6", b"6", b"6"])

        def parked(n):
            def setup():
                resp(P, "LPUSH", k["queue"], sc.envelope(1, "waiting"))
                resp(P, "LPUSH", k["parked"], *[sc.envelope(1, "p%d" % i) for i in range(n)])
                resp(P, "HSET", k["stats"], "queued_records", n + 1, "parked_records", n,
                     "parked:", n)
                resp(P, "LPUSH", k["proc"], sc.envelope(1, "held"))
                resp(P, "SET", k["inflight"], 1)
            return setup
        # Resumed: a claim takes the whole parked list, oldest first, then
        # the queue, emptying both.
        got = migrating(parked(5), "claim", claim_keys + ["parked"],
                        [300, 10000, 1 << 30, 0, "", "0"])
        self.assertEqual(got, [sc.envelope(1, "p%d" % i) for i in range(5)] +
                         [sc.envelope(1, "waiting")])
        for gone in ("parked", "queue"):
            self.assertEqual(resp(P, "EXISTS", k[gone]), 0, gone)
        self.assertEqual(resp(P, "HMGET", k["stats"], "queued_records", "parked_records",
                              "parked:", "inflight_records"), [b"0", b"0", b"0", b"6"])
        # Purged whole, with the only delivery count.
        env = sc.envelope(1, "p0")
        pid = env[sc.id_at - 1:sc.id_at - 1 + sc.id_len]

        def purging():
            parked(1)()
            resp(P, "HSET", k["deliveries"], pid, 1)
            resp(P, "HSET", k["bucket"], "other", "c")
            resp(P, "SET", k["job"], "{}")
            resp(P, "ZADD", k["waiters"], 1, "nobody")
            resp(P, "XADD", k["done"], "*", "ids", "earlier")
        got = migrating(purging, "purge", ["stats", "deliveries", "parked", "waiters", "done",
                                           "bucket", "job"],
                        ["", 60, pid, len(env), "f" * 16, "{}"])
        self.assertEqual(got, [1, 1])
        for gone in ("parked", "deliveries"):
            self.assertEqual(resp(P, "EXISTS", k[gone]), 0, gone)
        self.assertEqual(resp(P, "HMGET", k["stats"], "queued_records", "parked_records",
                              "parked:", "purged_records"), [b"1", b"0", b"0", b"1"])

        # The last member leaves, with a lapsed one swept in the same call.
        def members():
            resp(P, "ZADD", k["members"], 1, "lapsed", 99999999999999, "me")
        self.assertEqual(migrating(members, "members", ["members"], ["me", 0]), 0)
        self.assertEqual(resp(P, "EXISTS", k["members"]), 0)
        for key in k.values():
            resp(P, "DEL", key)



def shard_metric(text, name):
    """shard -> value of a per-shard gauge in a /metrics text."""
    return {int(k): float(v) for k, v in re.findall(
        r'^%s\{shard="(\d+)"\} (\S+)$' % name, text, re.M)}


class ShardedClusterTest(ClusterCase):
    SHARDS = 4
    TTL = 3      # heartbeat_ttl_s: how long a dead flusher's shards wait

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp(prefix="sw-shards-")
        cls.cluster = Cluster(cls.tmp)
        cls.addClassCleanup(cls.cluster.stop)
        node = cls.cluster.nodes[0]
        # A prefix whose shards' slots are on at least two masters (with
        # four shards over three masters, most are).
        for n in range(100):
            cls.PREFIX = "{sws%d-%d}" % (os.getpid(), n)
            base = cls.PREFIX.strip("{}")
            cls.prefixes = ["{%s:%d}" % (base, k) for k in range(cls.SHARDS)]
            cls.slots = [keyslot(node, p + ":queue") for p in cls.prefixes]
            if len({cls.cluster.owner(s)[1] for s in cls.slots}) >= 2:
                break
        cls.svc = harness.Service("shards", SINKS, TABLES, {
            "redis": {"host": "127.0.0.1", "port": "1",
                      "prefix": cls.PREFIX, "cluster_nodes": cls.cluster.seeds(),
                      "min_replica_acks": "1", "timeout_ms": "1000",
                      "shards": str(cls.SHARDS)},
            "flusher": {"batch_max_records": "300", "flush_interval_ms": "20",
                        "heartbeat_ttl_s": str(cls.TTL)},
        }, redis=cls.cluster.owner(keyslot(node, cls.PREFIX + ":layout"))[0])
        cls.addClassCleanup(cls.svc.close)


    def holders(self):
        """shard -> the flusher id holding its lease ("" none)."""
        out = {}
        for k, (p, slot) in enumerate(zip(self.prefixes, self.slots)):
            owner = self.cluster.owner(slot)[0]
            out[k] = owner.cli("GET", p + ":lease") if owner else "?"
        return out

    def processing(self, fid):
        """How many of the shards hold a processing list of flusher fid."""
        return sum(int(self.cluster.owner(s)[0].cli("EXISTS", p + ":processing:" + fid))
                   for p, s in zip(self.prefixes, self.slots))

    def test_1_shards_spread_and_exactly_once(self):
        self.assertEqual(self.svc.shards, self.SHARDS)
        code, _, body = self.svc.request("GET", "/readyz")
        self.assertEqual(code, 200, body)
        jobs = thousand_jobs(self)
        # Every shard got jobs, and the shards live on two masters or more.
        per = {}
        for j in jobs:
            per[int(j[21:23], 16)] = per.get(int(j[21:23], 16), 0) + 1
        self.assertEqual(sorted(per), list(range(self.SHARDS)), per)
        self.assertTrue(all(v > 150 for v in per.values()), per)
        masters = {self.cluster.owner(s)[1] for s in self.slots}
        self.assertGreaterEqual(len(masters), 2)
        landed = self.check_exactly_once("1,000 jobs over 4 shards")
        self.assertEqual(len(landed), 1000)
        for j in jobs[::97]:
            code, st = self.svc.job(j)
            self.assertEqual((code, st["status"]), (200, "committed"), st)
        # Totals sum the shards; each shard has its gauge.
        text = self.svc.request("GET", "/metrics")[2].decode()
        self.assertEqual(shard_metric(text, "spillway_queue_shard_depth_records"),
                         {k: 0.0 for k in range(self.SHARDS)})
        stats = harness.json.loads(self.svc.request("GET", "/v1/stats")[2])
        self.assertEqual([s["shard"] for s in stats["shards"]], list(range(self.SHARDS)))
        self.assertGreaterEqual(stats["committed_records_total"], 1000)
        out = self.svc.ctl("queue").stdout
        self.assertIn("depth 0\n", out)
        self.assertIn("shard 3 depth 0", out)
        # One flusher holds every lease.
        self.assertEqual(set(self.holders().values()), {"f1"})

    def test_2_leases_shared_and_dead_flusher_taken_over(self):
        self.svc.start_flusher("f2")
        harness.wait_for(lambda: sorted(self.holders().values()) == ["f1", "f1", "f2", "f2"],
                         20, "two flushers to hold two shards each")
        stream = harness.Stream(self.svc, "events", threads=4, duration=60,
                                id_base=1_000_000_000)
        try:
            time.sleep(2)
            f2 = self.svc.flushers["f2"]
            os.kill(f2.proc.pid, 9)
            f2.proc.wait(timeout=10)
            t0 = time.monotonic()
            harness.wait_for(lambda: set(self.holders().values()) == {"f1"}, 30,
                             "f1 to take over the dead flusher's shards")
            taken = time.monotonic() - t0
            harness.wait_for(lambda: self.processing("f2") == 0, 30,
                             "the dead flusher's processing lists to be taken over")
            emptied = time.monotonic() - t0
            stream.stop_at = time.monotonic() + 2
        except BaseException:
            stream.stop()
            raise
        stream.join()
        self.check_exactly_once("flusher killed with shards", stream)
        print("\nshards: flusher SIGKILLed: leases_taken_after_s=%.1f lists_taken_after_s=%.1f "
              "heartbeat_ttl_s=%d accepted_records=%d lost=0 duplicated=0 unacked=%d" % (
                  taken, emptied, self.TTL, len(stream.accepted_ids), len(stream.failures)))
        self.assertLess(taken, self.TTL + 4)
        self.assertEqual(stream.failures, [])
        del self.svc.flushers["f2"]

    def test_3_shard_master_killed(self):
        kill_slot_master(self, self.slots[0], "shards: kill -9 of shard 0's master",
                         2_000_000_000)

    def test_4_other_shard_count_refused(self):
        for prog in ("spillway-server", "spillway-flusher"):
            for shards in ("2", "0"):
                out = subprocess.run([os.path.join(harness.BIN, prog), "--config",
                                      self.svc.config],
                                     env=dict(self.svc.env, SPILLWAY_REDIS_SHARDS=shards,
                                              SPILLWAY_FLUSHER_ID="other"),
                                     capture_output=True, text=True, timeout=30)
                self.assertEqual(out.returncode, 2, prog + out.stderr)
                self.assertIn("redis holds another queue layout", out.stderr)
                self.assertIn('held=\"4\" shards=%s' % shards, out.stderr)


if __name__ == "__main__":
    harness.main()
