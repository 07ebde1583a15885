"""Both daemons' /metrics pass `promtool check metrics` and carry live
figures: requests, accepted and committed records, batch and latency
histograms, failures by SQLSTATE class, queue gauges, build info."""

import os
import re
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.CHECKED_SINK, harness.CHECKED_TABLE


def promtool(text):
    r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                       text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def value(text, series):
    m = re.search(r"(?m)^%s (\S+)$" % re.escape(series), text)
    assert m, "no series %s in:\n%s" % (series, text)
    return float(m.group(1))


class MetricsTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False

    def test_both_daemons(self):
        port = harness.free_port()
        f = self.svc.start_flusher("m1", SPILLWAY_FLUSHER_METRICS_LISTEN="127.0.0.1:%d" % port)
        good = [self.svc.post_ok("checked", [{"id": i, "qty": 1}, {"id": 1000 + i, "qty": 2}])
                for i in range(10)]
        bad = self.svc.post_ok("checked", {"id": 5000, "qty": -1})
        self.svc.wait_jobs(good)
        self.svc.wait_jobs([bad], want="failed")
        self.svc.post("checked", {"id": "x"})   # a 422

        code, headers, body = self.svc.request("GET", "/metrics")
        server = body.decode()
        rc, out = promtool(server)
        self.assertEqual(rc, 0, out)
        self.assertEqual(value(server, 'spillway_records_accepted_total{sink="checked"}'), 21)
        self.assertEqual(value(server, 'spillway_requests_rejected_total{reason="validation"}'), 1)
        self.assertEqual(value(server, 'spillway_build_info{program="spillway-server",version="0.1.0"}'), 1)
        self.assertEqual(value(server, "spillway_http_request_duration_seconds_count"),
                         sum(float(v) for v in re.findall(r"(?m)^spillway_http_requests_total\{.*\} (\S+)$", server)))

        import http.client
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/metrics")
        resp = conn.getresponse()
        flusher = resp.read().decode()
        self.assertEqual(resp.status, 200)
        self.assertTrue(resp.getheader("Content-Type").startswith("text/plain; version=0.0.4"))
        conn.close()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("GET", "/healthz")
        resp = conn.getresponse()
        self.assertEqual((resp.status, resp.read()), (200, b'{"status":"ok"}'))
        conn.close()
        rc, out = promtool(flusher)
        self.assertEqual(rc, 0, out)
        self.assertEqual(value(flusher, 'spillway_records_committed_total{sink="checked"}'), 20)
        self.assertEqual(value(flusher, 'spillway_jobs_committed_total{sink="checked"}'), 10)
        self.assertEqual(value(flusher, 'spillway_jobs_failed_total{sink="checked"}'), 1)
        self.assertEqual(value(flusher, 'spillway_flush_failures_total{sqlstate_class="23"}'), 1)
        self.assertEqual(value(flusher, "spillway_end_to_end_latency_seconds_count"), 10)
        self.assertGreaterEqual(value(flusher, "spillway_batches_committed_total"), 1)
        self.assertEqual(value(flusher, 'spillway_batch_records_bucket{le="+Inf"}'),
                         value(flusher, "spillway_batch_records_count"))
        self.assertEqual(value(flusher, "spillway_dead_letter_jobs"), 1)
        self.assertEqual(value(flusher, "spillway_queue_depth_records"), 0)
        self.assertEqual(value(flusher, 'spillway_build_info{program="spillway-flusher",version="0.1.0"}'), 1)
        self.assertEqual(f.terminate(), 0)


if __name__ == "__main__":
    harness.main()
