#!/usr/bin/env python3
"""Spillway benchmark: prints figures, asserts nothing. Run through
tests/bench/run.sh (Release build, throwaway PostgreSQL from pg_virtualenv,
its own redis-server on loopback).

1. Ingest: wrk, 64 connections, one record per POST, against
   (a) a bare civetweb handler that answers 202 without work,
   (b) spillway-server (flusher stopped), and
   (c) a second spillway-server with a tokens_file, wrk sending a bearer
       token (the cost of authentication), in one run on this machine.
2. Drain: a queue pre-filled with 500,000 records, timed from flusher
   start until the queue and in-flight are empty; against PostgreSQL's own
   COPY of the same rows with psql.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402

DURATION = int(os.environ.get("BENCH_SECONDS", "5"))
# Bare and ours alternate for ROUNDS rounds; medians damp a noisy neighbour.
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "5"))
CONNECTIONS = 64
# The bare civetweb handler serves one keep-alive connection per worker
# thread, so it gets one per connection. Ours need not (idle connections
# hold no worker), but as many workers as connections give the Redis lane
# as many writes in flight to group; both get the same count.
THREADS = "64"
DRAIN_RECORDS = int(os.environ.get("BENCH_DRAIN_RECORDS", "500000"))

SINKS = """
[sink.orders]
table = public.orders
columns = id bigint not null, customer text not null, total numeric, tags jsonb, placed_at timestamptz
"""
TABLE = ("CREATE TABLE %s (id bigint NOT NULL, customer text NOT NULL, total numeric, "
         "tags jsonb, placed_at timestamptz)")


def wrk(port, token=None):
    env = dict(os.environ, SW_BENCH_TOKEN=token) if token else None
    out = subprocess.run(
        ["wrk", "-t2", "-c%d" % CONNECTIONS, "-d%ds" % DURATION, "--latency", "-s",
         os.path.join(HERE, "post.lua"), "http://127.0.0.1:%d/v1/sinks/orders/records" % port],
        capture_output=True, text=True, timeout=DURATION + 60, env=env).stdout

    def unit(v, u):
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
    lat = {p: unit(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": rps, "p50": lat["50"], "p99": lat["99"], "total": total, "errors": errors}


def prefill(svc, per_job):
    """Queue DRAIN_RECORDS records in jobs of `per_job` through the API."""
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=30)
    next_id, jobs_per_req = 0, max(1, 1000 // per_job)
    while next_id < DRAIN_RECORDS:
        if per_job == 1:
            # One record per request: post a single object.
            body = json.dumps({"id": next_id, "customer": "c%d" % (next_id % 1000),
                               "total": "%d.50" % (next_id % 977), "tags": {"src": "bench"},
                               "placed_at": "2026-01-31T12:00:00Z"})
            next_id += 1
        else:
            recs = [{"id": i, "customer": "c%d" % (i % 1000), "total": "%d.50" % (i % 977),
                     "tags": {"src": "bench"}, "placed_at": "2026-01-31T12:00:00Z"}
                    for i in range(next_id, min(next_id + per_job, DRAIN_RECORDS))]
            next_id += len(recs)
            body = json.dumps(recs)
        conn.request("POST", "/v1/sinks/orders/records", body=body,
                     headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 202, resp.status
    conn.close()


def prefill_fast(svc, per_job):
    """For one-record jobs, use wrk-like parallelism: several client threads."""
    import threading
    import http.client
    n_threads = 8
    per = DRAIN_RECORDS // n_threads

    def run(t):
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=30)
        for i in range(t * per, (t + 1) * per):
            body = json.dumps({"id": i, "customer": "c%d" % (i % 1000), "total": "%d.50" % (i % 977),
                               "tags": {"src": "bench"}, "placed_at": "2026-01-31T12:00:00Z"})
            conn.request("POST", "/v1/sinks/orders/records", body=body,
                         headers={"Content-Type": "application/json"})
            r = conn.getresponse()
            r.read()
            assert r.status == 202
        conn.close()
    ts = [threading.Thread(target=run, args=(t,)) for t in range(n_threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()


def drain(svc, per_job):
    svc.sql("TRUNCATE orders")
    (prefill if per_job > 1 else prefill_fast)(svc, per_job)
    q = svc.queue()
    assert q["depth"] == DRAIN_RECORDS, q
    t0 = time.monotonic()
    d = svc.start_flusher("bench-%d" % per_job)
    harness.wait_for(lambda: (lambda q: q["depth"] == 0 and q["in_flight"] == 0)(svc.queue()),
                     600, "drain", step=0.02)
    elapsed = time.monotonic() - t0
    d.terminate()
    rows = int(svc.sql("SELECT count(*) FROM orders")[0][0])
    dead = svc.queue()["dead_jobs"]
    return {"records": rows, "seconds": elapsed, "rate": rows / elapsed, "dead": dead}


def pg_copy(db, tmp):
    path = os.path.join(tmp, "rows.copy")
    with open(path, "w") as f:
        for i in range(DRAIN_RECORDS):
            f.write('%d\tc%d\t%d.50\t{"src": "bench"}\t2026-01-31T12:00:00Z\n' % (i, i % 1000, i % 977))
    harness.psql(TABLE % "orders_copy", db)
    t0 = time.monotonic()
    subprocess.run(["psql", "-X", "-q", "-d", db, "-c", "\\copy orders_copy FROM '%s'" % path],
                   check=True, timeout=600)
    elapsed = time.monotonic() - t0
    rows = int(harness.psql("SELECT count(*) FROM orders_copy", db)[0][0])
    return {"records": rows, "seconds": elapsed, "rate": rows / elapsed}


def answers(svc, port):
    try:
        return svc.request("GET", "/healthz", port=port)[0] == 200
    except OSError:
        return False


def main():
    harness.require_postgres()
    svc = harness.Service("bench", SINKS, TABLE % "orders", flusher=False,
                          extra={"server": {"threads": THREADS, "worker_nice": "10"},
                                 "flusher": {"batch_max_records": "5000", "flush_interval_ms": "200"}})
    bare = authed = None
    try:
        # The same server with authentication on: 20 tokens in the file, the
        # one wrk sends is the last, so every request compares them all.
        lines = []
        for _ in range(20):
            token, line = svc.ctl("token", "new", "--sinks", "orders").stdout.splitlines()
            lines.append(line)
        tokens_file = os.path.join(svc.tmp, "tokens")
        with open(tokens_file, "w") as f:
            f.write("\n".join(lines) + "\n")
        auth_port = harness.free_port()
        authed = harness.Daemon("server-auth", [os.path.join(harness.BIN, "spillway-server"),
                                                "--config", svc.config],
                                dict(svc.env, SPILLWAY_SERVER_TOKENS_FILE=tokens_file,
                                     SPILLWAY_SERVER_LISTEN="127.0.0.1:%d" % auth_port),
                                os.path.join(svc.tmp, "server-auth.log"))
        harness.wait_for(lambda: answers(svc, auth_port), 15, "the authenticating server")
        port = harness.free_port()
        bare = subprocess.Popen([os.path.join(harness.BIN, "bench-bare-server"),
                                 "127.0.0.1:%d" % port, THREADS, "10"])
        harness.wait_for(lambda: subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "POST",
                                                 "http://127.0.0.1:%d/" % port]).returncode == 0,
                         10, "bare server")
        rounds = []
        for _ in range(ROUNDS):
            ceiling = wrk(port)
            ours = wrk(svc.port)
            ours["queued"] = svc.queue()["depth"]
            svc.redis.cli("FLUSHALL")
            auth = wrk(auth_port, token)
            svc.redis.cli("FLUSHALL")
            rounds.append((ceiling, ours, auth))
        bare.terminate()
        bare.wait(timeout=10)
        bare = None
        authed.terminate()
        authed = None

        drain_100 = drain(svc, 100)
        svc.redis.cli("FLUSHALL")
        drain_1 = drain(svc, 1)
        copy = pg_copy(svc.db, svc.tmp)
    finally:
        if bare:
            bare.kill()
        if authed:
            authed.kill()
        svc.close()
        svc.cleanup()

    print()
    print("machine: %d cores; wrk -t2 -c%d -d%ds, one record per POST, %d alternating rounds"
          % (os.cpu_count(), CONNECTIONS, DURATION, ROUNDS))
    print("%-34s %10s %9s %9s %10s" % ("ingest", "req/s", "p50 ms", "p99 ms", "non-2xx+err"))
    ratios, auth_ratios = [], []
    for n, (ceiling, ours, auth) in enumerate(rounds, 1):
        print("%-34s %10.0f %9.2f %9.2f %10d" % ("round %d: bare civetweb handler" % n, ceiling["rps"],
                                                 ceiling["p50"], ceiling["p99"], ceiling["errors"]))
        print("%-34s %10.0f %9.2f %9.2f %10d" % ("round %d: spillway-server POST" % n, ours["rps"],
                                                 ours["p50"], ours["p99"], ours["errors"]))
        print("%-34s %10.0f %9.2f %9.2f %10d" % ("round %d: same, with bearer token" % n,
                                                 auth["rps"], auth["p50"], auth["p99"],
                                                 auth["errors"]))
        ratios.append(ours["rps"] / ceiling["rps"])
        auth_ratios.append(auth["rps"] / ours["rps"])
    med = sorted(ratios)[len(ratios) // 2]
    print("ingest ratio per round: %s; median %.0f%% of the bare handler; errors: %d"
          % (", ".join("%.0f%%" % (100 * r) for r in ratios), 100 * med,
             sum(o["errors"] for _, o, _ in rounds)))
    print("with a bearer token (20 in the file): %s of the same server without; median %.0f%%; "
          "errors: %d" % (", ".join("%.0f%%" % (100 * r) for r in auth_ratios),
                          100 * sorted(auth_ratios)[len(auth_ratios) // 2],
                          sum(a["errors"] for _, _, a in rounds)))
    print("records queued by our rounds: %s (wrk counts only answers inside its window)"
          % ", ".join(str(o["queued"]) for _, o, _ in rounds))
    print()
    print("%-34s %10s %9s %10s %6s" % ("drain (insert mode)", "records", "seconds", "records/s", "dead"))
    for name, d in (("flusher, 100-record jobs", drain_100), ("flusher, 1-record jobs", drain_1)):
        print("%-34s %10d %9.2f %10.0f %6d" % (name, d["records"], d["seconds"], d["rate"], d["dead"]))
    print("%-34s %10d %9.2f %10.0f %6s" % ("psql \\copy of the same rows", copy["records"],
                                            copy["seconds"], copy["rate"], "-"))
    print("drain ratio: %.0f%% (100-record jobs) and %.0f%% (1-record jobs) of PostgreSQL's own COPY"
          % (100 * drain_100["rate"] / copy["rate"], 100 * drain_1["rate"] / copy["rate"]))


if __name__ == "__main__":
    main()
