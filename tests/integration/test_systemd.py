"""systemd's notify protocol: both daemons, run with NOTIFY_SOCKET and
WATCHDOG_USEC set the way systemd sets them, send READY=1 once they serve,
STATUS= lines, WATCHDOG=1 from their main loops, and STOPPING=1 on
SIGTERM."""

import os
import socket
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

SINKS, TABLES = harness.EVENTS_SINK, harness.EVENTS_TABLE


class NotifySocket:
    def __init__(self, path):
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.settimeout(0.2)
        self.messages = []

    def read_until(self, pred, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                self.messages.append(self.sock.recv(4096).decode())
            except socket.timeout:
                pass
            if pred(self.messages):
                return self.messages
        raise AssertionError("notify messages so far: %r" % self.messages[-10:])

    def close(self):
        self.sock.close()


class SystemdTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES
    FLUSHER = False

    def run_daemon(self, start):
        path = os.path.join(self.svc.tmp, "notify-%d.sock" % time.monotonic_ns())
        ns = NotifySocket(path)
        try:
            d = start({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "400000"})
            ns.read_until(lambda m: any(x.startswith("READY=1\nSTATUS=") for x in m), 20)
            # Fed from the main loop: several WATCHDOG=1 within two seconds.
            t0 = len(ns.messages)
            time.sleep(2)
            ns.read_until(lambda m: m[t0:].count("WATCHDOG=1") >= 4, 5)
            self.assertEqual(d.terminate(), 0)
            ns.read_until(lambda m: "STOPPING=1" in m, 10)
            return ns.messages
        finally:
            ns.close()

    def test_server_notifies(self):
        self.svc.server.terminate()

        def start(env):
            self.svc.start_server(**env)
            return self.svc.server
        msgs = self.run_daemon(start)
        ready = [m for m in msgs if m.startswith("READY=1")][0]
        self.assertRegex(ready, r"STATUS=listening on 127\.0\.0\.1:\d+; queue 0 records, 0 in flight, 0 dead")
        self.svc.start_server()

    def test_flusher_notifies(self):
        msgs = self.run_daemon(lambda env: self.svc.start_flusher("n1", **env))
        ready = [m for m in msgs if m.startswith("READY=1")][0]
        self.assertIn("STATUS=flusher n1 draining", ready)

    def test_no_notify_socket_is_fine(self):
        d = self.svc.start_flusher("plain")
        harness.wait_for(lambda: 'msg="flusher started"' in d.output(), 15, "the flusher")
        self.assertEqual(d.terminate(), 0)
        self.assertNotIn("sd_notify failed", d.output())


if __name__ == "__main__":
    harness.main()
