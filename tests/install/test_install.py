"""cmake --install into a temporary prefix lays out every file; the systemd
units pass `systemd-analyze verify` and rate OK (exposure <= 2.0) in
`systemd-analyze security`; sysusers/tmpfiles entries create the user and
its directories in a scratch root; every binary's --help lists its
options. No servers needed."""

import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

BUILD = os.environ["SW_BUILD"]
BIN = os.path.join(BUILD, "bin")


class InstallTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="sw-install-")
        cls.prefix = os.path.join(cls.tmp, "usr")
        subprocess.run(["cmake", "--install", BUILD, "--prefix", cls.prefix], check=True,
                       capture_output=True, timeout=120)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def test_layout(self):
        want = ["bin/spillway-server", "bin/spillway-flusher", "bin/spillwayctl",
                "lib/systemd/system/spillway-server.service",
                "lib/systemd/system/spillway-flusher@.service",
                "lib/sysusers.d/spillway.conf", "lib/tmpfiles.d/spillway.conf",
                "share/spillway/spillway.ini.example",
                "share/spillway/migrations/0001_ledger.sql",
                "share/spillway/spillway-alerts.yml", "share/doc/spillway/OPERATIONS.md",
                "share/doc/spillway/README.md", "share/doc/spillway/GUARANTEES.md",
                "share/doc/spillway/SECURITY.md"]
        for rel in want:
            self.assertTrue(os.path.isfile(os.path.join(self.prefix, rel)), rel)
        for b in ("spillway-server", "spillway-flusher", "spillwayctl"):
            self.assertTrue(os.access(os.path.join(self.prefix, "bin", b), os.X_OK), b)

    def units(self):
        """The installed units, ExecStart pointed at binaries that exist
        (they name the configured prefix, e.g. /usr/bin)."""
        out = []
        for name, inst in (("spillway-server.service", "spillway-server.service"),
                           ("spillway-flusher@.service", "spillway-flusher@1.service")):
            with open(os.path.join(self.prefix, "lib/systemd/system", name)) as f:
                text = f.read()
            text = re.sub(r"ExecStart=\S*/(spillway-\w+)", lambda m: "ExecStart=%s/%s" %
                          (os.path.join(self.prefix, "bin"), m.group(1)), text)
            path = os.path.join(self.tmp, inst)
            with open(path, "w") as f:
                f.write(text)
            out.append(path)
        return out

    def test_units_verify(self):
        for path in self.units():
            r = subprocess.run(["systemd-analyze", "verify", path], capture_output=True,
                               text=True, timeout=60)
            self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
            self.assertNotIn("Unknown", r.stderr)

    def test_units_security(self):
        for path in self.units():
            r = subprocess.run(["systemd-analyze", "security", "--offline=true", path],
                               capture_output=True, text=True, timeout=60)
            m = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", r.stdout)
            self.assertIsNotNone(m, r.stdout + r.stderr)
            print("%s: exposure %s %s" % (os.path.basename(path), m.group(1), m.group(2)))
            self.assertLessEqual(float(m.group(1)), 2.0)

    def test_sysusers_and_tmpfiles(self):
        root = os.path.join(self.tmp, "root")
        os.makedirs(os.path.join(root, "etc"))
        r = subprocess.run(["systemd-sysusers", "--root=" + root,
                            os.path.join(self.prefix, "lib/sysusers.d/spillway.conf")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        with open(os.path.join(root, "etc/passwd")) as f:
            passwd = f.read()
        self.assertRegex(passwd, r"(?m)^spillway:x:\d+:\d+:Spillway write-behind service:/var/lib/spillway:")
        r = subprocess.run(["systemd-tmpfiles", "--root=" + root, "--create",
                            os.path.join(self.prefix, "lib/tmpfiles.d/spillway.conf")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(oct(os.stat(os.path.join(root, "etc/spillway")).st_mode & 0o777), "0o750")
        self.assertTrue(os.path.isdir(os.path.join(root, "var/lib/spillway")))

    def test_alert_rules(self):
        r = subprocess.run(["promtool", "check", "rules",
                            os.path.join(self.prefix, "share/spillway/spillway-alerts.yml")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn("SUCCESS: 15 rules found", r.stdout)

    def test_help_lists_options(self):
        for b, needles in (("spillway-server", ["--config", "--help", "--version"]),
                           ("spillway-flusher", ["--config", "--help", "--version"]),
                           ("spillwayctl", ["--config", "--migrations", "migrate", "check-config",
                                            "queue", "dead list", "dead requeue", "dead drop"])):
            r = subprocess.run([os.path.join(self.prefix, "bin", b), "--help"],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 0)
            for n in needles:
                self.assertIn(n, r.stdout, b)


if __name__ == "__main__":
    unittest.main(verbosity=2)
