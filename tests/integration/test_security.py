"""Access control, TLS and credentials, against the real daemons:

- bearer tokens (401 / 403, job statuses only for the token's sinks), the
  admin listener, `spillwayctl token new`, and no token in any log;
- HTTPS with a certificate this test makes, posted through with curl;
- Redis AUTH with an ACL user, and a PostgreSQL password, both given only
  through the environment.
"""

import json
import os
import signal
import subprocess
import time
import unittest

import harness
from harness import EVENTS_SINK, EVENTS_TABLE, Service, psql, wait_for

ORDERS_SINK = """
[sink.orders]
table = public.orders
mode = upsert
key = id
columns = id bigint not null, note text
"""
ORDERS_TABLE = "CREATE TABLE orders (id bigint PRIMARY KEY, note text);"


def problem(body):
    doc = json.loads(body)
    assert {"type", "title", "status", "detail"} <= set(doc), doc
    return doc


class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.admin_port = harness.free_port()
        # Tokens come from spillwayctl, as an operator would make them; then
        # the server restarts with the file.
        cls.svc = Service("auth", EVENTS_SINK + ORDERS_SINK, EVENTS_TABLE + ORDERS_TABLE,
                          {"server": {"admin_listen": "127.0.0.1:%d" % cls.admin_port}})
        svc = cls.svc
        cls.addClassCleanup(svc.close)
        tokens = {}
        lines = []
        for name, sinks in (("orders", "orders"), ("all", "*"), ("both", "orders, events")):
            out = svc.ctl("token", "new", "--sinks", sinks)
            token, line = out.stdout.splitlines()
            tokens[name] = token
            lines.append(line)
            assert token not in line
        cls.tokens = tokens
        cls.tokens_file = os.path.join(svc.tmp, "tokens")
        with open(cls.tokens_file, "w") as f:
            f.write("# made by spillwayctl token new\n" + "\n".join(lines) + "\n")
        svc.server.terminate()
        svc.start_server(SPILLWAY_SERVER_TOKENS_FILE=cls.tokens_file)

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    def auth(self, name):
        return {"Authorization": "Bearer " + self.tokens[name]}

    def admin(self, method, path, body=None, headers=None):
        return self.svc.request(method, path, body, headers, port=self.admin_port)

    def test_missing_and_wrong_token_are_401(self):
        st, h, body = self.svc.post("orders", {"id": 1})
        self.assertEqual(st, 401)
        self.assertEqual(h["www-authenticate"], 'Bearer realm="spillway"')
        self.assertEqual(h["content-type"], "application/problem+json")
        self.assertIn("Authorization: Bearer", problem(body)["detail"])
        st, h, body = self.svc.post("orders", {"id": 1},
                                    headers={"Authorization": "Bearer sw_0000"})
        self.assertEqual(st, 401)
        self.assertIn('error="invalid_token"', h["www-authenticate"])
        # Basic auth, or the token's hash instead of the token, is no token.
        st, _, _ = self.svc.post("orders", {"id": 1},
                                 headers={"Authorization": "Basic " + self.tokens["all"]})
        self.assertEqual(st, 401)
        for path in ("/v1/queue", "/v1/jobs/0190a0e4-7b8c-7abc-8123-456789abcdef", "/v1/stats"):
            self.assertEqual(self.svc.request("GET", path)[0], 401, path)

    def test_sink_scope_is_403_and_nothing_queued(self):
        before = self.admin("GET", "/v1/queue")
        self.assertEqual(before[0], 200)
        st, h, body = self.svc.post("events", {"id": 1, "payload": "x"},
                                    headers=self.auth("orders"))
        self.assertEqual(st, 403)
        self.assertIn("insufficient_scope", h["www-authenticate"])
        self.assertIn("may not write to this sink", problem(body)["detail"])
        # An unknown sink is 403 too for a scoped token: no probing names.
        st, _, _ = self.svc.post("nosuch", {"id": 1}, headers=self.auth("orders"))
        self.assertEqual(st, 403)
        st, _, _ = self.svc.post("nosuch", {"id": 1}, headers=self.auth("all"))
        self.assertEqual(st, 404)
        after = json.loads(self.admin("GET", "/v1/queue")[2])
        self.assertEqual(after["depth"] + after["in_flight"],
                         json.loads(before[2])["depth"] + json.loads(before[2])["in_flight"])

    def test_idempotency_keys_are_per_token(self):
        # Two tenants with the same key and body: each gets its own job;
        # each one's repeat answers its own.
        body = {"id": 31, "note": "same"}
        key = {"Idempotency-Key": "tenant-key-1"}
        answers = {}
        for name in ("orders", "both"):
            h = dict(self.auth(name), **key)
            st, _, b = self.svc.post("orders", body, headers=h)
            self.assertEqual(st, 202, b)
            answers[name] = json.loads(b)["job_id"]
        self.assertNotEqual(answers["orders"], answers["both"])
        for name in ("orders", "both"):
            st, _, b = self.svc.post("orders", body, headers=dict(self.auth(name), **key))
            self.assertEqual((st, json.loads(b)["job_id"]), (200, answers[name]))

    def test_job_status_only_for_the_tokens_sinks(self):
        st, _, body = self.svc.post("events", {"id": 7, "payload": "p"}, headers=self.auth("both"))
        self.assertEqual(st, 202, body)
        events_job = json.loads(body)["job_id"]
        st, _, body = self.svc.post("orders", {"id": 7, "note": "n"}, headers=self.auth("orders"))
        self.assertEqual(st, 202, body)
        orders_job = json.loads(body)["job_id"]
        get = lambda job, who: self.svc.request("GET", "/v1/jobs/" + job, headers=self.auth(who))
        self.assertEqual(get(orders_job, "orders")[0], 200)
        self.assertEqual(json.loads(get(orders_job, "orders")[2])["sink"], "orders")
        st, _, body = get(events_job, "orders")
        self.assertEqual(st, 404)
        self.assertEqual(problem(body)["type"], "urn:spillway:problem:job-not-found")
        self.assertEqual(get(events_job, "all")[0], 200)
        self.assertEqual(get(events_job, "both")[0], 200)
        wait_for(lambda: self.svc.sql("SELECT note FROM orders WHERE id = 7") == [["n"]], 30,
                 "the orders row")
        self.assertEqual(self.svc.sql("SELECT payload FROM events WHERE id = 7"), [["p"]])

    def test_stats_needs_an_all_sinks_token(self):
        st, _, body = self.svc.request("GET", "/v1/stats", headers=self.auth("orders"))
        self.assertEqual(st, 403)
        self.assertIn('"*"', problem(body)["detail"])
        st, _, body = self.svc.request("GET", "/v1/stats", headers=self.auth("all"))
        self.assertEqual(st, 200)
        self.assertIn("depth", json.loads(body))
        st, _, body = self.svc.request("GET", "/v1/queue", headers=self.auth("orders"))
        self.assertEqual(st, 200)

    def test_admin_routes_live_on_the_admin_listener(self):
        for path in ("/metrics", "/healthz", "/readyz", "/ui"):
            # Load balancers probe the API port: the probes answer there
            # too, without a token; the rest is the admin listener's.
            st, _, body = self.svc.request("GET", path)
            self.assertEqual(st, 200 if path in ("/healthz", "/readyz") else 404, path)
            st, _, body = self.svc.request("GET", path, headers=self.auth("all"))
            self.assertEqual(st, 200 if path in ("/healthz", "/readyz") else 404, path)
            st, _, body = self.admin("GET", path)
            self.assertEqual(st, 200, path)
        # The dashboard's feed and job look-up work there without a token...
        self.assertEqual(self.admin("GET", "/v1/stats")[0], 200)
        st, _, body = self.svc.post("orders", {"id": 9}, headers=self.auth("orders"))
        job = json.loads(body)["job_id"]
        st, _, body = self.admin("GET", "/v1/jobs/" + job)
        self.assertEqual((st, json.loads(body)["job_id"]), (200, job))
        # ...but nothing can be written through it.
        st, _, body = self.admin("POST", "/v1/sinks/orders/records", json.dumps({"id": 10}),
                                 {"Content-Type": "application/json"})
        self.assertEqual(st, 404)
        self.assertIn("admin listener", problem(body)["detail"])
        self.assertEqual(self.svc.post("orders", {"id": 11})[0], 401)
        self.assertEqual(self.svc.post("events", {"id": 11}, headers=self.auth("orders"))[0], 403)
        metrics = self.admin("GET", "/metrics")[2].decode()
        self.assertRegex(metrics, r'spillway_requests_rejected_total\{reason="unauthorized"\} [1-9]')
        self.assertRegex(metrics, r'spillway_requests_rejected_total\{reason="forbidden"\} [1-9]')

    def test_y_sighup_reloads_tokens(self):
        svc = self.svc
        with open(self.tokens_file) as f:
            before = f.read()
        new_token, new_line = svc.ctl("token", "new", "--sinks", "events").stdout.splitlines()
        post = lambda token: svc.post("events", {"id": 500, "payload": "r"},
                                      headers={"Authorization": "Bearer " + token})[0]
        self.assertEqual(post(new_token), 401)
        # Add the new token and drop the "all" one, then SIGHUP.
        all_hash = [l for l in before.splitlines() if l.endswith(" *")]
        self.assertEqual(len(all_hash), 1)
        with open(self.tokens_file, "w") as f:
            f.write(before.replace(all_hash[0] + "\n", "") + new_line + "\n")
        svc.server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: post(new_token) == 202, 10, "the new token to be accepted")
        self.assertEqual(post(self.tokens["all"]), 401)
        self.assertEqual(post(self.tokens["both"]), 202)
        # A broken file keeps the tokens in use.
        with open(self.tokens_file, "w") as f:
            f.write("not a token line\n")
        svc.server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "keeping the tokens loaded before" in svc.server.output(), 10,
                 "the reload to be refused")
        self.assertEqual(post(new_token), 202)
        self.assertIn("tokens:1: expected the token's SHA-256",
                      svc.server.output())
        with open(self.tokens_file, "w") as f:
            f.write(before)
        svc.server.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: post(self.tokens["all"]) == 202, 10, "the first tokens back")
        self.assertTrue(svc.server.alive())

    def test_zz_no_token_in_any_log(self):
        # Runs last (name order): every request above has been logged by now.
        self.svc.server.terminate()
        logs = ""
        for name in os.listdir(self.svc.tmp):
            if name.endswith(".log"):
                with open(os.path.join(self.svc.tmp, name), errors="replace") as f:
                    logs += f.read()
        self.assertIn("auth=bearer", logs)
        for token in self.tokens.values():
            self.assertNotIn(token, logs)
            self.assertNotIn(token[3:], logs)
        self.svc.server = None

    def test_bad_tokens_file_stops_the_server(self):
        bad = os.path.join(self.svc.tmp, "bad-tokens")
        with open(bad, "w") as f:
            f.write("%s orders,ordrs\n" % ("ab" * 32))
        out = subprocess.run([os.path.join(harness.BIN, "spillway-server"), "--config",
                              self.svc.config], env=dict(self.svc.env,
                                                         SPILLWAY_SERVER_TOKENS_FILE=bad,
                                                         SPILLWAY_SERVER_LISTEN="127.0.0.1:%d"
                                                         % harness.free_port(),
                                                         SPILLWAY_SERVER_ADMIN_LISTEN=""),
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        # Quotes in a logged value are escaped (logfmt), so it cannot
        # forge keys of its own.
        self.assertIn('bad-tokens:1: no sink named \\"ordrs\\" is configured',
                      out.stdout + out.stderr)


class TlsTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.svc = Service("tls", EVENTS_SINK, EVENTS_TABLE)
        svc = cls.svc
        cls.addClassCleanup(svc.close)
        cls.cert = os.path.join(svc.tmp, "cert.pem")
        cls.key = os.path.join(svc.tmp, "key.pem")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                        "-keyout", cls.key, "-out", cls.cert], check=True, capture_output=True,
                       timeout=120)
        svc.server.terminate()
        svc.server = harness.Daemon("server", [os.path.join(harness.BIN, "spillway-server"),
                                               "--config", svc.config],
                                    dict(svc.env, SPILLWAY_SERVER_TLS_CERT=cls.cert,
                                         SPILLWAY_SERVER_TLS_KEY=cls.key),
                                    os.path.join(svc.tmp, "server.log"))
        wait_for(lambda: cls.curl("GET", "/healthz")[0] == 200, 15, "HTTPS /healthz")

    @classmethod
    def tearDownClass(cls):
        cls.svc.finish()

    @classmethod
    def curl(cls, method, path, body=None, extra=()):
        args = ["curl", "-sS", "--cacert", cls.cert, "-X", method, "-o", "-", "-w",
                "\n%{http_code}", "--max-time", "10"] + list(extra)
        if body is not None:
            args += ["-H", "Content-Type: application/json", "--data-binary", body]
        out = subprocess.run(args + ["https://127.0.0.1:%d%s" % (cls.svc.port, path)],
                             capture_output=True, text=True, timeout=30)
        if out.returncode != 0:
            return 0, out.stderr
        text, _, code = out.stdout.rpartition("\n")
        return int(code), text

    def test_post_through_https_lands(self):
        st, body = self.curl("POST", "/v1/sinks/events/records",
                             json.dumps([{"id": 1, "payload": "over tls"},
                                         {"id": 2, "payload": "second"}]))
        self.assertEqual(st, 202, body)
        job = json.loads(body)["job_id"]
        wait_for(lambda: json.loads(self.curl("GET", "/v1/jobs/" + job)[1])["status"] ==
                 "committed", 30, "the job to commit")
        self.assertEqual(self.svc.sql("SELECT id, payload FROM events ORDER BY id"),
                         [["1", "over tls"], ["2", "second"]])

    def test_plain_http_and_unverified_clients_fail(self):
        with self.assertRaises(Exception):
            st, _, _ = self.svc.request("GET", "/healthz", timeout=3)
            if st:
                raise AssertionError("plain HTTP got an answer %d" % st)
        # And the certificate is checked by the client, i.e. it is ours.
        out = subprocess.run(["curl", "-sS", "--max-time", "10",
                              "https://127.0.0.1:%d/healthz" % self.svc.port],
                             capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)


    def test_tls12_offers_forward_secret_aead_only(self):
        import socket
        import ssl

        def handshake(ciphers, version=ssl.TLSVersion.TLSv1_2):
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            ctx.minimum_version = ctx.maximum_version = version
            ctx.set_ciphers(ciphers)
            with socket.create_connection(("127.0.0.1", self.svc.port), timeout=10) as raw:
                try:
                    with ctx.wrap_socket(raw) as s:
                        return s.cipher()[0]
                except ssl.SSLError:
                    return None
        # Static RSA key exchange (no forward secrecy) and CBC suites are
        # refused; ECDHE with GCM or ChaCha20 is served; TLS 1.3 as usual.
        self.assertIsNone(handshake("AES128-GCM-SHA256:AES256-GCM-SHA384"))
        self.assertIsNone(handshake("ECDHE-RSA-AES128-SHA:ECDHE-RSA-AES256-SHA384"))
        self.assertEqual(handshake("ECDHE-RSA-AES128-GCM-SHA256"), "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertEqual(handshake("ECDHE-RSA-CHACHA20-POLY1305"), "ECDHE-RSA-CHACHA20-POLY1305")
        self.assertIsNotNone(handshake("DEFAULT", ssl.TLSVersion.TLSv1_3))
        self.assertIsNone(handshake("DEFAULT", ssl.TLSVersion.TLSv1_1))

    def test_weak_tls_ciphers_stop_the_server(self):
        out = subprocess.run(
            [os.path.join(harness.BIN, "spillway-server"), "--config", self.svc.config],
            env=dict(self.svc.env, SPILLWAY_SERVER_TLS_CERT=self.cert,
                     SPILLWAY_SERVER_TLS_KEY=self.key,
                     SPILLWAY_SERVER_TLS_CIPHERS="ECDHE-RSA-AES128-GCM-SHA256:AES128-SHA",
                     SPILLWAY_SERVER_LISTEN="127.0.0.1:%d" % harness.free_port()),
            capture_output=True, text=True, timeout=30)
        self.assertNotEqual(out.returncode, 0)
        self.assertIn("tls_ciphers enables AES128-SHA, which lacks forward secrecy or AEAD",
                      out.stdout + out.stderr)

    def test_bad_key_stops_the_server(self):
        other = os.path.join(self.svc.tmp, "other-key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "RSA", "-out", other],
                       check=True, capture_output=True, timeout=120)
        for key, want in ((other, "key values mismatch"),
                          (os.path.join(self.svc.tmp, "missing.pem"), "cannot load key")):
            out = subprocess.run(
                [os.path.join(harness.BIN, "spillway-server"), "--config", self.svc.config],
                env=dict(self.svc.env, SPILLWAY_SERVER_TLS_CERT=self.cert,
                         SPILLWAY_SERVER_TLS_KEY=key,
                         SPILLWAY_SERVER_LISTEN="127.0.0.1:%d" % harness.free_port()),
                capture_output=True, text=True, timeout=30)
            self.assertNotEqual(out.returncode, 0)
            self.assertIn(want, out.stdout + out.stderr)


class CredentialsTest(unittest.TestCase):
    """Redis with an ACL user and PostgreSQL over TCP with a password; both
    passwords reach the daemons through the environment only."""

    REDIS_PW = "r3dis pa$$ 'quoted'"
    PG_PW = "pg pa$$ \"w0rd\""

    @classmethod
    def setUpClass(cls):
        cls.svc = svc = Service("creds", EVENTS_SINK, EVENTS_TABLE, flusher=False)
        cls.addClassCleanup(svc.close)
        svc.server.terminate()
        svc.server = None
        r = svc.redis
        # The least the daemons need, as docs/SECURITY.md gives it (with
        # shards, their pattern too).
        shards = ["~{%s:*" % svc.prefix] if svc.shards else []
        r.cli("ACL", "SETUSER", "spillway", "on", ">" + cls.REDIS_PW, "~%s:*" % svc.prefix,
              *shards, "+@read", "+@write", "+@scripting", "+ping", "+info", "+config|get", "+time",
              "+role", "+wait")
        r.cli("CONFIG", "SET", "requirepass", "admin-only-pw")
        cls.role = "sw_pw_%d" % os.getpid()
        psql("DROP ROLE IF EXISTS %s" % cls.role)
        psql("CREATE ROLE %s LOGIN PASSWORD '%s'" % (cls.role, cls.PG_PW.replace("'", "''")))
        svc.sql("GRANT USAGE ON SCHEMA spillway TO {0}; GRANT ALL ON events, spillway.ledger TO {0}".format(cls.role))
        env = {k: v for k, v in svc.env.items() if not k.startswith("PG")}
        env.update(SPILLWAY_REDIS_USER="spillway", SPILLWAY_REDIS_PASSWORD=cls.REDIS_PW,
                   SPILLWAY_POSTGRES_CONNINFO="host=127.0.0.1 port=%s dbname=%s user=%s "
                   "connect_timeout=2" % (os.environ.get("PGPORT", "5432"), svc.db, cls.role),
                   SPILLWAY_POSTGRES_PASSWORD=cls.PG_PW)
        cls.env = env
        svc.env = env
        svc.start_server()
        svc.start_flusher("f1")

    @classmethod
    def tearDownClass(cls):
        try:
            cls.svc.finish()
        finally:
            psql("DROP ROLE IF EXISTS %s" % cls.role)

    def test_writes_land_with_both_passwords(self):
        job = self.svc.post_ok("events", [{"id": 5, "payload": "authed"}])
        self.svc.wait_jobs([job])
        self.assertEqual(self.svc.sql("SELECT payload FROM events WHERE id = 5"), [["authed"]])

    def test_wrong_redis_password_is_503_and_not_logged(self):
        port = harness.free_port()
        wrong = "wrong-%d" % os.getpid()
        log = os.path.join(self.svc.tmp, "server-wrong.log")
        d = harness.Daemon("server", [os.path.join(harness.BIN, "spillway-server"), "--config",
                                      self.svc.config],
                           dict(self.env, SPILLWAY_REDIS_PASSWORD=wrong,
                                SPILLWAY_SERVER_LISTEN="127.0.0.1:%d" % port), log)
        try:
            wait_for(lambda: self._answers(port), 15, "the server on the wrong password")
            st, h, body = self.svc.request("POST", "/v1/sinks/events/records",
                                           json.dumps([{"id": 6, "payload": "x"}]),
                                           {"Content-Type": "application/json"}, port=port)
            self.assertEqual(st, 503)
            self.assertIn("WRONGPASS", problem(body)["detail"])
            self.assertEqual(h["retry-after"], "1")
        finally:
            self.assertEqual(d.terminate(), 0)
        self.assertNotIn(wrong, d.output())
        self.assertNotIn(self.REDIS_PW, d.output())

    def _answers(self, port):
        try:
            return self.svc.request("GET", "/healthz", port=port)[0] == 200
        except OSError:
            return False

    def test_zz_passwords_never_logged(self):
        time.sleep(0.2)
        for d in [self.svc.server] + list(self.svc.flushers.values()):
            out = d.output()
            self.assertNotIn(self.REDIS_PW, out)
            self.assertNotIn(self.PG_PW, out)
        ps = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
        self.assertNotIn("pa$$", ps)


if __name__ == "__main__":
    harness.main()
