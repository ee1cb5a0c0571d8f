"""The control socket's loop: one thread, many connections, one request served at a time.

Whatever connects comes from inside the container and may be hostile: it may open
connections by the thousand and send nothing, send a line without end, send its
requests in a burst or never read its replies. So no client is ever waited on:
the sockets are non-blocking and multiplexed (selectors: epoll, as select() breaks
past fd 1024), and every connection is bounded in time and in memory:

    at most MAX_CONNECTIONS at once   past it the oldest is closed (_admit says why)
    protocol.TIMEOUT to send its line, then as long again to take its reply
    protocol.MAX_LINE bytes of request, then one error line and close
    protocol.MAX_REPLY bytes of reply, and MAX_PENDING of replies not yet read, all together

Requests are still handled one at a time, in this one thread: no two cgroup writes race.
"""

import errno
import os
import selectors
import socket
import threading
import time

from .. import protocol as P

MAX_CONNECTIONS = 64
ACCEPT_BATCH = 32  # accepted per round: lines already sent are read before more newcomers come in
MAX_PENDING = P.MAX_REPLY  # reply bytes waiting for their readers, all connections together
# Connections not yet accepted wait here: a client connecting with a timeout (client.py)
# gets EAGAIN at once when it is full, so a burst must not fill it (the kernel caps it
# at net.core.somaxconn).
BACKLOG = 1024
_OUT_OF_FDS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)


class _Conn:
    """One client: what it sent so far, the reply left to send (once served), its deadline."""
    __slots__ = ("deadline", "fd", "inbuf", "out", "sock")

    def __init__(self, sock, deadline):
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.out = None
        self.deadline = deadline


