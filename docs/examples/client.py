#!/usr/bin/env python3
"""A Spillway client in Python's standard library: post records with an
Idempotency-Key, retry 429/503 after Retry-After (the same key makes a
repeat harmless), then wait for the commit with GET ?wait=N.

    python3 client.py http://127.0.0.1:8080 orders '[{"id": 1, "total": 9.5}]'

Prints the job's final status as JSON; exits 0 when committed, 1 when
failed, 2 when it gave up. SPILLWAY_TOKEN, if set, is sent as a bearer
token; SPILLWAY_MAX_RETRY_WAIT caps one Retry-After (default 30 s)."""

import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid


def call(method, url, body=None, headers=None, timeout=40):
    """(status, headers, parsed JSON body) of one request."""
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    token = os.environ.get("SPILLWAY_TOKEN")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return resp.status, resp.headers, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, e.headers, json.loads(e.read() or b"{}")


def post(base, sink, records, attempts=10):
    """Queue the records as one job: its id. The Idempotency-Key is made
    once, so a retry after a lost answer or a 503 cannot queue twice."""
    key = str(uuid.uuid4())
    cap = float(os.environ.get("SPILLWAY_MAX_RETRY_WAIT", "30"))
    for _ in range(attempts):
        status, headers, body = call("POST", "%s/v1/sinks/%s/records" % (base, sink),
                                     json.dumps(records).encode(),
                                     {"Content-Type": "application/json",
                                      "Idempotency-Key": key})
        if status in (200, 202):
            return body["job_id"]
        if status in (429, 503):
            time.sleep(min(float(headers.get("Retry-After", "1")), cap))
            continue
        # Anything else will not get better by retrying: say what to fix.
        raise SystemExit("refused (%d): %s" % (status, body.get("detail", body)))
    raise SystemExit("gave up after %d attempts" % attempts)


def wait(base, job_id, deadline_s=120):
    """The job's status once it is committed or failed."""
    end = time.time() + deadline_s
    while time.time() < end:
        status, headers, body = call("GET", "%s/v1/jobs/%s?wait=10" % (base, job_id))
        if status == 200 and body["status"] != "queued":
            return body
        if status in (429, 503):
            time.sleep(float(headers.get("Retry-After", "1")))
        elif status != 200:
            raise SystemExit("cannot read the job (%d): %s" % (status, body.get("detail")))
    return None


def main():
    base, sink, records = sys.argv[1].rstrip("/"), sys.argv[2], json.loads(sys.argv[3])
    final = wait(base, post(base, sink, records))
    print(json.dumps(final))
    sys.exit(2 if final is None else 0 if final["status"] == "committed" else 1)


if __name__ == "__main__":
    main()
