"""TCP on the host -> the kernel's ipc sockets in the container, byte for byte.

A kernel in a network namespace cannot be reached over the host's TCP: its
127.0.0.1 is another loopback. A client that only speaks TCP (it ignored our
provisioner) still gets through here: the launcher, outside the container,
listens on the five TCP ports of the connection file and relays each
connection to the matching unix socket that the kernel bound inside.

No ZeroMQ proxy is needed: ZMTP, ZeroMQ's wire protocol, is the same over tcp://
and ipc://, so the relay copies bytes and never parses a message (CurveZMQ
encryption and HMAC signatures pass through untouched).
"""

import os
import selectors
import socket
import threading

CHANNELS = ("shell", "iopub", "stdin", "control", "hb")
BUFSIZE = 1 << 16


class Relay:
    def __init__(self, routes):
        """routes: [(host, port, unix socket path)]."""
        self.selector = selectors.DefaultSelector()
        self.listeners = []
        self.peer = {}
        self.pending = {}  # socket -> bytes not yet written (the peer was full)
        for host, port, path in routes:
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind((host, port))
            s.listen(16)
            s.setblocking(False)
            self.selector.register(s, selectors.EVENT_READ, path)
            self.listeners.append(s)
        self._wake_r, self._wake_w = os.pipe()
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._loop, name="ck-relay", daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        os.write(self._wake_w, b"x")
        self.thread.join(2)

    def _loop(self):
        while True:
            for key, events in self.selector.select():
                if key.fileobj == self._wake_r:
                    self._close_all()
                    return
                if key.fileobj in self.listeners:
                    self._accept(key.fileobj, key.data)
                elif events & selectors.EVENT_WRITE:
                    self._flush(key.fileobj)
                else:
                    self._relay(key.fileobj)

    def _accept(self, listener, path):
        try:
            client, _ = listener.accept()
        except BlockingIOError:
            return
        kernel = socket.socket(socket.AF_UNIX)
        try:
            kernel.connect(path)
        except OSError:
            client.close()  # the kernel is not up yet: ZeroMQ clients reconnect by themselves
            kernel.close()
            return
        client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for s in (client, kernel):
            s.setblocking(False)
            self.selector.register(s, selectors.EVENT_READ)
        self.peer[client], self.peer[kernel] = kernel, client

    def _relay(self, s):
        try:
            data = s.recv(BUFSIZE)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._close_pair(s)
            return
        self._send(self.peer[s], data)

    def _try_send(self, s, data):
        """How many bytes went out; None when the connection is gone (then both ends are closed)."""
        try:
            return s.send(data)
        except (BlockingIOError, InterruptedError):
            return 0
        except OSError:
            self._close_pair(s)
            return None

    def _send(self, s, data):
        if s in self.pending:
            self.pending[s] += data
            return
        sent = self._try_send(s, data)
        if sent is not None and sent < len(data):
            # Backpressure: stop reading the sender until this side drains.
            self.pending[s] = data[sent:]
            self.selector.modify(s, selectors.EVENT_READ | selectors.EVENT_WRITE)
            self.selector.unregister(self.peer[s])

    def _flush(self, s):
        data = self.pending.pop(s)
        sent = self._try_send(s, data)
        if sent is None:
            return
        if sent < len(data):
            self.pending[s] = data[sent:]
            return
        self.selector.modify(s, selectors.EVENT_READ)
        self.selector.register(self.peer[s], selectors.EVENT_READ)

    def _close_pair(self, s):
        for x in (s, self.peer.get(s)):
            if x is None or x not in self.peer:
                continue
            try:
                self.selector.unregister(x)
            except (KeyError, ValueError):
                pass
            self.pending.pop(x, None)
            del self.peer[x]
            x.close()

    def _close_all(self):
        for s in list(self.peer):
            self._close_pair(s)
        for s in self.listeners:
            self.selector.unregister(s)
            s.close()
        os.close(self._wake_r)
        os.close(self._wake_w)