class SocketLoop:
    """handle(request line) -> reply line, served on a unix socket from a thread of its own."""

    def __init__(self, path, handle):
        self.path = path
        self.handle = handle
        self.conns = {}   # fd -> _Conn, the oldest first (a dict keeps insertion order)
        self.pending = 0  # bytes of the replies not yet sent
        self._sel = None
        self._listener = None
        self._thread = None
        self._wake_r = self._wake_w = None

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)  # the socket dir is 0700 already; say it twice
        listener.listen(BACKLOG)
        listener.setblocking(False)
        self._listener = listener
        self._wake_r, self._wake_w = os.pipe()
        self._sel = selectors.DefaultSelector()
        self._sel.register(listener, selectors.EVENT_READ, "accept")
        self._sel.register(self._wake_r, selectors.EVENT_READ, "stop")
        self._thread = threading.Thread(target=self._run, name="ck-control", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, close every connection, remove the socket. Safe to call twice."""
        if self._thread:
            os.write(self._wake_w, b"x")
            self._thread.join(10)
            self._thread = None
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
            self._sel.close()
        if self._listener:
            self._listener.close()
            self._listener = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

    # -- the loop --
    def _run(self):
        try:
            while True:
                events = self._sel.select(self._timeout())
                # Connections first, newcomers last: a line that came is served before
                # a flood of connects can push its connection out.
                events.sort(key=lambda e: e[0].data == "accept")
                for key, _ in events:
                    if key.data == "stop":
                        return
                    if key.data == "accept":
                        self._guarded(self._accept)
                    else:
                        self._guarded(self._step, key.data)
                self._expire()
        finally:
            for conn in list(self.conns.values()):
                self._close(conn)

    def _guarded(self, step, *conn):
        # A bug (or a MemoryError) must cost one connection, never the kernel's only window outside.
        try:
            step(*conn)
        except Exception as e:  # noqa: BLE001
            os.write(2, f"container-kernel: control socket: {type(e).__name__}: {e}\n".encode())
            if conn:
                self._close(conn[0])

    def _timeout(self):
        if not self.conns:
            return None
        return max(0.0, min(c.deadline for c in self.conns.values()) - time.monotonic())

    def _accept(self):
        for _ in range(ACCEPT_BATCH):
            try:
                sock, _ = self._listener.accept()
            except BlockingIOError:
                return
            except OSError as e:
                if e.errno in _OUT_OF_FDS:
                    # The listener stays readable: free an fd, or pause, but never spin.
                    if self.conns:
                        self._close(next(iter(self.conns.values())))
                    else:
                        time.sleep(0.05)
                    return
                continue  # ECONNABORTED and the like: that client is gone already
            self._admit(sock)

    def _admit(self, sock):
        # Past the cap the OLDEST goes, not the newcomer: refusing newcomers would let a
        # client hold MAX_CONNECTIONS idle connections and lock the magics out for good,
        # while a newcomer is almost always a client whose line is already here (read
        # below, at once); the oldest is the one that has had longest to send its own.
        if len(self.conns) >= MAX_CONNECTIONS:
            self._close(next(iter(self.conns.values())))
        sock.setblocking(False)
        conn = _Conn(sock, time.monotonic() + P.TIMEOUT)
        self._sel.register(sock, selectors.EVENT_READ, conn)
        self.conns[conn.fd] = conn
        self._read(conn)

    def _step(self, conn):
        if self.conns.get(conn.fd) is not conn:  # closed earlier in this round
            return
        if conn.out is None:
            self._read(conn)
        else:
            self._write(conn)

    def _read(self, conn):
        try:
            # Never more than MAX_LINE held: a line without end costs MAX_LINE bytes, no more.
            chunk = conn.sock.recv(P.MAX_LINE - len(conn.inbuf))
        except BlockingIOError:
            return
        except OSError:
            return self._close(conn)
        if not chunk:  # EOF: what came is the request (a client may shut down instead of "\n")
            return self._serve(conn, bytes(conn.inbuf)) if conn.inbuf else self._close(conn)
        start = len(conn.inbuf)
        conn.inbuf += chunk
        end = conn.inbuf.find(b"\n", start)
        if end >= 0:
            self._serve(conn, bytes(conn.inbuf[:end + 1]))
        elif len(conn.inbuf) >= P.MAX_LINE:
            self._reply(conn, P.encode_error(f"bad request: a line longer than {P.MAX_LINE} bytes"))

    def _serve(self, conn, line):
        conn.inbuf = None
        self._reply(conn, self.handle(line))

    def _reply(self, conn, data):
        conn.inbuf = None
        if len(data) > P.MAX_REPLY:
            data = P.encode_error(f"the reply ({len(data)} bytes) is longer than {P.MAX_REPLY}")
        # Replies no one reads are bounded all together: the oldest unread ones go first.
        while self.pending + len(data) > MAX_PENDING:
            victim = next((c for c in self.conns.values() if c.out is not None), None)
            if victim is None:
                break
            self._close(victim)
        conn.out = memoryview(data)
        self.pending += len(data)
        conn.deadline = time.monotonic() + P.TIMEOUT
        self._sel.modify(conn.sock, selectors.EVENT_WRITE, conn)
        self._write(conn)

    def _write(self, conn):
        try:
            n = conn.sock.send(conn.out, socket.MSG_NOSIGNAL)  # EPIPE, whatever SIGPIPE's disposition
        except BlockingIOError:
            return
        except OSError:  # EPIPE: it left without its reply
            return self._close(conn)
        conn.out = conn.out[n:]
        self.pending -= n
        if not conn.out:
            self._close(conn)

    def _expire(self):
        now = time.monotonic()
        for conn in [c for c in self.conns.values() if c.deadline <= now]:
            if conn.out is None:
                try:  # one try, non-blocking: if it will not take even that, so be it
                    conn.sock.send(P.encode_error(f"bad request: no request line within {P.TIMEOUT:g} s"),
                                   socket.MSG_NOSIGNAL)
                except OSError:
                    pass
            self._close(conn)

    def _close(self, conn):
        if self.conns.pop(conn.fd, None) is None:
            return
        if conn.out is not None:
            self.pending -= len(conn.out)
        conn.out = conn.inbuf = None
        self._sel.unregister(conn.sock)
        conn.sock.close()
