"""The provisioner's side of the warm start: this server's template, and launchers from it.

Client.of(python) starts the server's template (template.py) at the first warm start,
once; spawn() asks it for a launcher, and returns it as a Launched, which
jupyter_client's LocalProvisioner drives as it drives a Popen.
"""

import json
import os
import select
import socket

from ..runtime import fdpass, rundir
from ..runtime import spec as S
from ..runtime.errors import ContainerError
from .template import ROOM, SOCKET, template_dir


class Launched:
    """A launcher forked by the template, as a Popen for jupyter_client's LocalProvisioner:
    pid, poll(), wait(), send_signal(), kill(), terminate(). It is not our child: its
    end comes as the template's "exit CODE" line, its signals go through a pidfd."""

    stdin = stdout = stderr = None

    def __init__(self, pid, conn):
        self.pid = pid
        self.returncode = None
        self._conn = conn
        self._buffer = b""
        try:
            self._pidfd = os.pidfd_open(pid)
        except OSError:
            self._pidfd = None

    def poll(self):
        """None while the launcher lives (its pidfd says), else its code. Once it is dead the
        template's word follows at once: it is waited for, so poll is exact, as Popen's."""
        if self.returncode is None:
            dead = self._pidfd is not None and _readable(self._pidfd, 0)
            self._read(block=dead, timeout=2.0 if dead else None)
        return self.returncode

    def wait(self, timeout=None):
        while self.returncode is None:
            self._read(block=True, timeout=timeout)
            if timeout is not None and self.returncode is None:
                import subprocess
                raise subprocess.TimeoutExpired(str(self.pid), timeout)
        return self.returncode

    def _read(self, block, timeout=None):
        if self._conn is None:  # the template is gone: only the pidfd can tell
            if self._pidfd is not None and _readable(self._pidfd, timeout if block else 0):
                self.returncode = -9  # ended, its code unknown: the template that reaped it died
                self._close()
            return
        if not _readable(self._conn.fileno(), timeout if block else 0):
            return
        chunk = self._conn.recv(4096)
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            word, _, value = line.decode().partition(" ")
            if word == "exit":
                self.returncode = int(value)
        if self.returncode is not None:
            self._close()
        elif not chunk:  # the template died: the launcher may live on, now the host init's
            self._conn.close()
            self._conn = None
            self._read(block, timeout)

    def _close(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None

    def send_signal(self, signum):
        if self.poll() is None and self._pidfd is not None:
            import signal
            signal.pidfd_send_signal(self._pidfd, signum)

    def kill(self):
        import signal
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        import signal
        self.send_signal(signal.SIGTERM)


class Client:
    """The provisioner's template, started at the first warm start of this Jupyter server
    (one per server and interpreter: Client.of)."""

    _clients = {}  # python -> Client: per server process, as jupyter_client's LocalPortCache

    @classmethod
    def of(cls, python):
        client = cls._clients.get(python)
        # A template that died is started again; one that never started is not retried.
        if client is None or (client.problem is None and not client.alive()):
            client = cls._clients[python] = cls(python)
        return client

    def __init__(self, python):
        self.python = python
        self.dir = template_dir(S.default_run_base(os.geteuid() != 0), S.new_id())
        self.process = None
        self.problem = None  # why there is no template: the provisioner then starts cold
        import threading
        self._lock = threading.Lock()  # start() runs in an executor: a crowd starts one template

    @classmethod
    def stop_all(cls):
        """End this server's templates (a test suite's last step: a server's end does it too)."""
        for client in list(cls._clients.values()):
            client.stop()
        cls._clients.clear()

    def alive(self):
        return self.process is None or self.process.poll() is None

    def stop(self):
        """End the template; its launchers, and so their kernels, run on."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()  # no handler there: it dies, and we remove its dir
            self.process.wait()
        rundir.remove_tree(self.dir)

    def start(self):
        """Start the template (once): blocking, ~0.3 s of imports, once per server."""
        with self._lock:
            if self.process is None and not self.problem:
                try:
                    self._start()
                except (OSError, ContainerError) as e:  # an unwritable run base, say
                    self.problem = f"the warm-start template cannot start: {e}"

    def _start(self):
        import subprocess
        run_base = os.path.dirname(self.dir)
        rundir.make_run_base(run_base)
        # Its environment is the kernels' interpreter's, not the server's: the kernels are
        # copies of it (warm.eligible compares what an interpreter reads as it starts).
        from .launch import template_env
        env = template_env()
        self.process = subprocess.Popen(
            [self.python, "-m", "container_kernel.kernel.template", self.dir, ROOM],
            # cwd: -m puts it first on sys.path while it imports; the run base holds no module.
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, env=env, cwd=run_base,
            start_new_session=True, close_fds=True)
        line = self.process.stdout.readline()
        self.process.stdout.close()
        if line != b"ready\n":
            self.problem = f"the warm-start template did not start (exit {self.process.wait()})"

    def spawn(self, argv, env, cwd, stdout=None, stderr=None):
        """Fork a launcher for this kernel argv; returns its Launched."""
        self.start()
        if self.problem:
            raise OSError(self.problem)
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            conn.connect(os.path.join(self.dir, SOCKET))
            data = json.dumps({"argv": list(argv), "env": dict(env), "cwd": str(cwd)}).encode()
            null = os.open(os.devnull, os.O_RDONLY)
            try:
                fds = [null, _fd(stdout, 1), _fd(stderr, 2)]
                fdpass.send(conn, data, fds)
            finally:
                os.close(null)
            line = b""
            while not line.endswith(b"\n"):
                chunk = conn.recv(1)
                if not chunk:
                    raise OSError("the warm-start template closed the connection")
                line += chunk
        except BaseException:
            conn.close()
            raise
        word, _, pid = line.decode().strip().partition(" ")
        return Launched(int(pid), conn)


def _readable(fd, timeout):
    """poll(), not select(): a server with a hundred kernels has fds above 1023."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


def _fd(stream, default):
    """A Popen-style stdout/stderr argument as an fd: None is ours, an int or a file its own."""
    if stream is None:
        return default
    return stream if isinstance(stream, int) else stream.fileno()
