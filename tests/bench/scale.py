#!/usr/bin/env python3
"""Scaling out on one machine: 1 and 2 spillway-servers behind the load,
with 1, 2 and 4 flushers, against one Redis and one PostgreSQL. Prints
figures, asserts nothing; run through tests/bench/run.sh --scale (Release
build, throwaway PostgreSQL, its own redis-server, loopback only).

Each configuration: wrk (one record per POST, 64 connections in all, split
evenly over the servers) for BENCH_SCALE_SECONDS with every flusher
running, then until the last row is in PostgreSQL. The rate is rows /
(load + tail); the ratio is against 1 server and 1 flusher in this same
run. "err+dup" counts non-2xx answers and socket errors plus rows landed
twice (both 0 expected). CPU seconds per 100k rows of each kind of
process show where the time goes: with every process on the same 2 cores, the one whose share
grows is the bottleneck, not a lock of ours."""

import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
import run  # noqa: E402

SECONDS = int(os.environ.get("BENCH_SCALE_SECONDS", "8"))
DRAIN = int(os.environ.get("BENCH_SCALE_DRAIN_RECORDS", "300000"))
CONFIGS = [(1, 1), (1, 2), (1, 4), (2, 1), (2, 2), (2, 4)]
# The same load over [redis] shards = 4 (one Redis): what the lanes and
# the shard leases cost or buy, against 1 x 1 on one queue.
SHARDED = [(1, 1), (1, 2), (1, 4)]


def start_server(svc, port):
    d = harness.Daemon("server-%d" % port, [os.path.join(harness.BIN, "spillway-server"),
                                            "--config", svc.config],
                       dict(svc.env, SPILLWAY_SERVER_LISTEN="127.0.0.1:%d" % port),
                       os.path.join(svc.tmp, "server-%d.log" % port))
    harness.wait_for(lambda: run.answers(svc, port), 15, "server on %d" % port)
    return d


def flushers_up(svc, name, n):
    """Start `n` flushers; return them once each says it started."""
    flushers = [svc.start_flusher("%s-%d" % (name, i)) for i in range(n)]
    for d in flushers:
        harness.wait_for(lambda: "flusher started" in d.output(), 30, "flusher start",
                         step=0.002)
    return flushers


def stop_all(svc, daemons):
    for d in daemons:
        d.terminate()
    svc.flushers.clear()


def landed(svc):
    """Rows in orders, and how many of them repeat an id (0 expected)."""
    rows, distinct = map(int, svc.sql("SELECT count(*), count(DISTINCT id) FROM orders")[0])
    return rows, rows - distinct


def per_100k(cpu, kinds, rows):
    """CPU seconds per 100k rows, summed over the processes of each kind."""
    return {k: 1e5 * sum(v for name, v in cpu.items() if name.startswith(k)) / max(rows, 1)
            for k in kinds}


