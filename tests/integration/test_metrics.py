"""Both daemons' /metrics pass `promtool check metrics` and carry live
figures: requests, accepted and committed records, batch and latency
histograms, failures by SQLSTATE class, queue gauges, build info."""

import os
import re
import subprocess
import sys
import time
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
        # Latency by route, each route's count its requests (this scrape's
        # own request is counted once it is answered).
        by_route = lambda name: {r: float(v) for r, v in re.findall(  # noqa: E731
            r'(?m)^%s\{route="([^"]+)"(?:,code="\d+")?\} (\S+)$' % name, server)}
        counts = by_route("spillway_http_request_duration_seconds_count")
        totals = {}
        for r, v in re.findall(r'(?m)^spillway_http_requests_total\{route="([^"]+)",code="\w+"\} '
                               r'(\S+)$', server):
            totals[r] = totals.get(r, 0) + float(v)
        self.assertEqual({r: v for r, v in counts.items() if v}, totals)
        self.assertEqual(counts["/v1/sinks/{sink}/records"], 12)
        self.assertEqual(value(server, 'spillway_http_request_duration_seconds_bucket{'
                                       'route="/metrics",le="60"}'), 0)
        # Queue gauges come from the server alone; it also counts the live
        # flushers and says whether a write would be queued.
        self.assertEqual(value(server, "spillway_dead_letter_jobs"), 1)
        self.assertEqual(value(server, "spillway_queue_depth_records"), 0)
        self.assertEqual(value(server, 'spillway_queue_sink_depth_records{sink="checked"}'), 0)
        self.assertEqual(value(server, 'spillway_queue_sink_parked_records{sink="checked"}'), 0)
        self.assertEqual(value(server, 'spillway_queue_sink_oldest_age_seconds{sink="checked"}'),
                         0)
        # Commit latency by sink, kept in Redis by the flushers: the 10
        # committed jobs, not the failed one; every server sees it.
        lat = 'spillway_sink_commit_latency_seconds_%s{sink="checked"%s}'
        self.assertEqual(value(server, lat % ("count", "")), 10)
        self.assertEqual(value(server, lat % ("bucket", ',le="+Inf"')), 10)
        self.assertEqual(value(server, lat % ("bucket", ',le="3600"')), 10)
        self.assertLessEqual(value(server, lat % ("bucket", ',le="0.005"')), 10)
        self.assertGreater(value(server, lat % ("sum", "")), 0)
        self.assertLess(value(server, lat % ("sum", "")), 10 * 60)
        self.assertEqual(value(server, "spillway_flushers_live"), 1)
        # Every registered flusher is looked at, however many dead ones
        # wait in the registry for their lists to be taken over.
        for p in self.svc.prefixes():
            self.svc.redis.cli("SADD", p + ":flushers", *["gone-%d" % i for i in range(100)])
        self.assertEqual(value(self.svc.request("GET", "/metrics")[2].decode(),
                               "spillway_flushers_live"), 1)
        self.assertEqual(value(server, "spillway_redis_writable"), 1)
        for p in (server,):
            self.assertGreater(value(p, "process_resident_memory_bytes"), 1 << 20)
            self.assertGreater(value(p, "process_open_fds"), 3)
            self.assertGreater(value(p, "process_start_time_seconds"), time.time() - 600)
            self.assertLessEqual(value(p, "process_start_time_seconds"), time.time())
            self.assertGreater(value(p, "process_cpu_seconds_total"), 0)

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
        self.assertEqual(value(flusher, 'spillway_end_to_end_latency_seconds_count{sink="checked"}'),
                         10)
        # Buckets from 1 ms to 1 h: none of these took an hour.
        self.assertEqual(value(flusher, 'spillway_end_to_end_latency_seconds_bucket{'
                                        'sink="checked",le="3600"}'), 10)
        self.assertIn('spillway_flush_duration_seconds_bucket{le="0.001"}', flusher)
        self.assertGreaterEqual(value(flusher, "spillway_batches_committed_total"), 1)
        self.assertEqual(value(flusher, 'spillway_batch_records_bucket{le="+Inf"}'),
                         value(flusher, "spillway_batch_records_count"))
        for gauge in ("spillway_dead_letter_jobs", "spillway_queue_depth_records",
                      "spillway_queue_in_flight_records"):
            self.assertNotIn("\n" + gauge, flusher)
        self.assertEqual(value(flusher, "spillway_postgres_up"), 1)
        self.assertEqual(value(flusher, "spillway_redis_up"), 1)
        self.assertGreater(value(flusher, "process_resident_memory_bytes"), 1 << 20)
        self.assertGreater(value(flusher, "process_max_fds"), 0)
        self.assertEqual(value(flusher, 'spillway_build_info{program="spillway-flusher",version="0.1.0"}'), 1)
        self.assertEqual(f.terminate(), 0)


if __name__ == "__main__":
    harness.main()
