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
        self.assertTrue(all(p.endswith(",10.0") for p in pts), pts)   # 14 = the top of the scale
        self.assertIn('data-id="dash-1"', dom)
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


if __name__ == "__main__":
    harness.main()
