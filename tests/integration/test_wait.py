"""Waiting for a commit and looking many jobs up, as a client does it:
GET /v1/jobs/{id}?wait=N answers as soon as the job is committed or failed
(the flusher's finish tells the servers through Redis: no polling), or
with its state after N seconds; waits are bounded by [server] max_waiting
(429 past it) and never hold up other requests; a draining server answers
its waiters at once. POST /v1/jobs/lookup answers up to 1,000 statuses in
one round trip. Also run with [redis] shards = 4."""

import json
import os
import re
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

UNKNOWN = "0190a0e4-7b8c-7abc-8123-456789abcdef"


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
            # The scripts the server's own timers run in 2 s, nobody waiting.
            m0 = self.evalsha_calls()
            time.sleep(2)
            idle = self.evalsha_calls() - m0
            out = []
            ts = [threading.Thread(target=lambda j=j: out.append(
                self.get("/v1/jobs/%s?wait=4" % j))) for j in jobs[:2]]
            for t in ts:
                t.start()
            time.sleep(0.5)
            m0 = self.evalsha_calls()
            time.sleep(2)
            # No more than the timers ran: the waiters read nothing meanwhile
            # (polling every half second would be 8 more).
            self.assertLessEqual(self.evalsha_calls() - m0 - idle, 3)
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

    def evalsha_calls(self):
        info = self.svc.redis.raw("INFO", "commandstats")
        m = re.search(r"cmdstat_evalsha:calls=(\d+)", info)
        return int(m.group(1)) if m else 0

    def waiting(self):
        text = self.svc.request("GET", "/metrics")[2].decode()
        m = re.search(r"(?m)^spillway_jobs_waiting (\S+)$", text)
        return float(m.group(1)) if m else -1


if __name__ == "__main__":
    harness.main()
