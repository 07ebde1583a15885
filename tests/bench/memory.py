#!/usr/bin/env python3
"""Memory per request (a tool, not a test): spillway-server's resident set
around bursts of large bodies, 16 clients at once, 3 requests each:
1 MiB of [{},{},...] (413), 1 MiB of nested arrays in one jsonb value
(422), and 0.8 MiB of 9,000 valid records (202). Prints the peak over the
idle baseline (sampled every 5 ms) and the resident set 2 s after each
burst. Run with a Release build (the sanitizer build keeps freed memory in
quarantine):

    cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release && cmake --build build-bench
    SW_BIN=$PWD/build-bench/bin pg_virtualenv -- python3 tests/bench/memory.py
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
import harness  # noqa: E402

SINKS = """
[sink.ev]
table = public.ev
columns = id bigint not null, payload text, body jsonb, n numeric, t timestamptz
"""
TABLE = "CREATE TABLE ev (id bigint NOT NULL, payload text, body jsonb, n numeric, t timestamptz)"


def rss_mb(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0


def main():
    harness.require_postgres()
    svc = harness.Service("memory", SINKS, TABLE, {"server": {"threads": "16"}}, flusher=False)
    try:
        pid = svc.server.proc.pid
        time.sleep(1)
        base = rss_mb(pid)
        mib = 1 << 20
        bodies = [
            ("[{},{},...] (413)", "[" + ",".join(["{}"] * ((mib - 2) // 3)) + "]"),
            ("nested jsonb (422)", '{"id":1,"body":[' + ",".join(["[]"] * ((mib - 20) // 3)) + "]}"),
            ("9000 records (202)", "[" + ",".join(
                '{"id":%d,"payload":"hello %d","n":"12.50","t":"2026-01-31T12:00:00Z",'
                '"body":{"k":[1,2,3]}}' % (i, i) for i in range(9000)) + "]"),
        ]
        print("idle resident set: %.1f MB" % base)
        print("%-22s %9s %12s %14s %12s" % ("body", "bytes", "answers", "peak over idle",
                                             "2 s after"))
        for name, body in bodies:
            codes, peak, done = [], [0.0], [False]

            def sample():
                while not done[0]:
                    peak[0] = max(peak[0], rss_mb(pid))
                    time.sleep(0.005)

            def client():
                for _ in range(3):
                    codes.append(svc.post("ev", body)[0])
            sampler = threading.Thread(target=sample)
            sampler.start()
            clients = [threading.Thread(target=client) for _ in range(16)]
            for c in clients:
                c.start()
            for c in clients:
                c.join()
            done[0] = True
            sampler.join()
            time.sleep(2)
            print("%-22s %9d %12s %11.1f MB %9.1f MB" % (name, len(body), sorted(set(codes)),
                                                        peak[0] - base, rss_mb(pid)))
    finally:
        svc.close()


if __name__ == "__main__":
    main()
