#!/usr/bin/env python3
"""Spillway benchmark: prints figures, asserts nothing. Run through
tests/bench/run.sh (Release build, throwaway PostgreSQL from pg_virtualenv,
its own redis-server on loopback with AOF, appendfsync everysec). Every
comparison is a ratio of two figures measured in this one run.

1. Ingest: wrk -t2 -c64, one record per POST, alternating between a bare
   civetweb handler that answers 202 without work and spillway-server with
   its flusher stopped.
2. Drain: a queue pre-filled through the API with jobs of 1, 10 and 100
   records, in insert and in upsert mode, timed from when the flusher is
   ready (its log says "flusher started") until queue and in-flight are
   empty; against psql \\copy of the same rows
   (insert) and a hand-written COPY into a staging table plus INSERT ... ON
   CONFLICT DO UPDATE (upsert).
3. Sustained: the same load as ingest for BENCH_SUSTAIN_SECONDS with the
   flusher running; rows / (load time + time until the last row is in
   PostgreSQL). CPU seconds per 100k records of each process (from /proc),
   the daemons' RSS, and Redis bytes per retained finished job.
4. Latency: a paced load at half the sustained rate (connections each
   pausing 2 ms between requests, their number calibrated by a 2 s
   probe); enqueue -> commit per job from its status (committed_at -
   enqueued_at), p50 and p99.

With BENCH_BASELINE_BIN (the bin/ of another build), phase 3 also runs on
those binaries, in the same run, for a before/after ratio.
"""

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
import harness  # noqa: E402
import memory  # noqa: E402  (its rss_mb)

DURATION = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
SUSTAIN = int(os.environ.get("BENCH_SUSTAIN_SECONDS", "20"))
DRAIN_RECORDS = int(os.environ.get("BENCH_DRAIN_RECORDS", "500000"))
LATENCY_SECONDS = int(os.environ.get("BENCH_LATENCY_SECONDS", "10"))
BASELINE_BIN = os.environ.get("BENCH_BASELINE_BIN")
CONNECTIONS = 64
# The bare civetweb handler serves one keep-alive connection per worker
# thread, so it gets one per connection. Ours runs with its default (16):
# its workers only validate a write (the Redis lane answers it), and idle
# connections hold none.
THREADS = "64"
OUR_THREADS = os.environ.get("BENCH_SERVER_THREADS", "16")
FLUSH_INTERVAL_MS = 200
BATCH_MAX_RECORDS = os.environ.get("BENCH_BATCH_MAX_RECORDS", "5000")
TICK = os.sysconf("SC_CLK_TCK")

SINKS = """
[sink.orders]
table = public.orders
columns = id bigint not null, customer text not null, total numeric, tags jsonb, placed_at timestamptz

[sink.orders_up]
table = public.orders_up
columns = id bigint not null, customer text not null, total numeric, tags jsonb, placed_at timestamptz
mode = upsert
key = id
"""
COLS = "id bigint NOT NULL, customer text NOT NULL, total numeric, tags jsonb, placed_at timestamptz"
TABLES = ("CREATE TABLE orders (%s); CREATE TABLE orders_up (%s, PRIMARY KEY (id)); "
          "CREATE TABLE orders_copy (%s); CREATE TABLE orders_up_ref (%s, PRIMARY KEY (id));"
          % (COLS, COLS, COLS, COLS))


# --- /proc ----------------------------------------------------------------

