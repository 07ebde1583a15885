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
            moved = 0
            while time.monotonic() < t0 + 40:
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
