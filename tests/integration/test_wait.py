"""Waiting for a commit and looking many jobs up, as a client does it:
GET /v1/jobs/{id}?wait=N answers as soon as the job is committed or failed
(the flusher's finish tells the servers through Redis: no polling), or
with its state after N seconds; waits are bounded by [server] max_waiting
(429 past it) and never hold up other requests; a draining server answers
its waiters at once. POST /v1/jobs/lookup answers up to 1,000 statuses in
one round trip. Also run with [redis] shards = 4."""

import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

UNKNOWN = "0190a0e4-7b8c-7abc-8100-456789abcdef"   # shard digits 00


class WaitTest(harness.ServiceTest):
    SINKS = harness.CHECKED_SINK
    TABLES = harness.CHECKED_TABLE
    fresh = iter(range(1, 1_000_000))

    def post(self, qty=1):
        return self.svc.post_ok("checked", [{"id": next(self.fresh), "qty": qty}])

    def get(self, path, timeout=40):
        t0 = time.time()
        code, headers, body = self.svc.request("GET", path, timeout=timeout)
        return code, headers, json.loads(body), time.time() - t0

    def stop_flusher(self):
        fid, = list(self.svc.flushers)
        self.assertEqual(self.svc.flushers[fid].terminate(), 0)
        return fid

    def test_1_answers_at_the_commit(self):
        svc = self.svc
        fid = self.stop_flusher()
        job = self.post()
        threading.Timer(1.0, lambda: svc.start_flusher(fid)).start()
        code, _, st, took = self.get("/v1/jobs/%s?wait=20" % job)
        self.assertEqual((code, st["status"]), (200, "committed"))
        self.assertGreater(took, 0.9)
        self.assertLess(took, 6)        # the flusher's start, then one batch

    def test_2_answers_the_state_at_the_deadline(self):
        fid = self.stop_flusher()
        try:
            job = self.post()
            code, _, st, took = self.get("/v1/jobs/%s?wait=1" % job)
            self.assertEqual((code, st["status"]), (200, "queued"))
            self.assertGreater(took, 0.95)
            self.assertLess(took, 3)
        finally:
            self.svc.start_flusher(fid)
        self.svc.wait_jobs([job])       # the flusher is up before the next test

    def test_3_failed_and_unknown(self):
        job = self.post(qty=-1)
        code, _, st, took = self.get("/v1/jobs/%s?wait=20" % job)
        self.assertEqual((code, st["status"]), (200, "failed"))
        self.assertLess(took, 10)
        code, _, p, took = self.get("/v1/jobs/%s?wait=5" % UNKNOWN)
        self.assertEqual(code, 404)
        self.assertLess(took, 1)        # nothing to wait for
        for bad in ("31", "-1", "x", "1.5", ""):
            code, _, p, _ = self.get("/v1/jobs/%s?wait=%s" % (UNKNOWN, bad))
            self.assertEqual((code, p["type"].rsplit(":", 1)[-1]), (400, "bad-wait"), bad)
        code, _, st, took = self.get("/v1/jobs/%s?wait=0" % self.post())
        self.assertEqual(code, 200)
        self.assertLess(took, 1)

    def test_4_bounded(self):
        """max_waiting = 2: a third waiter gets 429 at once; other requests
        are served meanwhile; no status is read while they wait."""
        svc = self.svc
        svc.server.terminate()
        svc.start_server(SPILLWAY_SERVER_MAX_WAITING="2")
        fid = self.stop_flusher()
        try:
            jobs = [self.post() for _ in range(3)]
            out = []
            ts = [threading.Thread(target=lambda j=j: out.append(
                self.get("/v1/jobs/%s?wait=4" % j))) for j in jobs[:2]]
            for t in ts:
                t.start()
            time.sleep(0.5)
            # Redis sees no status read while they wait (MONITOR, filtered
            # on the status script's sha).
            self.assertEqual(self.status_reads(2.0), 0)
            self.assertEqual(self.waiting(), 2)
            code, headers, p, took = self.get("/v1/jobs/%s?wait=3" % jobs[2])
            self.assertEqual((code, headers["retry-after"], p["type"].rsplit(":", 1)[-1]),
                             (429, "1", "too-many-waiting"))
            self.assertLess(took, 1)
            code, _, q, took = self.get("/v1/queue")
            self.assertEqual((code, q["depth"]), (200, 3))
            self.assertLess(took, 1)
            for t in ts:
                t.join()
            self.assertEqual(sorted((c, st["status"]) for c, _, st, _ in out),
                             [(200, "queued"), (200, "queued")])
            self.assertEqual(self.waiting(), 0)
        finally:
            svc.start_flusher(fid)
        svc.wait_jobs(jobs)

    def test_5_draining_answers_at_once(self):
        svc = self.svc
        fid = self.stop_flusher()
        job = self.post()
        out = []
        t = threading.Thread(target=lambda: out.append(self.get("/v1/jobs/%s?wait=25" % job)))
        t.start()
        harness.wait_for(lambda: self.waiting() == 1, 5, "the waiter")
        t0 = time.time()
        svc.server.terminate()
        t.join(10)
        self.assertFalse(t.is_alive())
        self.assertLess(time.time() - t0, 5)
        code, _, st, _ = out[0]
        self.assertEqual((code, st["status"]), (200, "queued"))
        svc.start_server()
        svc.start_flusher(fid)
        svc.wait_jobs([job])

    def test_6_lookup(self):
        svc = self.svc
        ok = [self.post() for _ in range(3)]
        bad = self.post(qty=-1)
        svc.wait_jobs(ok)
        svc.wait_jobs([bad], want="failed")
        ids = ok + [bad, UNKNOWN, "not-an-id"]
        code, _, body = svc.request("POST", "/v1/jobs/lookup", json.dumps({"ids": ids}),
                                    {"Content-Type": "application/json"})
        self.assertEqual(code, 200, body)
        jobs = json.loads(body)["jobs"]
        self.assertEqual([j["job_id"] for j in jobs], ids)
        self.assertEqual([j["status"] for j in jobs],
                         ["committed"] * 3 + ["failed", "unknown", "unknown"])
        # Each as GET /v1/jobs/{id} answers it.
        self.assertEqual(jobs[0], json.loads(svc.request("GET", "/v1/jobs/" + ok[0])[2]))
        for body, want in ((json.dumps({"ids": [UNKNOWN] * 1001}), 422),
                           (json.dumps({"ids": [1]}), 422), (json.dumps([ok[0]]), 422),
                           ("{", 400)):
            code, _, out = svc.request("POST", "/v1/jobs/lookup", body,
                                       {"Content-Type": "application/json"})
            self.assertEqual(code, want, out)
        self.assertEqual(svc.request("GET", "/v1/jobs/lookup")[0], 405)
        t0 = time.time()
        code, _, body = svc.request("POST", "/v1/jobs/lookup",
                                    json.dumps({"ids": (ok * 334)[:1000]}),
                                    {"Content-Type": "application/json"})
        self.assertEqual((code, len(json.loads(body)["jobs"])), (200, 1000))
        self.assertLess(time.time() - t0, 10)

    def status_reads(self, seconds):
        """EVALSHA calls of the status script (lua/status.lua) Redis runs
        in the next `seconds`; the test itself reads nothing meanwhile."""
        text = subprocess.run([os.path.join(harness.BIN, "test-script-text"), "status"],
                              capture_output=True, check=True, timeout=10).stdout
        sha = hashlib.sha1(text).hexdigest()
        mon = subprocess.Popen(["redis-cli", "-p", str(self.svc.redis.port), "MONITOR"],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        try:
            # A status read once MONITOR is on proves it sees them.
            time.sleep(0.3)
            self.svc.request("GET", "/v1/jobs/" + UNKNOWN)
            time.sleep(seconds)
        finally:
            mon.terminate()
            out = mon.communicate(timeout=10)[0].decode(errors="replace")
        n = sum(1 for line in out.splitlines() if sha in line)
        self.assertGreaterEqual(n, 1, "MONITOR saw no status read at all")
        return n - 1

    def test_7_case_and_admin_listener(self):
        """An id sent in upper case is woken like its own; on the admin
        listener (two threads for the probes) ?wait answers at once."""
        svc = self.svc
        admin = harness.free_port()
        svc.server.terminate()
        svc.start_server(SPILLWAY_SERVER_ADMIN_LISTEN="127.0.0.1:%d" % admin)
        fid = self.stop_flusher()
        job = self.post()
        t0 = time.time()
        code, _, body = svc.request("GET", "/v1/jobs/%s?wait=5" % job, port=admin)
        self.assertEqual((code, json.loads(body)["status"]), (200, "queued"))
        self.assertLess(time.time() - t0, 1)
        threading.Timer(1.0, lambda: svc.start_flusher(fid)).start()
        code, _, st, took = self.get("/v1/jobs/%s?wait=20" % job.upper())
        self.assertEqual((code, st["status"], st["job_id"]), (200, "committed", job))
        self.assertLess(took, 6)
        svc.server.terminate()
        svc.start_server()

    def waiting(self):
        text = self.svc.request("GET", "/metrics")[2].decode()
        m = re.search(r"(?m)^spillway_jobs_waiting (\S+)$", text)
        return float(m.group(1)) if m else -1


if __name__ == "__main__":
    harness.main()
