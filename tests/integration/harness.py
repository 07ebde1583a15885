"""Black-box harness: a real redis-server and a real PostgreSQL database
(from the PG* variables pg_virtualenv sets), the daemons as built, and a
plain HTTP client. Every process it starts it stops by pid; nothing but
loopback is contacted."""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import unittest

BIN = os.environ.get("SW_BIN") or os.path.join(
    os.path.dirname(__file__), "..", "..", "build", "bin")
SOURCE = os.environ.get("SW_SOURCE") or os.path.join(os.path.dirname(__file__), "..", "..")
# SW_TEST_SHARDS=N runs every Service with [redis] shards = N (keys.h): the
# whole suite must pass either way.
SHARDS = int(os.environ.get("SW_TEST_SHARDS", "0"))


# Sinks the tests share: an insert-mode sink with no unique key (so a
# duplicate would show), and one whose CHECK constraint makes poison jobs.
EVENTS_SINK = """
[sink.events]
table = public.events
columns = id bigint not null, payload text not null
"""
EVENTS_TABLE = "CREATE TABLE events (id bigint NOT NULL, payload text NOT NULL);"
CHECKED_SINK = """
[sink.checked]
table = public.checked
columns = id bigint not null, qty integer not null
"""
CHECKED_TABLE = "CREATE TABLE checked (id bigint PRIMARY KEY, qty integer NOT NULL CHECK (qty > 0));"


def require_postgres():
    """Exit 77 (ctest: skipped) unless a PostgreSQL was provided."""
    if not os.environ.get("PGHOST") and not os.environ.get("PGPORT"):
        print("skipped: no PostgreSQL (run under pg_virtualenv; see README)")
        sys.exit(77)


def glob_escape(s):
    """`s` as a literal in a Redis glob pattern."""
    return "".join("\\" + c if c in "*?[]\\" else c for c in s)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(pred, timeout, what, step=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = pred()
        if value:
            return value
        time.sleep(step)
    raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))


