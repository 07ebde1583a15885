"""Redis Sentinel: the daemons find the master through a real
redis-sentinel, follow a failover by themselves (a SIGKILLed master, and a
master demoted by SENTINEL FAILOVER, answering READONLY), and with
[redis] min_replica_acks = 1 no acknowledged record is lost or applied
twice across it. Master, replica and Sentinel run on loopback ports of
their own and are stopped by pid."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE
NAME = "swmaster"


class Sentinel:
    """One redis-sentinel watching `master_port` (quorum 1: it alone may
    fail the master over), quick to judge it down."""

    def __init__(self, workdir, master_port):
        self.port = harness.free_port()
        self.conf = os.path.join(workdir, "sentinel.conf")
        with open(self.conf, "w") as f:
            f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                    "sentinel monitor %s 127.0.0.1 %d 1\n"
                    "sentinel down-after-milliseconds %s 1000\n"
                    "sentinel failover-timeout %s 5000\n"
                    "sentinel parallel-syncs %s 1\n"
                    % (self.port, workdir, NAME, master_port, NAME, NAME, NAME))
        self.log = open(os.path.join(workdir, "sentinel.log"), "ab")
        self.proc = subprocess.Popen(["redis-sentinel", self.conf], stdout=self.log,
                                     stderr=subprocess.STDOUT)
        try:
            harness.wait_for(lambda: self.master_port() == master_port, 30,
                             "redis-sentinel to know the master")
        except BaseException:
            self.stop()
            raise

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def master_port(self):
        out = self.cli("SENTINEL", "get-master-addr-by-name", NAME).split()
        return int(out[1]) if len(out) == 2 else None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


class FakeSentinel:
    """A Sentinel that is wrong: it names `port` (a replica) as the
    master to every question. With `silent`, a listener that accepts
    connections and never answers (a blackholed host). Loopback only."""

    def __init__(self, port=None, silent=False):
        import socket
        import threading
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.answer = (b"*2\r\n$9\r\n127.0.0.1\r\n$%d\r\n%d\r\n" % (len(str(port)), port)
                       if port else None)
        self.closed = False
        if not silent:
            threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        import threading
        while not self.closed:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._talk, args=(conn,), daemon=True).start()

    def _talk(self, conn):
        f = conn.makefile("rb")
        try:
            while True:
                head = f.readline()
                if not head.startswith(b"*"):
                    return
                for _ in range(int(head[1:])):
                    n = int(f.readline()[1:])
                    f.read(n + 2)
                conn.sendall(self.answer)
        except (OSError, ValueError):
            pass
        finally:
            conn.close()

    def close(self):
        self.closed = True
        self.sock.close()


def replicas_online(redis, n):
    info = redis.raw("INFO", "replication")
    return info.count("state=online") >= n and "role:master" in info


class SentinelTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sw-sentinel-")
        dirs = [os.path.join(cls.tmp, d) for d in ("a", "b", "s")]
        for d in dirs:
            os.makedirs(d)
        cls.a = harness.Redis(dirs[0], aof=True)
        cls.addClassCleanup(cls.a.stop)
        cls.b = harness.Redis(dirs[1], aof=True,
                              args=["--replicaof", "127.0.0.1", str(cls.a.port)])
        cls.addClassCleanup(cls.b.stop)
        harness.wait_for(lambda: replicas_online(cls.a, 1), 30, "the replica to sync")
        cls.sentinel = Sentinel(dirs[2], cls.a.port)
        cls.addClassCleanup(cls.sentinel.stop)
        cls.svc = harness.Service("sentinel", SINKS, TABLES, {
            "redis": {"host": "127.0.0.1", "port": "1",   # unused: Sentinel names the master
                      "sentinels": "127.0.0.1:%d" % cls.sentinel.port,
                      "master_name": NAME, "min_replica_acks": "1", "timeout_ms": "1000"},
            "flusher": {"batch_max_records": "300", "flush_interval_ms": "20"},
        }, redis=cls.a)
        cls.addClassCleanup(cls.svc.close)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def redis_by_port(self, port):
        return {self.a.port: self.a, self.b.port: self.b}[port]

    promised = harness.Promises()

    def check_exactly_once(self, stream, what):
        self.promised.add(stream)
        landed, stray = self.promised.check(self, self.svc, what)
        return self.promised.acked - landed, stray & set(stream.unacked_ids)

    def run_failover(self, what, fail, id_base):
        """A stream of writes; `fail()` mid-way; the stream goes on until
        writes are acknowledged on the new master."""
        old = self.sentinel.master_port()
        before = len(self.svc.sql("SELECT id FROM events"))
        stream = harness.Stream(self.svc, "events", threads=4, duration=90, id_base=id_base)
        try:
            time.sleep(3)
            fail(self.redis_by_port(old))
            t0 = time.monotonic()       # the master is gone or demoted now
            harness.wait_for(lambda: self.sentinel.master_port() not in (None, old), 30,
                             "Sentinel to promote the replica")
            promoted = time.monotonic() - t0
            # The old master, back (as a replica of the new one), lets acks
            # be given again.
            self.redis_by_port(old).start()
            harness.wait_for(lambda: replicas_online(self.redis_by_port(self.sentinel.master_port()),
                                                     1), 60, "the old master to rejoin")
            n_before = len(stream.accepted_ids)
            stream.stop_at = time.monotonic() + 3      # 3 s more on the new master
        except BaseException:
            stream.stop()
            raise
        stream.join()
        after_failover = len(stream.accepted_ids) - n_before
        refused = dict(stream.refused)
        lost, stray = self.check_exactly_once(stream, what)
        landed = len(self.svc.sql("SELECT id FROM events")) - before
        print("\n%s: promoted_after_s=%.1f accepted_records=%d accepted_after_rejoin=%d "
              "lost=%d duplicated=0 unacked_requests=%d (%s) unacked_records_landed=%d "
              "landed=%d" % (what, promoted, len(stream.accepted_ids), after_failover,
                             len(lost), len(stream.failures), refused, len(stray), landed))
        self.assertGreater(len(stream.accepted_ids), 500)
        self.assertGreater(after_failover, 50, "no writes acknowledged after the failover: "
                           "the daemons did not follow it")
        self.assertEqual(stream.hung, 0)
        kinds = stream.kinds()
        self.assertLessEqual(kinds, {"redis-unavailable", "redis-timeout",
                                     "redis-not-replicated", "redis-refused"}, kinds)
        # Both daemons are still the ones started: nothing was restarted.
        self.assertTrue(self.svc.server.alive())
        self.assertTrue(self.svc.flushers["f1"].alive())
        code, _, body = self.svc.request("GET", "/readyz")
        self.assertEqual(code, 200, body)

    def test_1_through_sentinel(self):
        ids = [self.svc.post_ok("events", [{"id": 1, "payload": "x"}])]
        self.svc.wait_jobs(ids)
        code, _, body = self.svc.request("GET", "/readyz")
        self.assertEqual(code, 200, body)
        self.assertEqual(self.svc.sql("SELECT count(*) FROM events"), [["1"]])
        # spillwayctl finds the master the same way.
        self.assertIn("depth 0\n", self.svc.ctl("queue").stdout)
        self.promised.acked.add(1)

    def lagged_kill(self, master):
        """The replica falls behind: stopped (SIGSTOP), its link cut by the
        master (so nothing more waits in socket buffers for it), 0.6 s of
        the write stream; then the master is SIGKILLed and the replica
        resumes and is promoted without what it missed: what a failover
        can lose."""
        replica = self.b if master is self.a else self.a
        os.kill(replica.proc.pid, signal.SIGSTOP)
        try:
            self.assertNotEqual(master.cli("CLIENT", "KILL", "TYPE", "replica"), "0")
            time.sleep(0.6)      # under down-after-milliseconds: not judged down
            master.stop()
        finally:
            os.kill(replica.proc.pid, signal.SIGCONT)

    def test_2_sigkill_master(self):
        self.run_failover("sentinel kill -9 master", self.lagged_kill, 1_000_000_000)

    def test_3_demoted_master(self):
        # SENTINEL FAILOVER demotes the master while it runs: connections
        # to it meet READONLY, not a closed socket.
        self.run_failover("sentinel demoted master",
                          lambda r: self.assertEqual(self.sentinel.cli("SENTINEL", "FAILOVER",
                                                                       NAME), "OK"),
                          2_000_000_000)

    def test_4_no_replica_no_202(self):
        # With the only replica gone, no write can be confirmed by one:
        # 503 redis-not-replicated, never 202.
        master = self.redis_by_port(self.sentinel.master_port())
        replica = self.b if master is self.a else self.a
        replica.stop()
        try:
            code, _, body = self.svc.post("events", [{"id": 99_000_001, "payload": "x"}])
            self.assertEqual(code, 503, body)
            p = json.loads(body)
            self.assertTrue(p["type"].endswith(":redis-not-replicated"), p)
            self.assertIn("0 of 1 replicas", p["detail"])
            self.assertIn("may have been queued", p["detail"])
            self.promised.maybe.add(99_000_001)
            # And /readyz said so beforehand.
            harness.wait_for(lambda: b"NOREPLICAS" in self.svc.request("GET", "/readyz")[2], 10,
                             "/readyz to name NOREPLICAS")
            self.assertEqual(self.svc.request("GET", "/readyz")[0], 503)
        finally:
            replica.start()
        harness.wait_for(lambda: replicas_online(master, 1), 40, "the replica to rejoin")
        harness.wait_for(lambda: self.svc.post("events", [{"id": 99_000_002, "payload": "y"}])[0]
                         == 202, 20, "a 202 once the replica is back")
        self.promised.acked.add(99_000_002)

    def test_4b_wrong_and_silent_sentinels_are_passed_over(self):
        # A blackholed Sentinel and one that names the replica come first:
        # each connection still reaches the master, within about
        # timeout_ms (1 s; asserted under 2.5 s).
        master = self.sentinel.master_port()
        replica = self.b.port if master == self.a.port else self.a.port
        silent, wrong = FakeSentinel(silent=True), FakeSentinel(port=replica)
        try:
            fakes = "127.0.0.1:%d,127.0.0.1:%d" % (silent.port, wrong.port)
            self.svc.server.terminate()
            self.svc.start_server(SPILLWAY_REDIS_SENTINELS=fakes)
            t0 = time.monotonic()
            p = json.loads(self.svc.post("events", [{"id": 99_000_003, "payload": "z"}])[2])
            self.assertLess(time.monotonic() - t0, 2.5)
            self.assertEqual(p["status"], 503)
            self.assertIn("is not a master", p["detail"])
            self.assertIn("127.0.0.1:%d" % replica, p["detail"])
            self.promised.refused.add(99_000_003)
            code, _, body = self.svc.request("GET", "/readyz")
            self.assertEqual(code, 503, body)
            self.svc.server.terminate()
            self.svc.start_server(SPILLWAY_REDIS_SENTINELS=fakes + ",127.0.0.1:%d" %
                                  self.sentinel.port)
            for i in range(5):
                t0 = time.monotonic()
                code, _, body = self.svc.post("events", [{"id": 99_000_010 + i, "payload": "z"}])
                self.assertEqual(code, 202, body)
                self.assertLess(time.monotonic() - t0, 2.5)
            self.promised.acked.update(99_000_010 + i for i in range(5))
            self.assertEqual(self.svc.request("GET", "/readyz")[0], 200)
        finally:
            silent.close()
            wrong.close()
            self.svc.server.terminate()
            self.svc.start_server()

    def test_5_without_acks_a_failover_loses_202s(self):
        # Why min_replica_acks exists: with 0, the same failover loses
        # writes that were answered 202 (GUARANTEES.md says so). First,
        # what WAIT costs: the same 4-client stream for 3 s each way.
        rates = {}
        for acks in ("1", "0"):
            self.svc.server.terminate()
            self.svc.start_server(SPILLWAY_REDIS_MIN_REPLICA_ACKS=acks)
            s = harness.Stream(self.svc, "events", threads=4, duration=3,
                               id_base=4_000_000_000 + int(acks) * 100_000_000).join()
            self.assertEqual(s.failures, [])
            self.promised.add(s)
            rates[acks] = len(s.accepted_jobs) / 3.0
        print("\nmin_replica_acks=1: %.0f jobs/s, 0: %.0f jobs/s (ratio %.2f), 4 clients, "
              "0 errors" % (rates["1"], rates["0"], rates["1"] / rates["0"]))
        harness.wait_drained(self.svc, timeout=90)
        stream = None
        try:
            old = self.sentinel.master_port()
            stream = harness.Stream(self.svc, "events", threads=4, duration=90,
                                    id_base=3_000_000_000)
            time.sleep(2)
            self.lagged_kill(self.redis_by_port(old))
            harness.wait_for(lambda: self.sentinel.master_port() not in (None, old), 30,
                             "Sentinel to promote the replica")
            self.redis_by_port(old).start()
            harness.wait_for(lambda: replicas_online(
                self.redis_by_port(self.sentinel.master_port()), 1), 60, "the old master to rejoin")
            stream.stop_at = time.monotonic() + 2
            stream.join()
            harness.wait_drained(self.svc, timeout=90)
            landed = {int(r[0]) for r in self.svc.sql("SELECT id FROM events WHERE id >= "
                                                      "3000000000")}
            lost = set(stream.accepted_ids) - landed
            print("\nsentinel kill -9 master, min_replica_acks=0: accepted_records=%d lost=%d"
                  % (len(stream.accepted_ids), len(lost)))
            self.assertGreater(len(lost), 0, "the replica's lag was not lost: the test "
                               "would not see a lost 202")
            # What was acknowledged here was promised nothing beyond the
            # master: for the final account, all of it is "maybe".
            self.promised.maybe.update(stream.accepted_ids + stream.unacked_ids)
            self.promised.refused.update(stream.refused_ids)
        finally:
            if stream:
                stream.stop()
            self.svc.server.terminate()
            self.svc.start_server()

    def test_6_sentinels_down_the_master_serves_on(self):
        # Last: a Sentinel stopped this long enters TILT mode on waking and
        # makes no failover for 30 s. The only Sentinel silent, and every
        # daemon connection cut: a new connection cannot ask, and takes
        # the master it last confirmed (ROLE still says master) instead of
        # refusing writes.
        master = self.redis_by_port(self.sentinel.master_port())
        code, _, body = self.svc.post("events", [{"id": 99_000_019, "payload": "s"}])
        self.assertEqual(code, 202, body)
        self.promised.acked.add(99_000_019)
        os.kill(self.sentinel.proc.pid, signal.SIGSTOP)
        try:
            self.assertNotEqual(master.cli("CLIENT", "KILL", "TYPE", "normal"), "0")
            t0 = time.monotonic()
            code, _, body = self.svc.post("events", [{"id": 99_000_020, "payload": "s"}])
            self.assertEqual(code, 202, body)
            self.assertLess(time.monotonic() - t0, 3.0)
            self.promised.acked.add(99_000_020)
            self.assertEqual(self.svc.request("GET", "/readyz")[0], 200)
        finally:
            os.kill(self.sentinel.proc.pid, signal.SIGCONT)
        # The whole class's account: everything acknowledged landed once.
        self.promised.check(self, self.svc, "all Sentinel tests")


if __name__ == "__main__":
    harness.main()
