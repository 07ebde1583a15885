"""The dashboard at /ui in headless Chromium, against a running server with
live data: the numbers and the chart render from /v1/stats, the flushers
and failed jobs are listed, and a screenshot is kept as a test artefact
(tests/artifacts/dashboard.png in the build directory)."""

import html
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.CHECKED_SINK, harness.CHECKED_TABLE
ARTIFACTS = os.path.join(os.environ.get("SW_BUILD", os.path.join(harness.BIN, "..")),
                         "tests", "artifacts")


def chromium(url, *extra):
    """Headless Chromium, offline and sandboxed from this host's profile."""
    profile = tempfile.mkdtemp(prefix="sw-chromium-")
    args = ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + profile,
            "--window-size=1280,1000", "--virtual-time-budget=8000"] + list(extra) + [url]
    return subprocess.run(args, capture_output=True, text=True, timeout=120)


class DashboardTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False

    def test_renders_live_data(self):
        if not harness.shutil.which("chromium"):
            self.skipTest("chromium is not installed (tests/run.sh installs it)")
        d = self.svc.start_flusher("dash-1")
        ok = [self.svc.post_ok("checked", [{"id": i, "qty": 1}]) for i in range(5)]
        bad = self.svc.post_ok("checked", {"id": 99, "qty": -1})
        self.svc.wait_jobs(ok)
        self.svc.wait_jobs([bad], want="failed")
        # Stop the flusher and queue more, so depth is not zero on screen.
        self.assertEqual(d.terminate(), 0)
        for i in range(7):
            self.svc.post_ok("checked", [{"id": 100 + 2 * i, "qty": 1}, {"id": 101 + 2 * i, "qty": 1}])
        depth = self.svc.queue()["depth"]
        self.assertEqual(depth, 14)
        # By sink too, in /metrics and /v1/stats.
        metrics = self.svc.request("GET", "/metrics")[2].decode()
        self.assertIn('spillway_queue_sink_depth_records{sink="checked"} 14\n', metrics)
        stats = harness.json.loads(self.svc.request("GET", "/v1/stats")[2])
        sink, = stats["sinks"]
        self.assertGreater(sink.pop("oldest_age_ms"), 0)
        self.assertGreater(sink.pop("commit_latency_sum_ms"), 0)
        # The 5 committed jobs, by latency bucket (latency_bounds_ms).
        lat = sink.pop("commit_latency")
        self.assertEqual((sum(lat), len(lat), len(stats["latency_bounds_ms"])), (5, 16, 15))
        self.assertEqual(sink, {"name": "checked", "paused": False, "flush_paused": False,
                                "parked": 0, "depth": 14})

        url = "http://127.0.0.1:%d/ui" % self.svc.port
        r = chromium(url, "--dump-dom")
        dom = r.stdout
        self.assertIn('id="depth">14<', dom, r.stderr[-2000:])
        self.assertIn('id="dead">1<', dom)
        self.assertIn('id="in-flight">0<', dom)
        self.assertRegex(dom, r'id="oldest">\d+(\.\d+)? s<')
        self.assertRegex(dom, r'id="updated">updated 20\d\d-')
        # The chart has several samples from the polls in virtual time.
        pts = re.search(r'id="line-depth"[^>]*points="([^"]*)"', dom).group(1).split()
        self.assertGreaterEqual(len(pts), 2, dom[:500])
        # The last polls see 14, the top of the scale (the server's first
        # sample may be from before the writes).
        self.assertTrue(pts[-1].endswith(",20.0") and pts[-2].endswith(",20.0"), pts)
        self.assertIn('data-id="dash-1"', dom)
        self.assertIn('<tr data-sink="checked"><td>checked</td><td>14</td><td class="ok">open</td>',
                      dom)
        self.assertIn('data-id="%s"' % bad, dom)
        self.assertIn(html.escape("SQLSTATE 23514"), dom)
        self.assertIn('<span id="error"></span>', dom)   # no fetch failed

        os.makedirs(ARTIFACTS, exist_ok=True)
        shot = os.path.join(ARTIFACTS, "dashboard.png")
        if os.path.exists(shot):
            os.unlink(shot)
        r = chromium(url, "--screenshot=" + shot)
        self.assertTrue(os.path.exists(shot), r.stderr[-2000:])
        with open(shot, "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertGreater(os.path.getsize(shot), 10000)


class ActionsTest(unittest.TestCase):
    """The dashboard's actions clicked in a real Chromium (DevTools
    protocol, cdp.py) on the admin listener: refused without a +admin
    token; with one, pause and resume a sink's intake (the server answers
    its POSTs 503 in between), pause its flushing and purge the jobs
    parked meanwhile (the sink's name typed to confirm), requeue a failed job after the table is
    fixed (it commits) and drop another; each action logged with the
    token's id. Then the banner when the queue stops draining, and the
    chart's hour kept by the server across a reload."""

    @classmethod
    def setUpClass(cls):
        if not harness.shutil.which("chromium"):
            raise unittest.SkipTest("chromium is not installed (tests/run.sh installs it)")
        cls.admin_port = harness.free_port()
        cls.svc = harness.Service("actions", SINKS, TABLES, {
            "server": {"admin_listen": "127.0.0.1:%d" % cls.admin_port}})
        cls.addClassCleanup(cls.svc.close)
        svc = cls.svc
        tokens = {}
        lines = []
        for name, sinks in (("writer", "checked"), ("admin", "+admin")):
            token, line = svc.ctl("token", "new", "--sinks", sinks).stdout.splitlines()
            tokens[name] = token
            lines.append(line)
        cls.tokens = tokens
        path = os.path.join(svc.tmp, "tokens")
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        svc.server.terminate()
        svc.start_server(SPILLWAY_SERVER_TOKENS_FILE=path)
        import cdp
        cls.browser = cdp.Browser()
        cls.addClassCleanup(cls.browser.close)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    fresh = iter(range(10_000, 1_000_000))

    def post_fresh(self):
        """A good one-record POST with an id never used: the status."""
        return self.post([{"id": next(self.fresh), "qty": 1}])[0]

    def post(self, records):
        return self.svc.post("checked", records,
                             headers={"Authorization": "Bearer " + self.tokens["writer"]})

    def job_of(self, records):
        code, _, body = self.post(records)
        self.assertEqual(code, 202, body)
        return harness.json.loads(body)["job_id"]

    def wait_job(self, job, want):
        def state():
            code, _, body = self.svc.request("GET", "/v1/jobs/" + job, headers={
                "Authorization": "Bearer " + self.tokens["writer"]})
            return code == 200 and harness.json.loads(body)["status"] == want
        harness.wait_for(state, 30, "job %s to be %s" % (job, want))

    def result(self):
        return self.browser.eval("document.getElementById('action-result').textContent")

    def test_1_actions(self):
        b, svc = self.browser, self.svc
        bad = [self.job_of([{"id": 1 + i, "qty": -1}]) for i in range(2)]
        for j in bad:
            self.wait_job(j, "failed")
        b.goto("http://127.0.0.1:%d/ui" % self.admin_port)
        row = 'tr[data-id="%s"]'
        b.wait("document.querySelector('%s') !== null" % (row % bad[1]), what="the failed rows")
        self.assertEqual(b.eval("document.querySelector('%s td:nth-child(2)').textContent"
                                % (row % bad[1])), "checked")
        b.wait("document.querySelector('tr[data-sink=\"checked\"]') !== null")

        # No token: refused, and nothing changed.
        b.click('tr[data-sink="checked"] button')
        b.wait("document.getElementById('action-result').textContent.includes('refused')")
        self.assertIn("refused (401)", self.result())
        self.assertEqual(self.post_fresh(), 202)
        # A token without +admin: 403.
        b.eval("document.getElementById('admin-token').value = %s"
               % harness.json.dumps(self.tokens["writer"]))
        b.click('tr[data-sink="checked"] button')
        b.wait("document.getElementById('action-result').textContent.includes('(403)')")

        # The admin token: pause, then resume.
        b.eval("document.getElementById('admin-token').value = %s"
               % harness.json.dumps(self.tokens["admin"]))
        b.click('tr[data-sink="checked"] button[data-action$="/pause"]')
        b.wait("document.getElementById('action-result').textContent === 'Pause done: checked'")
        harness.wait_for(lambda: self.post_fresh() == 503, 5, "POSTs to answer 503 sink-paused")
        b.wait("document.querySelector('tr[data-sink=\"checked\"] td:nth-child(3)')"
               ".textContent === 'paused'", what="the sink shown paused")
        b.click('tr[data-sink="checked"] button[data-action$="/resume"]')
        b.wait("document.getElementById('action-result').textContent === 'Resume done: checked'")
        harness.wait_for(lambda: self.post_fresh() == 202, 5, "POSTs to be taken again")

        # Pause the flushing: new jobs are parked; purge them (the sink's
        # name typed to confirm; cancelled first), then resume. The jobs
        # posted above must have left the queue first, or they are parked
        # too (a loaded CI machine once showed more than 3).
        harness.wait_for(lambda: svc.llen("queue") == 0, 10, "the earlier jobs to be taken")
        b.click('tr[data-sink="checked"] button[data-action$="/pause-flush"]')
        b.wait("document.getElementById('action-result').textContent === "
               "'Pause flushing done: checked'")
        flog = lambda: "".join(f.output() for f in svc.flushers.values())  # noqa: E731
        harness.wait_for(lambda: 'msg="sink flushing paused" sink=checked' in flog(), 5,
                         "the flusher to see the pause")
        time.sleep(1.1)     # with shards, each shard's drain looks once a second
        parked = [self.job_of([{"id": next(self.fresh), "qty": 1}]) for _ in range(3)]
        cell = "document.querySelector('tr[data-sink=\"checked\"] td:nth-child(%d)').textContent"
        b.wait((cell % 4) + " === 'paused'", what="the flushing shown paused")
        b.wait((cell % 5) + " === '3'", what="3 parked records shown")
        b.eval("window.prompt = () => null")
        b.click('tr[data-sink="checked"] button[data-action$="/purge"]')
        time.sleep(0.5)
        self.assertEqual(b.eval(cell % 5), "3")
        b.eval("window.prompt = (t) => (window.lastPrompt = t, 'checked')")
        b.click('tr[data-sink="checked"] button[data-action$="/purge"]')
        b.wait("document.getElementById('action-result').textContent === "
               "'Purge done: checked (3 jobs, 3 records purged)'")
        self.assertIn("Purge the 3 parked records of sink checked?", b.eval("window.lastPrompt"))
        for j in parked:
            self.wait_job(j, "failed")
        b.click('tr[data-sink="checked"] button[data-action$="/resume-flush"]')
        b.wait("document.getElementById('action-result').textContent === "
               "'Resume flushing done: checked'")
        b.wait((cell % 4) + " === 'running'", what="the flushing shown running")
        # Commit latency over the last minute, by sink (kept in Redis by
        # the flusher); no job waits, so no oldest age.
        self.wait_job(self.job_of([{"id": next(self.fresh), "qty": 1}]), "committed")
        lat = b.wait("/^[0-9.]+ s \\/ [0-9.]+ s$/.test(%s) && %s" % (cell % 7, cell % 7),
                     what="the sink's commit p50 / p99")
        p50, p99 = (float(x.split()[0]) for x in lat.split(" / "))
        self.assertLessEqual(p50, p99)
        self.assertLess(p99, 60)
        b.wait((cell % 6) + " === '–'", what="no oldest age (read every 2 s)")

        # Requeue one failed job once its table takes it; drop the other.
        svc.sql("ALTER TABLE checked DROP CONSTRAINT checked_qty_check")
        b.click((row % bad[0]) + ' button[data-action$="/requeue"]')
        b.wait("document.getElementById('action-result').textContent.startsWith('Requeue done')")
        self.wait_job(bad[0], "committed")
        # Drop asks first: declined, nothing happens; accepted, it goes.
        b.eval("window.confirm = () => false")
        b.click((row % bad[1]) + ' button[data-action$="/drop"]')
        time.sleep(0.5)
        self.assertTrue(b.eval("!!document.querySelector('%s')" % (row % bad[1])))
        b.eval("window.confirm = (t) => (window.lastConfirm = t, true)")
        b.click((row % bad[1]) + ' button[data-action$="/drop"]')
        b.wait("document.getElementById('action-result').textContent.startsWith('Drop done')")
        self.assertIn("Drop failed job %s of sink checked?" % bad[1], b.eval("window.lastConfirm"))
        b.wait("document.querySelector('%s') === null" % (row % bad[1]), what="the row to go")
        q = harness.json.loads(svc.request("GET", "/v1/queue", port=self.admin_port)[2])
        self.assertEqual(q["dead_jobs"], 0)
        self.assertEqual(svc.sql("SELECT qty FROM checked WHERE id = 1"), [["-1"]])

        log = svc.server.output()
        actions = re.findall(r'msg="admin action" action=([\w-]+) target=(\S+) token=(\w+)', log)
        self.assertEqual([(a, t) for a, t, _ in actions],
                         [("pause", "checked"), ("resume", "checked"),
                          ("pause-flush", "checked"), ("purge", "checked"),
                          ("resume-flush", "checked"), ("requeue", bad[0]), ("drop", bad[1])])
        import hashlib
        want_id = hashlib.sha256(self.tokens["admin"].encode()).hexdigest()[:12]
        self.assertEqual({tok for _, _, tok in actions}, {want_id})
        os.makedirs(ARTIFACTS, exist_ok=True)
        b.screenshot(os.path.join(ARTIFACTS, "dashboard-actions.png"))

    def test_2_banner_and_kept_history(self):
        b, svc = self.browser, self.svc
        # The server has sampled the queue (every 10 s, from its start).
        harness.wait_for(lambda: len(harness.json.loads(
            svc.request("GET", "/v1/stats?history=1", port=self.admin_port)[2])["history"]) >= 1,
                         15, "a history sample")
        for fid in list(svc.flushers):
            self.assertEqual(svc.flushers[fid].terminate(), 0)
        self.job_of([{"id": 500, "qty": 1}])
        b.goto("http://127.0.0.1:%d/ui?stall_s=3" % self.admin_port)
        text = b.wait("document.getElementById('banner').className === 'on' && "
                      "document.getElementById('banner').textContent", timeout=30,
                      what="the not-draining banner")
        self.assertIn("The queue is not draining: 1 records wait, nothing committed for", text)
        # A reload starts from the server's samples: points at once, and a
        # time axis.
        b.goto("http://127.0.0.1:%d/ui" % self.admin_port)
        pts = b.wait("document.getElementById('line-depth').getAttribute('points')")
        self.assertGreaterEqual(len(pts.split()), 2, pts)
        labels = b.eval("[...document.querySelectorAll('#axis-queue text')].map(t => t.textContent)")
        self.assertEqual(len(labels), 5, labels)
        self.assertTrue(labels[-1].endswith(" UTC"), labels)
        self.assertRegex(labels[0], r"^\d\d:\d\d")
        svc.start_flusher("again")


if __name__ == "__main__":
    harness.main()