def read_until_close(sock, timeout=10):
    """Everything the peer sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return data
        data += chunk


def psql(sql, db="postgres"):
    """Run SQL; return rows as lists of strings."""
    out = subprocess.run(
        ["psql", "-X", "-q", "-A", "-t", "-F", "\t", "-v", "ON_ERROR_STOP=1", "-d", db, "-c", sql],
        check=True, capture_output=True, text=True, timeout=60).stdout
    return [line.split("\t") for line in out.splitlines() if line != ""]


class TableLock:
    """Hold an ACCESS EXCLUSIVE lock on `table` in a session of our own
    (for at most `seconds`), as a context manager; on exit the session's
    backend is ended, so the lock goes at once."""

    def __init__(self, db, table, seconds=60):
        self.db, self.name = db, "sw-lock-%d-%d" % (os.getpid(), id(self))
        env = dict(os.environ, PGAPPNAME=self.name)
        self.proc = subprocess.Popen(
            ["psql", "-X", "-q", "-d", db, "-c",
             "BEGIN; LOCK TABLE %s IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(%d); COMMIT;"
             % (table, seconds)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: psql("SELECT count(*) FROM pg_locks l JOIN pg_stat_activity a "
                              "USING (pid) WHERE a.application_name = '%s' AND l.mode = "
                              "'AccessExclusiveLock' AND l.granted" % self.name, db)[0][0] != "0",
                 30, "the table lock")

    def release(self):
        psql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
             "WHERE application_name = '%s'" % self.name, self.db)
        self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()


def pg_cluster(action):
    """Start or stop (immediately) the pg_virtualenv cluster."""
    version = os.environ.get("PGVERSION", "15")
    args = ["pg_ctlcluster"]
    if action == "stop":
        args += ["--mode", "immediate"]
    subprocess.run(args + [version, "regress", action], check=True, timeout=60,
                   capture_output=True)


class Redis:
    """A redis-server of our own; with `aof`, every write is fsynced to an
    append-only file before Redis answers, and a restart reloads it."""

    def __init__(self, workdir, aof=False, args=()):
        self.port = free_port()
        self.dir = workdir
        self.aof = aof
        self.args = list(args)
        self.proc = None
        self.start()

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            return
        self.log = open(os.path.join(self.dir, "redis.log"), "ab")
        persistence = (["--appendonly", "yes", "--appendfsync", "always"] if self.aof
                       else ["--appendonly", "no"])
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--dir", self.dir, "--maxmemory-policy", "noeviction"] + persistence + self.args,
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: self.ping(), 30, "redis-server to answer PING")

    def ping(self):
        try:
            return self.cli("PING") == "PONG"
        except Exception:
            return False

    def cli(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip().strip('"')

    def raw(self, *args):
        out = subprocess.run(["redis-cli", "-p", str(self.port)] + list(args),
                             capture_output=True, text=True, timeout=10)
        return out.stdout.strip()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


class Nginx:
    """nginx in front of a server on `upstream_port`, configured with
    deploy/nginx/spillway.conf as shipped but for its two addresses;
    stopped by its own pid."""

    def __init__(self, workdir, upstream_port):
        self.port = free_port()
        self.dir = os.path.join(workdir, "nginx")
        os.makedirs(self.dir, exist_ok=True)
        # The workers drop root: they need to reach their temp dirs.
        os.chmod(workdir, 0o755)
        os.chmod(self.dir, 0o777)
        with open(os.path.join(SOURCE, "deploy", "nginx", "spillway.conf")) as f:
            site = f.read()
        for old, new in (("server 127.0.0.1:8080;", "server 127.0.0.1:%d;" % upstream_port),
                         ("listen 127.0.0.1:8443;", "listen 127.0.0.1:%d;" % self.port)):
            assert site.count(old) == 1, "deploy/nginx/spillway.conf lacks %r" % old
            site = site.replace(old, new)
        with open(os.path.join(self.dir, "spillway.conf"), "w") as f:
            f.write(site)
        d = self.dir
        main = os.path.join(d, "nginx.conf")
        with open(main, "w") as f:
            f.write("daemon off;\nworker_processes 1;\npid %s/nginx.pid;\n"
                    "error_log %s/error.log info;\nevents { worker_connections 8192; }\n"
                    "http {\n  access_log %s/access.log;\n"
                    "  client_body_temp_path %s/body;\n  proxy_temp_path %s/proxy;\n"
                    "  fastcgi_temp_path %s/fastcgi;\n  uwsgi_temp_path %s/uwsgi;\n"
                    "  scgi_temp_path %s/scgi;\n  include %s/spillway.conf;\n}\n"
                    % ((d,) * 9))
        self.log = open(os.path.join(d, "stderr.log"), "ab")
        self.proc = subprocess.Popen(["/usr/sbin/nginx", "-c", main, "-p", d, "-e",
                                      os.path.join(d, "error.log")],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(self._up, 15, "nginx to listen")

    def _up(self):
        if self.proc.poll() is not None:
            raise AssertionError("nginx exited: " + open(os.path.join(self.dir, "error.log")).read())
        try:
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)


class Daemon:
    """A spillway daemon: started with a config, stopped by its own pid."""

    def __init__(self, name, args, env, logpath):
        self.name = name
        self.log = open(logpath, "ab")
        self.logpath = logpath
        self.proc = subprocess.Popen(args, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc.poll() is None

    def terminate(self, timeout=60):
        """SIGTERM and expect a clean exit 0 (also proves no leak under ASan)."""
        if not self.alive():
            return self.proc.returncode
        # A daemon signalled before it installed its handlers just dies;
        # both log "... started" after installing them.
        deadline = time.monotonic() + 15
        while self.alive() and "started" not in self.output() and time.monotonic() < deadline:
            time.sleep(0.05)
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout=timeout)

    def kill(self):
        if self.alive():
            self.proc.kill()
            self.proc.wait(timeout=10)

    def output(self):
        with open(self.logpath, "rb") as f:
            return f.read().decode(errors="replace")


class Service:
    """Redis + a fresh database + config + server (+ flusher)."""

    def __init__(self, name, sinks, tables_sql, extra=None, flusher=True, redis_aof=False,
                 proxies=False, redis=None):
        self.tmp = tempfile.mkdtemp(prefix="sw-%s-" % name)
        # `redis`: one the test made (a master with replicas, say).
        self.redis = redis or Redis(self.tmp, aof=redis_aof)
        # With `proxies`, the daemons reach Redis and PostgreSQL through
        # fault proxies (faultproxy.py) the test can cut, stall or drain.
        self.redis_proxy = self.pg_proxy = None
        if proxies:
            import faultproxy
            self.redis_proxy = faultproxy.FaultProxy(self.redis.port)
            self.pg_proxy = faultproxy.FaultProxy(int(os.environ.get("PGPORT", "5432")))
        self.db = "sw_%s_%d" % (name, os.getpid())
        psql("DROP DATABASE IF EXISTS %s" % self.db)
        psql("CREATE DATABASE %s" % self.db)
        psql(tables_sql, self.db)
        self.port = free_port()
        self.prefix = "t%d" % os.getpid()
        extra = extra or {}
        sections = {
            "server": {"listen": "127.0.0.1:%d" % self.port, "threads": "8"},
            "redis": {"host": "127.0.0.1",
                      "port": str(self.redis_proxy.port if proxies else self.redis.port),
                      "prefix": self.prefix, "timeout_ms": "500"},
            "postgres": {"conninfo": "dbname=%s connect_timeout=2%s" % (
                self.db, " host=127.0.0.1 port=%d" % self.pg_proxy.port if proxies else "")},
            "flusher": {"batch_max_records": "5000", "flush_interval_ms": "50",
                        "retry_max_ms": "1000"},
        }
        if SHARDS:
            sections["redis"]["shards"] = str(SHARDS)
        for sec, kv in extra.items():
            sections.setdefault(sec, {}).update(kv)
        self.shards = int(sections["redis"].get("shards", "0"))
        # With an admin listener, the probes answer there only.
        admin = sections["server"].get("admin_listen")
        self.admin_port = int(admin.rsplit(":", 1)[1]) if admin else None
        self.config = os.path.join(self.tmp, "spillway.ini")
        with open(self.config, "w") as f:
            for sec, kv in sections.items():
                f.write("[%s]\n" % sec)
                for k, v in kv.items():
                    f.write("%s = %s\n" % (k, v))
            f.write(sinks)
        # No lame-duck phase: tests stop servers often (test_shutdown tests
        # the phase itself). From the environment, so that an older build
        # (the benchmark's baseline), which knows no such key, still starts.
        self.env = dict(os.environ, SPILLWAY_SERVER_SHUTDOWN_GRACE_MS="0")
        self.env.setdefault("ASAN_OPTIONS", "abort_on_error=0:detect_leaks=1")
        self.server = None
        self.flushers = {}
        try:
            self.ctl("migrate")
            self.start_server()
            if flusher:
                self.start_flusher("f1")
        except BaseException:
            # Nobody will call close() on a half-made service: stop what
            # started here, by pid, before failing.
            self.close()
            raise

    # processes
    def ctl(self, *args, check=True):
        out = subprocess.run([os.path.join(BIN, "spillwayctl"), "--config", self.config] +
                             list(args), env=self.env, capture_output=True, text=True,
                             timeout=60)
        if check and out.returncode != 0:
            raise AssertionError("spillwayctl %s failed (%d): %s%s" %
                                 (args, out.returncode, out.stdout, out.stderr))
        return out

    def start_server(self, **env_extra):
        self.server = Daemon("server", [os.path.join(BIN, "spillway-server"), "--config",
                                        self.config], dict(self.env, **env_extra),
                             os.path.join(self.tmp, "server.log"))
        wait_for(lambda: self._healthy(), 15, "spillway-server /healthz")

    def _healthy(self):
        if not self.server.alive():
            raise AssertionError("server exited: " + self.server.output())
        try:
            return self.request("GET", "/healthz", port=self.admin_port)[0] == 200
        except OSError:
            return False

    def start_flusher(self, fid, **env_extra):
        env = dict(self.env, SPILLWAY_FLUSHER_ID=fid, **env_extra)
        d = Daemon("flusher-" + fid, [os.path.join(BIN, "spillway-flusher"), "--config",
                                      self.config], env,
                   os.path.join(self.tmp, "flusher-%s.log" % fid))
        self.flushers[fid] = d
        return d

    def close(self):
        codes = {}
        for fid, d in self.flushers.items():
            codes["flusher-" + fid] = d.terminate() if d.alive() else "not running"
        if self.server:
            codes["server"] = self.server.terminate() if self.server.alive() else "not running"
        self.redis.stop()
        for p in (self.redis_proxy, self.pg_proxy):
            if p:
                p.close()
        try:
            psql("DROP DATABASE IF EXISTS %s WITH (FORCE)" % self.db)
        except Exception:
            pass
        return codes

    def log_tails(self, size=3000):
        """The last `size` characters of each daemon's log, by file name."""
        out = {}
        for name in sorted(os.listdir(self.tmp)):
            if name.endswith(".log") and name != "redis.log":
                with open(os.path.join(self.tmp, name), "rb") as f:
                    f.seek(max(0, os.path.getsize(f.name) - size))
                    out[name] = f.read().decode(errors="replace")
        return out

    def sanitizer_reports(self):
        """Names of daemon logs holding an ASan/UBSan/LSan report: the suite
        runs the daemons sanitized and allows none, even from a process a
        test killed or whose exit code it did not check."""
        found = []
        for name in sorted(os.listdir(self.tmp)):
            if name.endswith(".log") and name != "redis.log":
                with open(os.path.join(self.tmp, name), errors="replace") as f:
                    text = f.read()
                if ("ERROR: AddressSanitizer" in text or "ERROR: LeakSanitizer" in text or
                        "runtime error:" in text):
                    found.append(name)
        return found

    def cleanup(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def finish(self):
        """Stop everything; fail (keeping the logs) unless every daemon still
        running exited 0 and no log holds a sanitizer report."""
        codes = self.close()
        bad = {k: v for k, v in codes.items() if v not in (0, "not running")}
        for name in self.sanitizer_reports():
            bad[name[:-4]] = "sanitizer report"
        if bad:
            logs = "".join("\n--- %s.log ---\n%s" % (k, open(os.path.join(self.tmp, k + ".log"),
                                                                errors="replace").read()[-4000:])
                           for k in bad if os.path.exists(os.path.join(self.tmp, k + ".log")))
            raise AssertionError("daemons did not exit cleanly: %s (logs in %s)%s" %
                                 (bad, self.tmp, logs))
        self.cleanup()

    # HTTP
    # With an ssl.SSLContext here, the API port is spoken to over TLS.
    ssl_context = None

    def request(self, method, path, body=None, headers=None, timeout=10, port=None):
        if self.ssl_context is not None and port in (None, self.port):
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=timeout,
                                               context=self.ssl_context)
        else:
            conn = http.client.HTTPConnection("127.0.0.1", port or self.port, timeout=timeout)
        try:
            if isinstance(body, str):
                body = body.encode()
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def post(self, sink, records, ctype="application/json", headers=None):
        if isinstance(records, (list, dict)):
            body = json.dumps(records)
        else:
            body = records
        h = {"Content-Type": ctype}
        h.update(headers or {})
        return self.request("POST", "/v1/sinks/%s/records" % sink, body, h)

    def post_ok(self, sink, records, ctype="application/json"):
        status, headers, body = self.post(sink, records, ctype)
        if status != 202:
            raise AssertionError("POST got %d: %s" % (status, body))
        return json.loads(body)["job_id"]

    def job(self, job_id):
        status, _, body = self.request("GET", "/v1/jobs/" + job_id)
        return status, json.loads(body)

    def wait_jobs(self, ids, timeout=30, want="committed"):
        pending = set(ids)

        def done():
            for i in list(pending):
                st, j = self.job(i)
                if st == 200 and j["status"] != "queued":
                    if j["status"] != want:
                        raise AssertionError("job %s is %s, not %s: %s" % (i, j["status"], want, j))
                    pending.discard(i)
            return not pending
        wait_for(done, timeout, "%d job(s) to be %s" % (len(pending), want), step=0.1)

    def statuses(self, ids):
        """GET /v1/jobs/{id} of each id over one keep-alive connection:
        the status JSON as text, or None where the answer is not 200."""
        out = []
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            for i in ids:
                conn.request("GET", "/v1/jobs/" + i)
                resp = conn.getresponse()
                body = resp.read()
                out.append(body.decode() if resp.status == 200 else None)
        finally:
            conn.close()
        return out

    # Redis keys (common/keys.h)
    def prefixes(self):
        """Each queue's key prefix: the one, or each shard's {<p>:<k>}."""
        if not self.shards:
            return [self.prefix]
        base = self.prefix.replace("{", "").replace("}", "")
        return ["{%s:%d}" % (base, k) for k in range(self.shards)]

    def job_prefix(self, job_id):
        """The prefix of the queue holding job `job_id` (jobid.h: the
        shard is the id's hex digits 21-22)."""
        return self.prefixes()[int(job_id[21:23], 16) if self.shards else 0]

    def keys(self, suffix):
        """Keys <prefix>:<suffix> (a glob) of every queue."""
        out = []
        for p in self.prefixes():
            out += self.redis.raw("--scan", "--pattern", glob_escape(p) + ":" + suffix).split()
        return out

    def llen(self, name):
        """LLEN of <prefix>:<name>, summed over the queues."""
        return sum(int(self.redis.cli("LLEN", p + ":" + name)) for p in self.prefixes())

    def status_entries(self):
        """Statuses Redis holds: fields of the bucket hashes plus whole
        JSON keys (keys.h)."""
        n = len(self.keys("job:*"))
        for key in self.keys("st:*"):
            n += int(self.redis.cli("HLEN", key))
        return n

    def queue(self):
        status, _, body = self.request("GET", "/v1/queue")
        assert status == 200, body
        return json.loads(body)

    def sql(self, q):
        return psql(q, self.db)