def cpu_seconds(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK
    except (OSError, IndexError):
        return 0.0


def postgres_pids():
    pids = []
    for d in glob.glob("/proc/[0-9]*"):
        try:
            with open(d + "/comm") as f:
                if f.read().strip() == "postgres":
                    pids.append(int(d[6:]))
        except OSError:
            pass
    return pids


class CpuMeter:
    """CPU seconds each named process used between start() and stop();
    "postgres" is every postgres process (backends that ended between the
    two readings are not counted: the flusher's own backend lives on)."""

    def __init__(self, pids):
        self.pids = pids

    def _read(self):
        got = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        got["postgres"] = {pid: cpu_seconds(pid) for pid in postgres_pids()}
        return got

    def start(self):
        self.t0 = self._read()

    def stop(self):
        t1 = self._read()
        out = {name: t1[name] - self.t0[name] for name in self.pids}
        out["postgres"] = sum(v - self.t0["postgres"].get(pid, 0.0)
                              for pid, v in t1["postgres"].items())
        return out


# --- load -----------------------------------------------------------------

def wrk_args(port, path, seconds, script, connections, threads):
    return ["wrk", "-t%d" % threads, "-c%d" % connections, "-d%ds" % seconds, "--latency", "-s",
            os.path.join(HERE, script), "http://127.0.0.1:%d%s" % (port, path)]


def wrk_parse(out):
    def unit(v, u):
        return float(v) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[u]
    lat = {p: unit(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)$", out, re.M)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0)
    return {"rps": rps, "p50": lat.get("50", 0.0), "p99": lat.get("99", 0.0), "total": total,
            "errors": errors}


def wrk(port, path="/v1/sinks/orders/records", seconds=None, env=None, script="post.lua",
        connections=CONNECTIONS, threads=2):
    seconds = seconds or DURATION
    out = subprocess.run(wrk_args(port, path, seconds, script, connections, threads),
                         capture_output=True, text=True, timeout=seconds + 120,
                         env=dict(os.environ, **(env or {}))).stdout
    return wrk_parse(out)


def redis_used(svc):
    return int(re.search(r"used_memory:(\d+)", svc.redis.raw("INFO", "memory")).group(1))


def drained(svc):
    q = svc.queue()
    return q["depth"] == 0 and q["in_flight"] == 0


# --- phases ---------------------------------------------------------------

def ingest(svc, bare_port):
    rounds = []
    meter = CpuMeter({"server": svc.server.proc.pid, "redis": svc.redis.proc.pid})
    cpu, queued, held = {"server": 0.0, "redis": 0.0}, 0, []
    for _ in range(ROUNDS):
        ceiling = wrk(bare_port)
        meter.start()
        ours = wrk(svc.port)
        used = meter.stop()
        ours["queued"] = svc.queue()["queued_jobs"]
        queued += ours["queued"]
        for k in cpu:
            cpu[k] += used[k]
        full = redis_used(svc)
        svc.redis.cli("FLUSHALL")
        held.append((full - redis_used(svc)) / max(ours["queued"], 1))
        rounds.append((ceiling, ours))
    out = {k: 1e5 * v / max(queued, 1) for k, v in cpu.items()}
    out["queued_bytes"] = sorted(held)[len(held) // 2]
    return rounds, out


def fill(svc, sink, per_job, records):
    """Queue about `records` records in jobs of `per_job` through the API:
    wrk, 64 connections, each thread stopping at its share, and stopped
    (SIGINT) once the queue holds them all."""
    jobs = records // per_job
    w = subprocess.Popen(wrk_args(svc.port, "/v1/sinks/%s/records" % sink, 600, "fill.lua",
                                  CONNECTIONS, 2),
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env=dict(os.environ, SW_BENCH_RECORDS=str(per_job),
                                  SW_BENCH_JOBS=str(jobs // 2)))
    try:
        harness.wait_for(lambda: svc.queue()["queued_jobs"] >= jobs, 600, "the fill",
                         step=0.1)
    finally:
        w.send_signal(signal.SIGINT)
        out = w.communicate(timeout=60)[0]
    return wrk_parse(out)["errors"]


def drain(svc, sink, per_job):
    table = "orders" if sink == "orders" else "orders_up"
    svc.sql("TRUNCATE %s" % table)
    errors = fill(svc, sink, per_job, DRAIN_RECORDS)
    q = svc.queue()
    records = q["depth"]
    d = svc.start_flusher("bench-%s-%d" % (sink, per_job))
    meter = CpuMeter({"flusher": d.proc.pid, "redis": svc.redis.proc.pid})
    meter.start()
    # Timed from when the flusher is ready (connected, sinks checked,
    # its id claimed): a start costs ~0.1 s once, not per record.
    harness.wait_for(lambda: "flusher started" in d.output(), 30, "flusher start", step=0.002)
    t0 = time.monotonic()
    harness.wait_for(lambda: drained(svc), 900, "drain", step=0.02)
    elapsed = time.monotonic() - t0
    cpu = meter.stop()
    d.terminate()
    rows = int(svc.sql("SELECT count(*) FROM %s" % table)[0][0])
    dead = svc.queue()["dead_jobs"]
    svc.redis.cli("FLUSHALL")
    return {"records": records, "rows": rows, "seconds": elapsed, "rate": rows / elapsed,
            "dead": dead, "errors": errors,
            "cpu": {k: 1e5 * v / max(rows, 1) for k, v in cpu.items()}}


def copy_file(svc, records):
    path = os.path.join(svc.tmp, "rows-%d.copy" % records)
    if not os.path.exists(path):
        with open(path, "w") as f:
            for i in range(records):
                f.write('%d\tcustomer-%d\t%d.50\t{"src": "bench"}\t2026-01-31T12:00:00Z\n'
                        % (i, i % 1000, i % 977))
    return path


def psql_timed(svc, script):
    t0 = time.monotonic()
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", svc.db], input=script,
                   text=True, check=True, timeout=900)
    return time.monotonic() - t0


def ref_copy(svc, records):
    svc.sql("TRUNCATE orders_copy")
    secs = psql_timed(svc, "\\copy orders_copy FROM '%s'\n" % copy_file(svc, records))
    rows = int(svc.sql("SELECT count(*) FROM orders_copy")[0][0])
    return {"records": rows, "seconds": secs, "rate": rows / secs}


def ref_upsert(svc, records):
    """What a hand-written bulk upsert of the same rows costs: COPY into a
    staging table, then one INSERT ... ON CONFLICT DO UPDATE."""
    svc.sql("TRUNCATE orders_up_ref")
    secs = psql_timed(svc, (
        "BEGIN;\n"
        "CREATE TEMP TABLE stage (LIKE orders_up_ref) ON COMMIT DROP;\n"
        "\\copy stage FROM '%s'\n"
        "INSERT INTO orders_up_ref SELECT * FROM stage ON CONFLICT (id) DO UPDATE SET "
        "customer = EXCLUDED.customer, total = EXCLUDED.total, tags = EXCLUDED.tags, "
        "placed_at = EXCLUDED.placed_at;\n"
        "COMMIT;\n") % copy_file(svc, records))
    rows = int(svc.sql("SELECT count(*) FROM orders_up_ref")[0][0])
    return {"records": rows, "seconds": secs, "rate": rows / secs}


def sustained(svc, fid):
    """Load with the flusher running; then wait for the last row."""
    svc.sql("TRUNCATE orders")
    svc.redis.cli("FLUSHALL")
    d = svc.start_flusher(fid)
    harness.wait_for(lambda: "flusher started" in d.output(), 30, "flusher start")
    base = redis_used(svc)
    meter = CpuMeter({"server": svc.server.proc.pid, "redis": svc.redis.proc.pid,
                      "flusher": d.proc.pid})
    meter.start()
    t0 = time.monotonic()
    load = wrk(svc.port, seconds=SUSTAIN)
    loaded = time.monotonic() - t0
    harness.wait_for(lambda: drained(svc), 900, "the sustained load to drain", step=0.02)
    elapsed = time.monotonic() - t0
    cpu = meter.stop()
    rows = int(svc.sql("SELECT count(*) FROM orders")[0][0])
    rss = {"server": memory.rss_mb(svc.server.proc.pid), "flusher": memory.rss_mb(d.proc.pid)}
    time.sleep(0.5)
    per_job = (redis_used(svc) - base) / max(rows, 1)
    d.terminate()
    return {"rows": rows, "load_s": loaded, "tail_s": elapsed - loaded, "rate": rows / elapsed,
            "errors": load["errors"], "rps": load["rps"],
            "cpu": {k: 1e5 * v / max(rows, 1) for k, v in cpu.items()}, "rss": rss,
            "redis_bytes_per_job": per_job, "dead": svc.queue()["dead_jobs"]}


def latency(svc, rate):
    """A fixed-rate load of `rate` jobs/s; each job's enqueue -> commit
    from its status."""
    svc.redis.cli("FLUSHALL")
    d = svc.start_flusher("bench-latency")
    harness.wait_for(lambda: "flusher started" in d.output(), 30, "flusher start")
    ids = os.path.join(svc.tmp, "ids")
    # Each connection sends, waits for the answer, then pauses 2 ms (wrk
    # pauses in whole milliseconds): the rate is set by the number of
    # connections, which a short first run calibrates.
    pause = 2
    conns = max(2, int(round(rate * pause / 1000.0)))
    probe = wrk(svc.port, seconds=2, script="fill.lua", connections=conns,
                env={"SW_BENCH_PAUSE_MS": str(pause)})
    conns = max(2, min(512, int(round(conns * rate / max(probe["rps"], 1.0)))))
    harness.wait_for(lambda: drained(svc), 300, "the probe load to drain", step=0.05)
    load = wrk(svc.port, seconds=LATENCY_SECONDS, script="fill.lua", connections=conns,
               env={"SW_BENCH_PAUSE_MS": str(pause), "SW_BENCH_IDS": ids})
    harness.wait_for(lambda: drained(svc), 300, "the paced load to drain", step=0.05)
    got = []
    for path in glob.glob(ids + ".*"):
        with open(path) as f:
            got += [line.strip() for line in f if line.strip()]
    sample = got[::max(1, len(got) // 5000)]
    lat, missing = [], 0
    keys = ["%s" % i for i in sample]
    for i in keys:
        st, j = svc.job(i)
        if st != 200 or j.get("status") != "committed":
            missing += 1
            continue
        lat.append(iso_ms(j["committed_at"]) - iso_ms(j["enqueued_at"]))
    d.terminate()
    lat.sort()

    def pct(p):
        return lat[min(len(lat) - 1, int(p * len(lat)))] if lat else float("nan")
    return {"rate": load["rps"], "target": rate, "conns": conns, "jobs": len(got), "sampled": len(sample),
            "missing": missing, "errors": load["errors"], "p50": pct(0.50), "p99": pct(0.99)}


def iso_ms(s):
    # 2026-12-06T04:41:43.123Z
    t = time.strptime(s[:19], "%Y-%m-%dT%H:%M:%S")
    return (time.mktime(t) - time.timezone) * 1000.0 + float(s[19:-1] or 0) * 1000.0


def answers(svc, port):
    try:
        return svc.request("GET", "/healthz", port=port)[0] == 200
    except OSError:
        return False


def service(name, shards=0):
    svc = harness.Service(name, SINKS, TABLES, flusher=False,
                          extra={"server": {"threads": OUR_THREADS, "worker_nice": "10"},
                                 "redis": {"shards": str(shards)},
                                 "flusher": {"batch_max_records": BATCH_MAX_RECORDS,
                                             "flush_interval_ms": str(FLUSH_INTERVAL_MS)}})
    svc.redis.cli("CONFIG", "SET", "appendonly", "yes")
    svc.redis.cli("CONFIG", "SET", "appendfsync", "everysec")
    return svc


def baseline_sustained():
    saved = harness.BIN
    harness.BIN = BASELINE_BIN
    svc = service("benchbase")
    try:
        return sustained(svc, "bench-base")
    finally:
        svc.close()
        svc.cleanup()
        harness.BIN = saved


def main():
    harness.require_postgres()
    results = {}
    base = baseline_sustained() if BASELINE_BIN else None
    svc = service("bench")
    bare = None
    try:
        port = harness.free_port()
        bare = subprocess.Popen([os.path.join(harness.BIN, "bench-bare-server"),
                                 "127.0.0.1:%d" % port, THREADS, "10"])
        harness.wait_for(lambda: subprocess.run(["curl", "-sf", "-o", "/dev/null", "-X", "POST",
                                                 "http://127.0.0.1:%d/" % port]).returncode == 0,
                         10, "bare server")
        results["ingest"], results["ingest_cpu"] = ingest(svc, port)
        bare.terminate()
        bare.wait(timeout=10)
        bare = None
        svc.redis.cli("FLUSHALL")
        results["drain"] = {}
        for sink in ("orders", "orders_up"):
            for per_job in (1, 10, 100):
                results["drain"][(sink, per_job)] = drain(svc, sink, per_job)
        results["copy"] = ref_copy(svc, DRAIN_RECORDS)
        results["upsert_ref"] = ref_upsert(svc, DRAIN_RECORDS)
        results["sustained"] = sustained(svc, "bench-sustained")
        results["latency"] = latency(svc, results["sustained"]["rate"] / 2)
    finally:
        if bare:
            bare.kill()
        svc.close()
        svc.cleanup()
    report(results, base)


def report(r, base):
    print()
    print("machine: %d cores; one record per POST; wrk -t2 -c%d; Release build; "
          "flush_interval_ms %d, batch_max_records %s; server threads %s" % (
              os.cpu_count(), CONNECTIONS, FLUSH_INTERVAL_MS, BATCH_MAX_RECORDS, OUR_THREADS))
    print()
    print("%-36s %10s %9s %9s %10s" % ("ingest (flusher stopped)", "req/s", "p50 ms", "p99 ms",
                                       "non-2xx+err"))
    ratios = []
    for n, (ceiling, ours) in enumerate(r["ingest"], 1):
        print("%-36s %10.0f %9.2f %9.2f %10d" % ("round %d: bare civetweb handler" % n,
                                                 ceiling["rps"], ceiling["p50"], ceiling["p99"],
                                                 ceiling["errors"]))
        print("%-36s %10.0f %9.2f %9.2f %10d" % ("round %d: spillway-server POST" % n, ours["rps"],
                                                 ours["p50"], ours["p99"], ours["errors"]))
        ratios.append(ours["rps"] / ceiling["rps"])
    med = sorted(ratios)[len(ratios) // 2]
    print("ingest: %s of the bare handler per round, median %.2fx; errors: %d"
          % (", ".join("%.2fx" % x for x in ratios), med,
             sum(o["errors"] for _, o in r["ingest"])))
    print("ingest CPU per 100k records: server %.2f s, redis-server %.2f s; Redis bytes per "
          "queued one-record job (envelope and status): %.0f"
          % (r["ingest_cpu"]["server"], r["ingest_cpu"]["redis"], r["ingest_cpu"]["queued_bytes"]))
    print()
    print("%-36s %9s %8s %10s %5s %6s %9s %9s %9s" % (
        "drain", "records", "seconds", "records/s", "dead", "errors", "ratio", "cpu:flsh",
        "redis/pg"))
    refs = {"orders": r["copy"], "orders_up": r["upsert_ref"]}
    for (sink, per_job), d in r["drain"].items():
        mode = "insert" if sink == "orders" else "upsert"
        print("%-36s %9d %8.2f %10.0f %5d %6d %8.2fx %9.2f %4.2f/%4.2f" % (
            "%s, %d-record jobs" % (mode, per_job), d["rows"], d["seconds"], d["rate"], d["dead"],
            d["errors"], d["rate"] / refs[sink]["rate"], d["cpu"]["flusher"], d["cpu"]["redis"],
            d["cpu"]["postgres"]))
    print("%-36s %9d %8.2f %10.0f" % ("psql \\copy of the same rows", r["copy"]["records"],
                                      r["copy"]["seconds"], r["copy"]["rate"]))
    print("%-36s %9d %8.2f %10.0f" % ("COPY to staging + INSERT ON CONFLICT",
                                      r["upsert_ref"]["records"], r["upsert_ref"]["seconds"],
                                      r["upsert_ref"]["rate"]))
    print("(ratio: insert against psql \\copy, upsert against the hand-written upsert; cpu: "
          "seconds per 100k records)")
    print()
    s = r["sustained"]
    print("sustained, %d s of load with the flusher running: %d rows in %.1f s + %.1f s until the "
          "last landed = %.0f rows/s; errors: %d; dead: %d (wrk %.0f req/s)"
          % (SUSTAIN, s["rows"], s["load_s"], s["tail_s"], s["rate"], s["errors"], s["dead"],
             s["rps"]))
    if base:
        print("  baseline build, same load in this run: %.0f rows/s (errors: %d) -> %.2fx"
              % (base["rate"], base["errors"], s["rate"] / base["rate"]))
        print("  baseline Redis bytes per retained finished job: %.0f"
              % base["redis_bytes_per_job"])
    print("  CPU seconds per 100k records: server %.2f, redis-server %.2f, flusher %.2f, "
          "postgres %.2f" % (s["cpu"]["server"], s["cpu"]["redis"], s["cpu"]["flusher"],
                             s["cpu"]["postgres"]))
    print("  RSS at the end: spillway-server %.1f MiB, spillway-flusher %.1f MiB"
          % (s["rss"]["server"], s["rss"]["flusher"]))
    print("  Redis bytes per retained finished job: %.0f" % s["redis_bytes_per_job"])
    lat = r["latency"]
    print()
    print("latency at half the sustained rate (target %.0f jobs/s, sent %.0f req/s from %d "
          "paced connections, %d jobs, errors: %d): enqueue -> commit p50 %.0f ms, p99 %.0f ms "
          "over %d sampled jobs (%d not committed); flush_interval_ms %d"
          % (lat["target"], lat["rate"], lat["conns"], lat["jobs"], lat["errors"], lat["p50"],
             lat["p99"], lat["sampled"], lat["missing"], FLUSH_INTERVAL_MS))
    print()
    print("targets:")
    d1 = r["drain"][("orders", 1)]["rate"] / r["copy"]["rate"]
    d100 = r["drain"][("orders", 100)]["rate"] / r["copy"]["rate"]
    up = min(r["drain"][("orders_up", n)]["rate"] for n in (1, 10, 100)) / r["upsert_ref"]["rate"]
    rows = [
        ("drain 1-record jobs >= 0.4x psql \\copy", "%.2fx" % d1, d1 >= 0.4),
        ("drain 100-record jobs >= 0.7x psql \\copy", "%.2fx" % d100, d100 >= 0.7),
        ("upsert (worst of 1/10/100) >= 0.8x hand-written", "%.2fx" % up, up >= 0.8),
        ("ingest >= 0.6x bare handler, 0 errors", "%.2fx, %d errors" % (
            med, sum(o["errors"] for _, o in r["ingest"])),
         med >= 0.6 and sum(o["errors"] for _, o in r["ingest"]) == 0),
        ("enqueue->commit p99 <= flush_interval_ms + 100", "%.0f ms" % lat["p99"],
         lat["p99"] <= FLUSH_INTERVAL_MS + 100 and lat["missing"] == 0),
        ("RSS of each daemon <= 64 MiB", "%.1f / %.1f MiB" % (s["rss"]["server"],
                                                            s["rss"]["flusher"]),
         max(s["rss"].values()) <= 64),
        ("Redis bytes per retained finished job <= 100", "%.0f" % s["redis_bytes_per_job"],
         s["redis_bytes_per_job"] <= 100),
    ]
    if base:
        rows.append(("sustained >= 1.5x baseline, 0 errors", "%.2fx, %d errors" % (
            s["rate"] / base["rate"], s["errors"]), s["rate"] / base["rate"] >= 1.5 and
            s["errors"] == 0))
    for what, got, ok in rows:
        print("  %-50s %-22s %s" % (what, got, "met" if ok else "MISSED"))


if __name__ == "__main__":
    main()
