#!/usr/bin/env python3
"""What the keyed path costs: prints figures, asserts nothing. One run,
one flusher, a Release build (SW_BIN), a throwaway PostgreSQL from
pg_virtualenv:

  SW_BIN=build-release/bin pg_virtualenv -- python3 tests/bench/keyed.py

The same records (JOBS jobs of PER records, keys drawn at random from half
as many ids, so batches update as well as insert) are queued while a
sink's flushing is paused, then drained into an empty table: a plain
upsert sink (deletes = off: one INSERT .. ON CONFLICT per batch), one that
takes deletes (the default) with none queued, and a merge
sink with a version_column (half the records name one field less), each
three times (A B C C B A A B C), the median drain counting. Drain rate = records /
time from resume until every job is committed."""

import os
import random
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "integration"))
import harness  # noqa: E402

SINKS = """
[sink.up]
table = public.up
mode = upsert
key = id
deletes = off
columns = id bigint not null, a text, b integer

[sink.ud]
table = public.ud
mode = upsert
key = id
columns = id bigint not null, a text, b integer

[sink.mg]
table = public.mg
mode = merge
key = id
version_column = ver
columns = id bigint not null, a text, b integer
"""
TABLES = """
CREATE TABLE up (id bigint PRIMARY KEY, a text, b integer);
CREATE TABLE ud (id bigint PRIMARY KEY, a text, b integer);
CREATE TABLE mg (id bigint PRIMARY KEY, a text, b integer, ver bigint);
"""
JOBS, PER = int(os.environ.get("JOBS", "400")), int(os.environ.get("PER", "250"))


def drain(svc, sink, partial):
    svc.sql("TRUNCATE %s" % sink)
    svc.ctl("sink", "pause", sink, "--flush")
    time.sleep(1.5)
    rnd = random.Random(7)
    ids = []
    for j in range(JOBS):
        recs = []
        for r in range(PER):
            rec = {"id": rnd.randrange(JOBS * PER // 2), "a": "x%d" % j, "b": r}
            if partial and r % 2:
                del rec["a"]
            recs.append(rec)
        ids.append(svc.post_ok(sink, recs))
    t = time.time()
    svc.ctl("sink", "resume", sink, "--flush")
    svc.wait_jobs(ids, timeout=600)
    return JOBS * PER / (time.time() - t)


def main():
    harness.require_postgres()
    svc = harness.Service("kbench", SINKS, TABLES)
    runs = {}
    try:
        # Each sink three times, in the order A B C C B A A B C, into an
        # empty table: the median counts (this machine's drains of one
        # sink vary by half and more).
        for sink in ("up", "ud", "mg", "mg", "ud", "up", "up", "ud", "mg"):
            runs.setdefault(sink, []).append(drain(svc, sink, sink == "mg"))
    finally:
        svc.close()
    up, ud, mg = (sorted(runs[k])[1] for k in ("up", "ud", "mg"))
    for k in ("up", "ud", "mg"):
        print("%s drains: %s rows/s" % (k, ", ".join("%.0f" % r for r in runs[k])))
    print("records %d per drain, 0 errors (every job committed)" % (JOBS * PER))
    print("upsert, deletes = off:     %8.0f rows/s (one INSERT .. ON CONFLICT per batch)" % up)
    print("upsert taking deletes:     %8.0f rows/s (no delete queued: the same INSERT)" % ud)
    print("merge + version_column:    %8.0f rows/s (keyed path)" % mg)
    print("deletes on / off:          %8.2f" % (ud / up))
    print("keyed / upsert:            %8.2f" % (mg / up))


if __name__ == "__main__":
    main()