class ServiceTest(unittest.TestCase):
    """Base class: subclasses set SINKS/TABLES and get self.svc per class."""

    SINKS = ""
    TABLES = ""
    EXTRA = None
    FLUSHER = True
    PROXIES = False

    @classmethod
    def setUpClass(cls):
        cls.svc = Service(cls.__name__.lower(), cls.SINKS, cls.TABLES, cls.EXTRA, cls.FLUSHER,
                          proxies=cls.PROXIES)
        # Runs even when a subclass's setUpClass fails after this point
        # (tearDownClass then does not); a second close() is harmless.
        cls.addClassCleanup(cls.svc.close)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()


def main():
    require_postgres()
    unittest.main(verbosity=2)


# Problem types whose answer says nothing was queued (a client may simply
# retry): a test asserts that none of their records lands.
NOTHING_QUEUED = (b"sink-paused", b"redis-unavailable", b"redis-refused", b"redis-out-of-memory",
                  b"queue-full", b"redis-memory-high", b"server-busy")


class Stream:
    """A bounded write stream: `threads` clients each POST jobs of 1..8
    records with unique ids to `sink` until `duration` seconds pass or
    `max_jobs` each. Records which ids got a 202 and every other answer."""

    def __init__(self, svc, sink, threads=4, duration=8.0, max_jobs=50000, timeout=10,
                 id_base=0):
        import threading
        self.svc, self.sink = svc, sink
        self.id_base = id_base
        self.accepted_ids, self.accepted_jobs = [], []
        self.unacked_ids = []         # ids of writes answered otherwise (maybe queued)
        self.refused_ids = []         # ...of them, answers that say nothing was queued
        self.failures = []            # anything but a 202: (status or "error", detail)
        self.refused = {}             # status / error class -> count
        self.hung = 0                 # requests that ran past their timeout
        self.lock = threading.Lock()
        self.stop_at = time.monotonic() + duration
        self.max_jobs, self.timeout = max_jobs, timeout
        self.threads = [threading.Thread(target=self._run, args=(n,), daemon=True)
                        for n in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self, n):
        conn = None
        next_id = self.id_base + n * 10_000_000
        for j in range(self.max_jobs):
            if time.monotonic() >= self.stop_at:
                break
            size = 1 + (j % 8)
            ids = list(range(next_id, next_id + size))
            next_id += size
            body = json.dumps([{"id": i, "payload": "w%d-j%d" % (n, j)} for i in ids])
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.svc.port, timeout=self.timeout)
                t0 = time.monotonic()
                conn.request("POST", "/v1/sinks/%s/records" % self.sink, body=body,
                             headers={"Content-Type": "application/json"})
                resp = conn.getresponse()
                data = resp.read()
                elapsed = time.monotonic() - t0
                with self.lock:
                    if resp.status == 202:
                        self.accepted_ids.extend(ids)
                        self.accepted_jobs.append(json.loads(data)["job_id"])
                    else:
                        self.unacked_ids.extend(ids)
                        if any(b"problem:" + t in data for t in NOTHING_QUEUED):
                            self.refused_ids.extend(ids)
                        self.failures.append((resp.status, data[:200]))
                        self.refused[resp.status] = self.refused.get(resp.status, 0) + 1
                    if elapsed > self.timeout:
                        self.failures.append(("slow", elapsed))
                        self.hung += 1
            except socket.timeout as e:
                with self.lock:
                    self.unacked_ids.extend(ids)
                    self.failures.append(("timeout", repr(e)))
                    self.hung += 1
                if conn:
                    conn.close()
                conn = None
            except (OSError, http.client.HTTPException) as e:
                with self.lock:
                    self.unacked_ids.extend(ids)
                    self.failures.append(("error", repr(e)))
                    self.refused["connection"] = self.refused.get("connection", 0) + 1
                if conn:
                    conn.close()
                conn = None
        if conn:
            conn.close()

    def kinds(self, status=503):
        """The problem types of the answers with `status`."""
        import re
        return {m.group(1).decode() for st, body in self.failures if st == status
                for m in [re.search(rb"problem:([a-z-]+)", body)] if m}

    def stop(self):
        """End the stream now (for a test's finally)."""
        self.stop_at = 0
        return self.join()

    def join(self):
        for t in self.threads:
            t.join(timeout=120)
            assert not t.is_alive(), "a writer thread hung"
        return self


