"""A small TCP fault proxy for the tests: it sits between the daemons and
Redis or PostgreSQL on loopback and, on command, delays, stalls, drops or
cuts what passes, so a test can produce lost and half-read replies instead
of only dead processes.

    p = FaultProxy(target_port)      # listens on 127.0.0.1:p.port
    p.cut_all()                      # reset every open connection now
    p.cut_at(n, "down")              # each open connection: cut after n more
                                     # bytes towards the client
    p.drop(True) / p.drop(False)     # discard bytes silently (a lost reply)
    p.stall(True) / p.stall(False)   # hold bytes (a silent peer), then go on
    p.delay(0.2)                     # add latency to every chunk
    p.close()

One thread per connection; every socket is closed by close(). Loopback
only: the target is always 127.0.0.1."""

import select
import socket
import struct
import threading
import time


def _reset(sock):
    """Close with RST instead of FIN: the peer sees a connection reset."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


class _Conn:
    def __init__(self, proxy, client, upstream):
        self.proxy = proxy
        self.client, self.upstream = client, upstream
        self.budget = {"up": None, "down": None}   # bytes left before a cut
        self.closed = False
        self.lock = threading.Lock()

    def close(self):
        with self.lock:
            if self.closed:
                return
            self.closed = True
        _reset(self.client)
        _reset(self.upstream)

    def run(self):
        socks = [self.client, self.upstream]
        try:
            while not self.closed and not self.proxy.stopping:
                try:
                    ready, _, _ = select.select(socks, [], [], 0.1)
                except (OSError, ValueError):
                    break
                if self.proxy.stalled:
                    continue
                for s in ready:
                    direction = "up" if s is self.client else "down"
                    dst = self.upstream if s is self.client else self.client
                    try:
                        data = s.recv(65536)
                    except OSError:
                        data = b""
                    if not data:
                        self.close()
                        return
                    if self.proxy.latency:
                        time.sleep(self.proxy.latency)
                    if self.proxy.dropping:
                        self.proxy.dropped += len(data)
                        continue
                    left = self.budget[direction]
                    if left is not None and len(data) >= left:
                        if left:
                            dst.sendall(data[:left])
                        self.proxy.cuts += 1
                        self.close()
                        return
                    if left is not None:
                        self.budget[direction] = left - len(data)
                    dst.sendall(data)
        except OSError:
            pass
        finally:
            self.close()
            with self.proxy.lock:
                if self in self.proxy.conns:
                    self.proxy.conns.remove(self)


class FaultProxy:
    def __init__(self, target_port, target_host="127.0.0.1"):
        assert target_host in ("127.0.0.1", "localhost", "::1"), "loopback only"
        self.target = (target_host, target_port)
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.port = self.listener.getsockname()[1]
        self.conns = []
        self.lock = threading.Lock()
        self.stopping = False
        self.stalled = self.dropping = False
        self.latency = 0.0
        self.cuts = self.dropped = self.accepted = 0
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _reset(client)
                continue
            for s in (client, upstream):
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            conn = _Conn(self, client, upstream)
            with self.lock:
                self.conns.append(conn)
                self.accepted += 1
            threading.Thread(target=conn.run, daemon=True).start()

    def open_connections(self):
        with self.lock:
            return len(self.conns)

    def cut_all(self):
        """Reset every open connection at once."""
        with self.lock:
            conns = list(self.conns)
        for c in conns:
            c.close()
        self.cuts += len(conns)
        return len(conns)

    def cut_at(self, nbytes, direction="down"):
        """Each open connection is cut after `nbytes` more bytes in
        `direction` ("down": towards the client, i.e. inside a reply)."""
        with self.lock:
            for c in self.conns:
                c.budget[direction] = nbytes

    def drop(self, on):
        self.dropping = on

    def stall(self, on):
        self.stalled = on

    def delay(self, seconds):
        self.latency = seconds

    def close(self):
        self.stopping = True
        try:
            self.listener.close()
        except OSError:
            pass
        self.cut_all()
