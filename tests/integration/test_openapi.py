"""GET /v1/openapi.json: an OpenAPI 3.1 document that a real validator
accepts (@seriousme/openapi-schema-validator, installed by
deploy/install-deps.sh --test), served without a token, that lists every
route the server has (its route table in server/probes.c) and every
problem type it can answer (each one the sources name), and whose every
path the server answers. Then the two client examples of docs/examples
(Python's urllib, Node's fetch) run against the server: each posts with
an Idempotency-Key, rides out a 503 by its Retry-After, waits for the
commit with ?wait=N, and its write lands once."""

import glob
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402

TOOLS = os.environ.get("SPILLWAY_TEST_TOOLS", "/opt/spillway-test-tools")
VALIDATE = os.path.join(TOOLS, "node_modules", ".bin", "validate-api")
SRC = os.environ.get("SW_SOURCE", os.path.join(os.path.dirname(__file__), "..", ".."))


def source(pattern):
    text = ""
    for path in sorted(glob.glob(os.path.join(SRC, pattern))):
        with open(path) as f:
            text += f.read()
    return text


class OpenApiTest(harness.ServiceTest):
    SINKS = harness.CHECKED_SINK
    TABLES = harness.CHECKED_TABLE

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        code, headers, body = cls.svc.request("GET", "/v1/openapi.json")
        assert code == 200, body
        cls.headers, cls.body, cls.doc = headers, body, json.loads(body)

    def test_1_valid(self):
        self.assertTrue(self.headers["content-type"].startswith("application/json"))
        self.assertEqual(self.doc["openapi"], "3.1.0")
        self.assertTrue(os.access(VALIDATE, os.X_OK),
                        "%s missing: run deploy/install-deps.sh --test" % VALIDATE)
        with tempfile.NamedTemporaryFile("wb", suffix=".json") as f:
            f.write(self.body)
            f.flush()
            out = subprocess.run([VALIDATE, f.name], capture_output=True, text=True, timeout=120)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            self.assertTrue(json.loads(out.stdout)["valid"])
            # The validator does refuse a broken one.
            bad = json.loads(self.body)
            del bad["paths"]["/v1/jobs/{job_id}"]["get"]["parameters"][1]["in"]
            f.seek(0)
            f.truncate()
            f.write(json.dumps(bad).encode())
            f.flush()
            out = subprocess.run([VALIDATE, f.name], capture_output=True, text=True, timeout=120)
            self.assertNotEqual(out.returncode, 0)

    def test_2_every_route_and_problem_type(self):
        paths = set(self.doc["paths"])
        table = re.search(r"route_names\[R_COUNT\] = \{(.*?)\};", source("server/probes.c"), re.S)
        routes = re.findall(r'"([^"]+)"', table.group(1))
        self.assertIn("/v1/jobs/lookup", routes)
        for r in routes:
            if r == "other":
                continue
            if r == "/v1/admin/...":
                self.assertTrue(any(p.startswith("/v1/admin/") for p in paths))
                continue
            self.assertIn(r, paths, r)
        documented = {t.rsplit(":", 1)[-1] for t in
                      self.doc["components"]["schemas"]["Problem"]["properties"]["type"]["enum"]}
        code = source("server/*.c") + source("common/*.c")
        named = set(re.findall(r'(?:problem|problem_set)\(&?[a-z]+, \d+, "([a-z-]+)"', code))
        named |= set(re.findall(r'\{\d{3}, "([a-z-]+)", "', code))          # the core's table
        named |= set(re.findall(r'turn_away\([^"]*"([a-z-]+)"', code))
        self.assertGreater(len(named), 30)
        self.assertEqual(named - documented, set(), "problem types the server answers")
        self.assertEqual(documented - named, set(), "problem types it never answers")

    def test_3_every_path_answers(self):
        for path, ops in self.doc["paths"].items():
            for method in ops:
                url = (path.replace("{sink}", "checked")
                       .replace("{job_id}", "0190a0e4-7b8c-7abc-8123-456789abcdef"))
                for p in ops[method].get("parameters", []):
                    if p.get("name") == "action":
                        url = url.replace("{action}", p["schema"]["enum"][0])
                body = "{}" if method == "post" else None
                code, _, out = self.svc.request(method.upper(), url, body,
                                                {"Content-Type": "application/json"})
                if code == 404:
                    self.assertNotEqual(json.loads(out)["type"].rsplit(":", 1)[-1], "not-found",
                                        "%s %s" % (method, url))

    def test_4_clients(self):
        svc = self.svc
        base = "http://127.0.0.1:%d" % svc.port
        env = dict(os.environ, SPILLWAY_MAX_RETRY_WAIT="1")
        examples = os.path.join(SRC, "docs", "examples")
        for n, cmd in enumerate(([sys.executable, os.path.join(examples, "client.py")],
                                 ["node", os.path.join(examples, "client.mjs")])):
            # Its first POST meets a paused intake (503, Retry-After): the
            # client retries with the same key once it is resumed.
            svc.ctl("sink", "pause", "checked")
            harness.wait_for(lambda: svc.post("checked", [{"id": 1, "qty": 1}])[0] == 503, 5,
                             "the pause to be seen")
            threading.Timer(1.5, lambda: svc.ctl("sink", "resume", "checked")).start()
            rid = 70000 + n
            t0 = time.time()
            out = subprocess.run(cmd + [base, "checked", json.dumps([{"id": rid, "qty": 3}])],
                                 capture_output=True, text=True, timeout=120, env=env)
            self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
            final = json.loads(out.stdout)
            self.assertEqual((final["status"], final["records"]), ("committed", 1))
            self.assertGreater(time.time() - t0, 1.0)
            self.assertEqual(svc.sql("SELECT qty FROM checked WHERE id = %d" % rid), [["3"]])


if __name__ == "__main__":
    harness.main()