def one(svc, servers, nflushers):
    svc.sql("TRUNCATE orders")
    svc.redis.cli("FLUSHALL")
    ports, extra, flushers = [svc.port], [], []
    try:
        for _ in range(servers - 1):
            port = harness.free_port()
            extra.append(start_server(svc, port))
            ports.append(port)
        flushers = flushers_up(svc, "scale", nflushers)
        pids = {"redis": svc.redis.proc.pid, "server 1": svc.server.proc.pid}
        pids.update(("server %d" % i, d.proc.pid) for i, d in enumerate(extra, 2))
        pids.update(("flusher %d" % i, d.proc.pid) for i, d in enumerate(flushers, 1))
        meter = run.CpuMeter(pids)
        meter.start()
        t0 = time.monotonic()
        conns = run.CONNECTIONS // servers
        # Each wrk its own ids: rows landed twice must mean a duplicate.
        loads = [subprocess.Popen(run.wrk_args(port, "/v1/sinks/orders/records", SECONDS,
                                               "post.lua", conns, 2 // servers or 1),
                                  stdout=subprocess.PIPE, text=True,
                                  env=dict(os.environ, SW_BENCH_ID_BASE=str(i * 10**12)))
                 for i, port in enumerate(ports)]
        outs = [run.wrk_parse(p.communicate(timeout=SECONDS + 120)[0]) for p in loads]
        loaded = time.monotonic() - t0
        harness.wait_for(lambda: run.drained(svc), 900, "the load to drain", step=0.02)
        elapsed = time.monotonic() - t0
        cpu = meter.stop()
    finally:
        stop_all(svc, flushers + extra)
    rows, dup = landed(svc)
    return {"rows": rows, "dup": dup, "rate": rows / elapsed,
            "rps": sum(o["rps"] for o in outs), "errors": sum(o["errors"] for o in outs),
            "tail_s": elapsed - loaded, "dead": svc.queue()["dead_jobs"],
            "cpu": per_100k(cpu, ("redis", "server", "flusher", "postgres"), rows)}


def drain(svc, nflushers, per_job):
    """A queue filled with the flushers stopped, then drained by
    `nflushers` at once: the flushers' side alone."""
    svc.sql("TRUNCATE orders")
    svc.redis.cli("FLUSHALL")
    errors = run.fill(svc, "orders", per_job, DRAIN)
    flushers = [svc.start_flusher("drain-%d" % i) for i in range(nflushers)]
    try:
        pids = {"redis": svc.redis.proc.pid}
        pids.update(("flusher %d" % i, d.proc.pid) for i, d in enumerate(flushers, 1))
        meter = run.CpuMeter(pids)
        meter.start()
        # Timed from when every flusher is ready, as run.py's drains.
        for d in flushers:
            harness.wait_for(lambda: "flusher started" in d.output(), 30, "flusher start",
                             step=0.002)
        t0 = time.monotonic()
        harness.wait_for(lambda: run.drained(svc), 900, "drain", step=0.02)
        elapsed = time.monotonic() - t0
        cpu = meter.stop()
    finally:
        stop_all(svc, flushers)
    rows, dup = landed(svc)
    return {"rows": rows, "dup": dup, "rate": rows / elapsed, "errors": errors,
            "dead": svc.queue()["dead_jobs"],
            "cpu": per_100k(cpu, ("redis", "flusher", "postgres"), rows)}


def main():
    harness.require_postgres()
    svc = run.service("scale")
    results = {}
    try:
        for servers, nflushers in CONFIGS:
            results[(servers, nflushers)] = one(svc, servers, nflushers)
        drains = {(n, per_job): drain(svc, n, per_job) for per_job in (1, 100) for n in (1, 2, 4)}
    finally:
        svc.close()
        svc.cleanup()
    svc = run.service("scale4", shards=4)
    sharded = {}
    try:
        for servers, nflushers in SHARDED:
            sharded[(servers, nflushers)] = one(svc, servers, nflushers)
    finally:
        svc.close()
        svc.cleanup()
    base = results[CONFIGS[0]]["rate"]
    print()
    print("machine: %d cores; one record per POST; wrk 64 connections split over the servers; "
          "%d s of load; Release build" % (os.cpu_count(), SECONDS))
    print()
    print("%-22s %9s %10s %7s %7s %6s %5s   %s" % (
        "servers x flushers", "rows/s", "ratio", "POST/s", "err+dup", "tail s", "dead",
        "CPU s per 100k rows: redis server flusher postgres"))
    rows = [("%d x %d" % k, r) for k, r in results.items()]
    rows += [("%d x %d, 4 shards" % k, r) for k, r in sharded.items()]
    for name, r in rows:
        c = r["cpu"]
        print("%-22s %9.0f %9.2fx %7.0f %7d %6.1f %5d   %5.2f %6.2f %7.2f %8.2f" % (
            name, r["rate"], r["rate"] / base, r["rps"],
            r["errors"] + r["dup"], r["tail_s"], r["dead"], c["redis"], c["server"], c["flusher"], c["postgres"]))
    print()
    print("%-28s %9s %10s %7s %5s   %s" % (
        "drain of %d records" % DRAIN, "rows/s", "ratio", "err+dup", "dead",
        "CPU s per 100k rows: redis flusher postgres"))
    for (n, per_job), r in drains.items():
        c = r["cpu"]
        print("%-28s %9.0f %9.2fx %7d %5d   %5.2f %7.2f %8.2f" % (
            "%d flusher(s), %d-record jobs" % (n, per_job), r["rate"],
            r["rate"] / drains[(1, per_job)]["rate"], r["errors"] + r["dup"], r["dead"],
            c["redis"], c["flusher"], c["postgres"]))


if __name__ == "__main__":
    main()
