"""A small Chrome DevTools Protocol client for the dashboard tests: headless
Chromium on a loopback debugging port, one page, commands over a
WebSocket of our own (RFC 6455 text frames; the standard library has no
WebSocket client). Enough to navigate, evaluate JavaScript and click."""

import base64
import json
import os
import socket
import struct
import subprocess
import tempfile
import time
import urllib.request

import harness


class Browser:
    def __init__(self):
        self.profile = tempfile.mkdtemp(prefix="sw-cdp-")
        self.port = harness.free_port()
        self.proc = subprocess.Popen(
            ["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
             "--no-first-run", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage", "--user-data-dir=" + self.profile,
             "--remote-debugging-address=127.0.0.1", "--remote-debugging-port=%d" % self.port,
             "--window-size=1280,1400", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sock, self.next_id = None, 0
        try:
            harness.wait_for(self._page, 30, "chromium's debugging port")
            self._connect(self.ws_url)
        except BaseException:
            self.close()
            raise

    def _page(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/json/list" % self.port,
                                        timeout=2) as r:
                pages = [t for t in json.loads(r.read()) if t["type"] == "page"]
        except OSError:
            return False
        if pages:
            self.ws_url = pages[0]["webSocketDebuggerUrl"]
        return bool(pages)

    def _connect(self, url):
        rest = url.split("://", 1)[1]
        hostport, path = rest.split("/", 1)
        host, port = hostport.rsplit(":", 1)
        self.sock = socket.create_connection((host, int(port)), timeout=30)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(("GET /%s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                           "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\n"
                           "Sec-WebSocket-Version: 13\r\n\r\n" % (path, hostport, key)).encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, "chromium closed the WebSocket handshake"
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head[:200]
        self.buf = head.split(b"\r\n\r\n", 1)[1]

    def _recv_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            assert chunk, "chromium closed the WebSocket"
            self.buf += chunk
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _send(self, text):
        data = text.encode()
        mask = os.urandom(4)
        n = len(data)
        head = bytes([0x81])
        if n < 126:
            head += bytes([0x80 | n])
        elif n < 65536:
            head += bytes([0x80 | 126]) + struct.pack(">H", n)
        else:
            head += bytes([0x80 | 127]) + struct.pack(">Q", n)
        self.sock.sendall(head + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(data)))

    def _recv(self):
        """One whole message (continuation frames joined)."""
        parts = []
        while True:
            b0, b1 = self._recv_exact(2)
            n = b1 & 0x7f
            if n == 126:
                n = struct.unpack(">H", self._recv_exact(2))[0]
            elif n == 127:
                n = struct.unpack(">Q", self._recv_exact(8))[0]
            parts.append(self._recv_exact(n))
            if b0 & 0x80:
                return b"".join(parts).decode()

    def call(self, method, **params):
        self.next_id += 1
        mid = self.next_id
        self._send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self._recv())
            if msg.get("id") == mid:
                assert "error" not in msg, msg
                return msg.get("result", {})

    def eval(self, expr):
        """The value of a JavaScript expression in the page (awaited)."""
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True,
                      awaitPromise=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def goto(self, url):
        self.call("Page.navigate", url=url)

    def wait(self, expr, timeout=20, what=None):
        """Until `expr` is truthy in the page; returns its value."""
        out = []

        def check():
            try:
                out[:] = [self.eval(expr)]
            except (AssertionError, OSError):
                return False
            return bool(out[0])
        harness.wait_for(check, timeout, what or expr)
        return out[0]

    def click(self, selector):
        """Click the first element matching `selector` (a real DOM click),
        once it is enabled: a disabled button ignores a click."""
        assert self.eval("!!document.querySelector(%s)" % json.dumps(selector)), selector
        self.wait("!document.querySelector(%s).disabled" % json.dumps(selector), 5,
                  "%s to be enabled" % selector)
        self.eval("document.querySelector(%s).click()" % json.dumps(selector))

    def screenshot(self, path):
        data = self.call("Page.captureScreenshot", format="png")["data"]
        with open(path, "wb") as f:
            f.write(base64.b64decode(data))

    def close(self):
        if self.sock:
            try:
                self.sock.close()
            except OSError:
                pass
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
