#!/usr/bin/env python3
"""What the keyed path costs: prints figures, asserts nothing. One run,
one flusher, a Release build (SW_BIN), a throwaway PostgreSQL from
pg_virtualenv:

  SW_BIN=build-release/bin pg_virtualenv -- python3 tests/bench/keyed.py

The same records (JOBS jobs of PER records, keys drawn at random from half
as many ids, so batches update as well as insert) are queued while a
sink's flushing is paused, then drained: first into a plain upsert sink
(deletes = off: one INSERT .. ON CONFLICT per batch), then into a merge
sink with a version_column (half the records name only some fields), then
into the upsert sink again (its rows now exist). Drain rate = records /
time from resume until every job is committed; the ratio is keyed over
the better upsert drain."""

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

[sink.mg]
table = public.mg
mode = merge
key = id
version_column = ver
columns = id bigint not null, a text, b integer
"""
TABLES = """
CREATE TABLE up (id bigint PRIMARY KEY, a text, b integer);
CREATE TABLE mg (id bigint PRIMARY KEY, a text, b integer, ver bigint);
"""
JOBS, PER = int(os.environ.get("JOBS", "400")), int(os.environ.get("PER", "250"))


def drain(svc, sink, partial):
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
    try:
        up = drain(svc, "up", False)
        mg = drain(svc, "mg", True)
        up2 = drain(svc, "up", False)
    finally:
        svc.close()
    print("records %d per drain, 0 errors (every job committed)" % (JOBS * PER))
    print("upsert, one INSERT:        %8.0f rows/s (new rows), %.0f rows/s (rows exist)"
          % (up, up2))
    print("merge + version_column:    %8.0f rows/s" % mg)
    print("keyed / better upsert:     %8.2f" % (mg / max(up, up2)))


if __name__ == "__main__":
    main()
