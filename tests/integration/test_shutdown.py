"""SIGTERM for load balancers: for [server] shutdown_grace_ms /readyz
answers 503 while every request is still served; then the listener
closes, idle keep-alive connections close, and a request under way (an
upload half sent) completes and is answered; the job commits, and the
server exits 0."""

import http.client
import json
import os
import signal
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402


class ShutdownTest(harness.ServiceTest):
    SINKS = harness.EVENTS_SINK
    TABLES = harness.EVENTS_TABLE
    GRACE_MS = 1500

    def test_lame_duck_then_close(self):
        svc = self.svc
        svc.server.terminate()
        svc.start_server(SPILLWAY_SERVER_SHUTDOWN_GRACE_MS=str(self.GRACE_MS))
        harness.wait_for(lambda: svc.request("GET", "/readyz")[0] == 200, 20, "ready")
        # An idle keep-alive connection, and an upload half sent.
        idle = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=10)
        idle.request("GET", "/healthz")
        self.assertEqual(idle.getresponse().read(), b'{"status":"ok"}')
        body = json.dumps([{"id": i, "payload": "x" * 100} for i in range(200)]).encode()
        up = socket.create_connection(("127.0.0.1", svc.port), timeout=10)
        up.sendall(b"POST /v1/sinks/events/records HTTP/1.1\r\nHost: x\r\n"
                   b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
                   + body[:len(body) // 2])
        time.sleep(0.2)

        t0 = time.monotonic()
        svc.server.proc.send_signal(signal.SIGTERM)
        harness.wait_for(lambda: 'msg="server draining"' in svc.server.output(), 10,
                         "the server to start draining")
        code, _, rb = svc.request("GET", "/readyz")
        self.assertEqual(code, 503, rb)
        self.assertIn(b"shutting-down", rb)
        # Still served during the grace period.
        code, _, pb = svc.post("events", [{"id": 5000, "payload": "late"}])
        self.assertEqual(code, 202, pb)
        late = json.loads(pb)["job_id"]
        self.assertEqual(svc.request("GET", "/healthz")[0], 200)
        self.assertLess(time.monotonic() - t0, self.GRACE_MS / 1000)

        # Past the grace: no new connections; the idle one is closed.
        def refused():
            try:
                socket.create_connection(("127.0.0.1", svc.port), timeout=1).close()
                return False
            except OSError:
                return True
        harness.wait_for(refused, 10, "the listener to close")
        self.assertGreaterEqual(time.monotonic() - t0, self.GRACE_MS / 1000 - 0.1)
        idle.sock.settimeout(5)
        self.assertEqual(idle.sock.recv(1), b"")
        # The upload finishes and is answered; then its connection closes.
        up.sendall(body[len(body) // 2:])
        resp = http.client.HTTPResponse(up)
        resp.begin()
        answer = json.loads(resp.read())
        self.assertEqual(resp.status, 202, answer)
        self.assertEqual(answer["records"], 200)
        self.assertEqual(up.recv(1), b"")
        up.close()
        self.assertEqual(svc.server.proc.wait(timeout=30), 0)
        log = svc.server.output()
        self.assertLess(log.rindex('msg="server draining"'), log.rindex('msg="server stopping"'))
        # Both jobs commit (the flusher runs on).
        svc.start_server()
        svc.wait_jobs([late, answer["job_id"]])
        self.assertEqual(svc.sql("SELECT count(*) FROM events"), [["201"]])


if __name__ == "__main__":
    harness.main()