LOGFMT_PAIR = r'[A-Za-z_][A-Za-z0-9_.-]*=(?:"(?:[^"\\]|\\.)*"|[^\s"=]*)'
LOGFMT_LINE = re.compile(r"^ts=\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z level=(?:debug|info|warn|error) "
                         r"%s(?: %s)*$" % (LOGFMT_PAIR, LOGFMT_PAIR))


def bad_log_lines(text):
    """Lines of a daemon's log that are not logfmt led by ts= and level=
    (a daemon not under journald stamps every line)."""
    return [line for line in text.splitlines() if not LOGFMT_LINE.match(line)]


class Promises:
    """What the writes of a test class were told, across its streams: ids
    acknowledged (202), ids answered otherwise (they may have been
    queued), and of those, ids answered "nothing was queued". check()
    drains the queue and asserts on the `events` table (harness.EVENTS_*):
    no record twice, none acknowledged lost, none landed that nobody
    wrote, none landed that was refused."""

    def __init__(self):
        self.acked, self.maybe, self.refused = set(), set(), set()

    def add(self, stream):
        self.acked.update(stream.accepted_ids)
        self.maybe.update(stream.unacked_ids)
        self.refused.update(stream.refused_ids)

    def check(self, test, svc, what):
        """The landed ids, and of them those that were not acknowledged."""
        wait_drained(svc, timeout=90)
        rows = [int(r[0]) for r in svc.sql("SELECT id FROM events")]
        landed = set(rows)
        lost = self.acked - landed
        test.assertEqual(len(rows), len(landed), "%s: some record was applied twice" % what)
        test.assertEqual(lost, set(), "%s: %d acknowledged records lost" % (what, len(lost)))
        stray = landed - self.acked
        test.assertEqual(stray - self.maybe, set(), "%s: rows nobody wrote" % what)
        test.assertEqual(landed & self.refused, set(),
                         "%s: rows of writes answered 'nothing was queued'" % what)
        return landed, stray


def wait_drained(svc, timeout=60):
    def drained():
        q = svc.queue()
        return q["depth"] == 0 and q["in_flight"] == 0 and q["queued_jobs"] == 0
    try:
        wait_for(drained, timeout, "the queue to drain", step=0.2)
    except AssertionError as e:
        # What the flushers said last is what explains a stuck queue.
        tails = "".join("\n--- %s ---\n%s" % (name, text)
                        for name, text in svc.log_tails().items())
        raise AssertionError("%s: queue %s%s" % (e, svc.queue(), tails)) from None
