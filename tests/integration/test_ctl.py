"""spillwayctl as an operator meets it: errors that name the bad argument
(never the whole usage), the default config path, a directory given as
the config, --json on every read command, dead-letter triage (show a
failed job's records; list, requeue and drop by sink and SQLSTATE, other
sinks' dead jobs untouched), and tokens listed and revoked (the server,
reloaded, refuses the revoked one)."""

import json
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

KEYED_SINK = """
[sink.keyed]
table = public.keyed
columns = id bigint not null, note text
"""
KEYED_TABLE = "CREATE TABLE keyed (id bigint PRIMARY KEY, note text);"
SINKS = harness.CHECKED_SINK + KEYED_SINK
TABLES = harness.CHECKED_TABLE + KEYED_TABLE


def ctl_raw(*args, env=None):
    return subprocess.run([os.path.join(harness.BIN, "spillwayctl")] + list(args), env=env,
                          capture_output=True, text=True, timeout=60)


class CtlTest(harness.ServiceTest):
    SINKS = SINKS
    TABLES = TABLES

    def test_1_errors_name_the_argument(self):
        cfg = self.svc.config
        cases = [
            (["--config", cfg, "queue", "extra"], 'unexpected argument "extra"'),
            (["--config", cfg, "--frobnicate", "queue"], 'unknown option "--frobnicate"'),
            (["--config", cfg, "quuee"], 'unknown command "quuee"'),
            (["--config", cfg], "no command given"),
            (["--config"], "--config wants a value"),
            (["--config", cfg, "dead", "list", "--limit", "x"], '--limit wants a whole number'),
            (["--config", cfg, "dead", "list", "--sink", "nosuch"], '--sink "nosuch" is not'),
            (["--config", cfg, "dead", "list", "--sqlstate", "2x"], '--sqlstate wants'),
            (["--config", cfg, "dead", "show"], "dead show wants one JOB_ID"),
            (["--config", cfg, "dead", "show", "nope"], '"nope" is not a job id'),
            (["--config", cfg, "dead", "requeue"], "wants one JOB_ID or --all"),
            (["--config", cfg, "token", "new", "--sinks", "checked,events"],
             '--sinks names "events", which is not a configured sink (configured: checked, '
             'keyed'),
            (["--config", cfg, "token", "revoke", "xyz"], "at least 8 of the hex digits"),
            (["--config", os.path.dirname(cfg), "queue"], "is a directory, not a config file"),
        ]
        for args, want in cases:
            out = ctl_raw(*args, env=self.svc.env)
            self.assertEqual(out.returncode, 2, (args, out.stderr))
            self.assertIn(want, out.stderr, args)
            self.assertEqual(len(out.stderr.strip().splitlines()), 1, (args, out.stderr))
            self.assertNotIn("usage:", out.stderr)
        # No --config: the default path, named as such.
        if not os.path.exists("/etc/spillway/spillway.ini"):
            out = ctl_raw("queue", env=self.svc.env)
            self.assertEqual(out.returncode, 2)
            self.assertIn("/etc/spillway/spillway.ini: No such file or directory (the default "
                          "config; give --config FILE)", out.stderr)

    def test_2_dead_triage(self):
        svc = self.svc
        good = svc.post_ok("checked", [{"id": 1, "qty": 5}])
        svc.wait_jobs([good])
        bad_check = [svc.post_ok("checked", [{"id": 10 + i, "qty": 1}, {"id": 20 + i, "qty": -i}])
                     for i in range(1, 4)]
        bad_unique = svc.post_ok("checked", [{"id": 1, "qty": 9}])          # 23505
        svc.wait_jobs(bad_check + [bad_unique], want="failed")
        ok_keyed = svc.post_ok("keyed", [{"id": 1, "note": "a"}])
        svc.wait_jobs([ok_keyed])
        svc.sql("ALTER TABLE keyed ADD CONSTRAINT short CHECK (length(note) < 3)")
        bad_keyed = svc.post_ok("keyed", [{"id": 2, "note": "too long"}])
        svc.wait_jobs([bad_keyed], want="failed")

        listed = json.loads(svc.ctl("--json", "dead", "list").stdout)
        self.assertEqual(listed["shown"], 5)
        self.assertEqual({j["job_id"] for j in listed["jobs"]},
                         set(bad_check + [bad_unique, bad_keyed]))
        by_sink = json.loads(svc.ctl("dead", "list", "--sink", "keyed", "--json").stdout)
        self.assertEqual([j["job_id"] for j in by_sink["jobs"]], [bad_keyed])
        self.assertEqual(by_sink["jobs"][0]["sink"], "keyed")
        self.assertEqual(by_sink["jobs"][0]["records"], 1)
        unique = json.loads(svc.ctl("--json", "dead", "list", "--sqlstate", "23505").stdout)
        self.assertEqual([j["job_id"] for j in unique["jobs"]], [bad_unique])
        check = json.loads(svc.ctl("--json", "dead", "list", "--sink", "checked", "--sqlstate",
                                   "23514").stdout)
        self.assertEqual({j["job_id"] for j in check["jobs"]}, set(bad_check))
        text = svc.ctl("dead", "list", "--sqlstate", "23", "--limit", "2").stdout
        self.assertTrue(text.endswith("2 shown\n"), text)

        # show: the records decoded, by column name, with the error.
        shown = json.loads(svc.ctl("dead", "show", bad_check[1], "--json").stdout)
        self.assertEqual(shown["sink"], "checked")
        self.assertEqual(shown["data"], [{"id": 12, "qty": 1}, {"id": 22, "qty": -2}])
        self.assertTrue(shown["error"].startswith("SQLSTATE 23514: new row for relation "
                                                  "\"checked\" violates check constraint"),
                        shown["error"])
        text = svc.ctl("dead", "show", bad_unique).stdout
        self.assertIn("record 0  {\"id\":1,\"qty\":9}   <- the record the error names", text)
        self.assertIn("sink       checked\n", text)

        # Requeue by filter: only the keyed sink's job, fixed first; the
        # others stay dead.
        svc.sql("ALTER TABLE keyed DROP CONSTRAINT short")
        out = svc.ctl("dead", "requeue", "--all", "--sink", "keyed").stdout
        self.assertEqual(out, "1 requeued\n")
        svc.wait_jobs([bad_keyed])
        self.assertEqual(svc.sql("SELECT note FROM keyed WHERE id = 2"), [["too long"]])
        self.assertEqual(json.loads(svc.ctl("--json", "queue").stdout)["dead_jobs"], 4)
        # Drop by SQLSTATE: the duplicate only.
        self.assertEqual(svc.ctl("dead", "drop", "--all", "--sqlstate", "23505").stdout,
                         "1 dropped\n")
        left = json.loads(svc.ctl("--json", "dead", "list").stdout)
        self.assertEqual({j["job_id"] for j in left["jobs"]}, set(bad_check))
        self.assertEqual(svc.job(bad_unique)[1]["status"], "failed")
        self.assertEqual(svc.ctl("dead", "drop", "--all").stdout, "3 dropped\n")
        q = json.loads(svc.ctl("queue", "--json").stdout)
        self.assertEqual((q["dead_jobs"], q["depth"], q["in_flight"]), (0, 0, 0))
        out = svc.ctl("dead", "show", bad_check[0], check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn("no dead-lettered job", out.stderr)

    def test_3_check_config_json(self):
        doc = json.loads(self.svc.ctl("check-config", "--json").stdout)
        self.assertEqual(doc["mismatches"], 0)
        self.assertEqual([s["sink"] for s in doc["sinks"]], ["checked", "keyed"])
        self.assertEqual(doc["sinks"][0]["mode"], "insert")

    def test_3b_sink_intake_paused_and_resumed(self):
        """Pause one sink's intake: every POST to it answers 503 sink-paused
        (nothing queued) within a second, the other sink and reads go on,
        the queued jobs still flush; resume, and it takes writes again."""
        svc = self.svc
        self.addCleanup(svc.ctl, "sink", "resume", "checked")
        with harness.TableLock(svc.db, "checked"):
            queued = svc.post_ok("checked", [{"id": 700, "qty": 1}])
            out = svc.ctl("sink", "pause", "checked", "--note", "adding a column")
            self.assertIn("intake of checked paused", out.stdout)
            paused = lambda v: ('spillway_sink_paused{sink="checked"} %d\n' % v  # noqa: E731
                                in svc.request("GET", "/metrics")[2].decode())
            harness.wait_for(lambda: paused(1), 5, "the server to see the pause")
        code, h, body = svc.post("checked", [{"id": 702, "qty": 1}])
        self.assertEqual(code, 503)
        self.assertEqual(h["retry-after"], "30")
        p = json.loads(body)
        self.assertEqual(p["type"].rsplit(":", 1)[-1], "sink-paused")
        self.assertIn('paused the intake of sink "checked"; nothing was queued', p["detail"])
        self.assertEqual(svc.post("keyed", [{"id": 700, "note": "x"}])[0], 202)
        svc.wait_jobs([queued])                      # queued before: still flushed
        listed = json.loads(svc.ctl("sink", "list", "--json").stdout)["sinks"]
        self.assertEqual([(s["sink"], s["intake_paused"]) for s in listed],
                         [("checked", True), ("keyed", False)])
        self.assertEqual(listed[0]["intake"]["note"], "adding a column")
        self.assertNotIn("flush", listed[0])
        self.assertEqual(listed[0]["queued_records"], 0)
        self.assertIn("checked  table=public.checked mode=insert queued=0 parked=0 oldest=0.0s "
                      "intake=paused "
                      "flushing=running intake_since=",
                      svc.ctl("sink", "list").stdout)
        metrics = svc.request("GET", "/metrics")[2].decode()
        self.assertIn('spillway_sink_paused{sink="checked"} 1\n', metrics)
        self.assertIn('spillway_sink_paused{sink="keyed"} 0\n', metrics)
        self.assertRegex(metrics, r'spillway_requests_rejected_total\{reason="paused"\} [1-9]')
        self.assertEqual(svc.ctl("sink", "resume", "checked").stdout, "intake of checked resumed\n")
        harness.wait_for(lambda: paused(0), 5, "the server to see the resume")
        svc.wait_jobs([svc.post_ok("checked", [{"id": 703, "qty": 1}])])
        self.assertEqual(svc.sql("SELECT count(*) FROM checked WHERE id = 702"), [["0"]])
        log = svc.server.output()
        self.assertIn('msg="sink intake paused" sink=checked', log)
        self.assertIn('msg="sink intake resumed" sink=checked', log)
        out = svc.ctl("sink", "pause", "nosuch", check=False)
        self.assertEqual(out.returncode, 2)
        self.assertIn('"nosuch" is not a configured sink', out.stderr)

    def test_3c_queued_by_sink(self):
        """Records queued per sink, in sink list, /metrics and /v1/stats; not
        shown while they cannot be exact (as after an upgrade, counters
        missing while jobs wait), and exact again once the queue has been
        empty."""
        svc = self.svc
        fid, = list(svc.flushers)
        self.assertEqual(svc.flushers[fid].terminate(), 0)
        jobs = [svc.post_ok("checked", [{"id": 900 + i, "qty": 1}, {"id": 950 + i, "qty": 1}])
                for i in range(2)]
        jobs += [svc.post_ok("keyed", [{"id": 900 + i, "note": "q"}]) for i in range(3)]

        def listed():
            return {s["sink"]: s["queued_records"] for s in
                    json.loads(svc.ctl("sink", "list", "--json").stdout)["sinks"]}
        self.assertEqual(listed(), {"checked": 4, "keyed": 3})
        metrics = svc.request("GET", "/metrics")[2].decode()
        self.assertIn('spillway_queue_sink_depth_records{sink="keyed"} 3\n', metrics)
        stats = json.loads(svc.request("GET", "/v1/stats")[2])
        self.assertEqual([(s["name"], s["depth"]) for s in stats["sinks"]],
                         [("checked", 4), ("keyed", 3)])
        # Counters that did not see every job: unknown, not a wrong 0.
        for p in svc.prefixes():
            svc.redis.cli("HDEL", p + ":stats", "sink_counts")
        self.assertEqual(listed(), {"checked": None, "keyed": None})
        self.assertIn("queued=?", svc.ctl("sink", "list").stdout)
        self.assertNotIn("spillway_queue_sink_depth_records",
                         svc.request("GET", "/metrics")[2].decode())
        self.assertNotIn("depth", json.loads(svc.request("GET", "/v1/stats")[2])["sinks"][0])
        svc.start_flusher(fid)
        svc.wait_jobs(jobs)
        self.assertEqual(listed(), {"checked": 0, "keyed": 0})

    def test_4_tokens_listed_and_revoked(self):
        svc = self.svc
        path = os.path.join(svc.tmp, "tokens")
        made = {}
        with open(path, "w") as f:
            f.write("# the site's tokens\n")
            for name, sinks in (("ci", "checked"), ("ops", "*")):
                out = svc.ctl("token", "new", "--sinks", sinks, "--name", name)
                token, *lines = out.stdout.splitlines()
                self.assertEqual(lines[0], "# token: " + name)
                made[name] = (token, lines[1][:12])
                f.write("\n".join(lines) + "\n")
        env = dict(svc.env, SPILLWAY_SERVER_TOKENS_FILE=path)
        svc.server.terminate()
        svc.start_server(SPILLWAY_SERVER_TOKENS_FILE=path)
        auth = lambda n: {"Authorization": "Bearer " + made[n][0]}  # noqa: E731
        self.assertEqual(svc.post("checked", [{"id": 500, "qty": 1}], headers=auth("ci"))[0], 202)

        def ctl(*args, check=True):
            out = ctl_raw("--config", svc.config, *args, env=env)
            if check:
                self.assertEqual(out.returncode, 0, out.stderr)
            return out
        listed = json.loads(ctl("token", "list", "--json").stdout)["tokens"]
        self.assertEqual(listed, [{"id": made["ci"][1], "sinks": "checked", "name": "ci"},
                                  {"id": made["ops"][1], "sinks": "*", "name": "ops"}])
        text = ctl("token", "list").stdout
        self.assertIn("%s  sinks=checked  name=ci\n" % made["ci"][1], text)
        self.assertTrue(text.endswith("2 tokens\n"))
        os.chmod(path, 0o640)
        out = ctl("token", "revoke", made["ci"][1][:10])
        self.assertIn("revoked %s" % made["ci"][1], out.stdout)
        with open(path) as f:
            kept = f.read()
        self.assertEqual(os.stat(path).st_mode & 0o777, 0o640)   # the mode kept
        self.assertEqual(kept.count("# token:"), 1)
        self.assertIn("# the site's tokens\n", kept)
        out = ctl("token", "revoke", made["ci"][1], check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn("no token", out.stderr)
        # The last one stays: a file without tokens is one the server
        # refuses (and it would go on with the old ones).
        out = ctl("token", "revoke", made["ops"][1].upper(), check=False)
        self.assertEqual(out.returncode, 1)
        self.assertIn("not revoked: without it", out.stderr)
        self.assertIn("holds no tokens", out.stderr)
        with open(path) as f:
            self.assertEqual(f.read(), kept)
        # A command's value that looks like an option is the value.
        out = ctl("token", "new", "--sinks", "checked", "--name", "-h")
        self.assertIn("# token: -h\n", out.stdout)
        svc.server.proc.send_signal(signal.SIGHUP)
        harness.wait_for(lambda: svc.server.output().count('msg="tokens reloaded"') == 1, 10,
                         "the server to reload its tokens")
        self.assertEqual(svc.post("checked", [{"id": 501, "qty": 1}], headers=auth("ci"))[0], 401)
        self.assertEqual(svc.post("checked", [{"id": 502, "qty": 1}], headers=auth("ops"))[0], 202)


if __name__ == "__main__":
    harness.main()
