"""The warm start's template: one pre-imported interpreter that every kernel's launcher is forked from.

A container kernel's start used to be two cold interpreters: the launcher's, then
the kernel's, which imports ipykernel, IPython, zmq and tornado all over again
(~0.3 CPU-s, most of a kernel's start). A template imports all of that once, per
Jupyter server, and forks a launcher for each kernel (Android's zygote, or
multiprocessing's forkserver with preload). The launcher forks its intermediate
stage at once, while its memory is still the template's (runtime/seed.py); only
then does it read its request. So the kernel, which runs on in that interpreter
instead of exec'ing one (runtime/warm.py), holds nothing the launcher read.

    Jupyter server (provisioner)           template  `python -m container_kernel.kernel.template`
      Client.spawn(argv, env, cwd) ---->     accept, fork ----> launcher: Seed(), then read the
      <- "pid N" ... "exit CODE"             reap, report        request; cmd_kernel as always

The template holds no request: it accepts, forks, and reports its launchers' ends;
each launcher reads its own request from the connection. It listens on a unix
socket in a 0700 run dir of its own (t-ID, its owner file naming it), serves only
its own uid, and exits when the server that started it is gone (a pidfd).
"""

import gc
import json
import os
import select
import socket
import sys

from ..runtime import fdpass, rundir

SOCKET = "socket"
MAX_REQUEST = 1 << 20  # argv, env and cwd of one kernel: an env is a few KB

# What the kernels and their launchers import (each pulls in the rest): imported once, here.
PRELOAD = ("ipykernel.kernelapp", "ipykernel.ipkernel", "ipykernel.zmqshell", "ipykernel.comm",
           "IPython.core.completer",
           "container_kernel.inside.extension", "container_kernel.kernel.launch",
           "container_kernel.kernel.control", "container_kernel.runtime.launcher",
           "container_kernel.runtime.seccomp", "container_kernel.runtime.cgroups.v1",
           "container_kernel.runtime.cgroups.v2")


def preload():
    """Import PRELOAD; return the environment variables those imports read. A default
    fixed at import (ipykernel's parent_handle from JPY_PARENT_PID, jupyter_client's
    username from USER) is the template's in every kernel forked from it: a kernel
    whose value differs is exec'd instead (warm.eligible)."""
    import importlib
    reads = set()
    environ = type(os.environ)
    getitem, contains = environ.__getitem__, environ.__contains__

    def spy_getitem(self, key):  # os.environ.get and os.getenv come here too
        reads.add(key)
        return getitem(self, key)

    def spy_contains(self, key):
        reads.add(key)
        return contains(self, key)

    environ.__getitem__, environ.__contains__ = spy_getitem, spy_contains
    try:
        for module in PRELOAD:
            importlib.import_module(module)
    finally:
        environ.__getitem__, environ.__contains__ = getitem, contains
    return frozenset(k for k in reads if isinstance(k, str))


def template_dir(run_base, tid):
    return os.path.join(run_base, f"t-{tid}")


# ---- the template process ------------------------------------------------------------------

# Blanks after the template's own argv: room for each kernel's command line (warm.set_cmdline).
ROOM = " " * 1024


def from_a_sealed_copy():
    """Re-exec this interpreter from a sealed memfd copy of its binary, once.

    Every kernel forked from us has our executable as its /proc/self/exe: a magic link
    that needs no privilege to open, and ours would be the host's file on a host mount
    that is not read-only (a cold kernel's is its exec'd file on the container's
    read-only bind). Root inside could fchmod it setuid through that link. runc meets
    the same hole (CVE-2019-5736) the same way: it runs from a sealed copy
    (libcontainer/nsenter/cloned_binary.c). Writes, chmod and the like then reach a
    file of no one's, 7 MB in memory, that no seal lets change. sys.executable is
    still the real path: the interpreter finds its prefix and venv from argv[0]."""
    if os.readlink("/proc/self/exe").startswith("/memfd:"):
        return
    import fcntl
    fd = os.memfd_create("python", os.MFD_CLOEXEC | os.MFD_ALLOW_SEALING)
    with open("/proc/self/exe", "rb") as f:
        while chunk := f.read(1 << 20):
            os.write(fd, chunk)
    fcntl.fcntl(fd, fcntl.F_ADD_SEALS, fcntl.F_SEAL_SEAL | fcntl.F_SEAL_SHRINK | fcntl.F_SEAL_GROW
                | fcntl.F_SEAL_WRITE)
    os.execve(fd, [sys.executable, *sys.orig_argv[1:]], os.environ)  # fexecve(3)


def main(argv):
    """`python -m container_kernel.kernel.template DIR ROOM`: preload, listen in DIR, serve."""
    path, _ = argv
    from_a_sealed_copy()
    server = os.getppid()
    server_fd = os.pidfd_open(server)
    if os.getppid() != server:
        return 0
    reads = preload()
    gc.collect()
    gc.freeze()  # the children's collections need not touch (and copy) the template's pages
    rundir.make_owned_dir(path)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(os.path.join(path, SOCKET))
    listener.listen(128)
    os.write(1, b"ready\n")
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    try:
        _serve(listener, server, server_fd, reads)
    finally:
        rundir.remove_tree(path)
    return 0


def _serve(listener, server, server_fd, reads):
    launchers = {}  # pidfd -> (pid, connection)
    poller = select.poll()  # not select(): a server with hundreds of kernels has fds > 1023
    for fd in (listener.fileno(), server_fd):
        poller.register(fd, select.POLLIN)
    while True:
        ready = {fd for fd, _ in poller.poll()}
        if server_fd in ready:
            return  # the server is gone; its kernels' launchers see it too, and end
        if listener.fileno() in ready:
            conn, _ = listener.accept()
            if _peer_uid(conn) not in (os.geteuid(), 0):
                conn.close()
                continue
            pid = os.fork()
            if pid == 0:
                _launcher(conn, listener, server, server_fd, launchers, reads)  # never returns
            try:
                os.setpgid(pid, pid)  # here too: no moment in which a killpg of it reaches us
            except OSError:
                pass
            pidfd = os.pidfd_open(pid)
            launchers[pidfd] = (pid, conn)
            poller.register(pidfd, select.POLLIN)
            _say(conn, f"pid {pid}")
        for pidfd in [fd for fd in ready if fd in launchers]:
            pid, conn = launchers.pop(pidfd)
            poller.unregister(pidfd)
            _, status = os.waitpid(pid, 0)
            _say(conn, f"exit {os.waitstatus_to_exitcode(status)}")
            conn.close()
            os.close(pidfd)


def _peer_uid(conn):
    import struct
    creds = conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    return struct.unpack("3i", creds)[1]


def _say(conn, line):
    try:
        conn.sendall(line.encode() + b"\n")
    except OSError:
        pass  # the provisioner is gone: no one to tell


# ---- a launcher, forked from the template ----------------------------------------------------

def _launcher(conn, listener, server, server_fd, launchers, reads):
    """The fork for one kernel: its launcher. Never returns."""
    code = 125
    try:
        listener.close()
        os.close(server_fd)
        for pidfd, (_, other) in launchers.items():  # the other launchers' are not ours
            os.close(pidfd)
            other.close()
        os.setpgid(0, 0)  # a group of its own, as jupyter_client starts a kernel
        from ..runtime.seed import Seed
        seed = Seed()  # before a byte of the request is read
        argv, env, cwd = _receive(conn)
        conn.close()
        from ..runtime import warm
        warm.set_cmdline(argv)  # ps shows what a cold launcher shows: kernel.json's argv
        seed.cmdline = argv
        os.environ.clear()
        os.environ.update(env)
        sys.argv = argv
        code = _run(argv, cwd, seed, server, reads)
    except BaseException as e:  # never a traceback from the template's frames
        os.write(2, f"container-kernel: the warm-start launcher failed: {e}\n".encode())
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


def _receive(conn):
    """The request: a length, JSON {argv, env, cwd}, and fds 0, 1, 2 as SCM_RIGHTS."""
    message = fdpass.receive(conn, 3, MAX_REQUEST)
    if message is None or len(message[1]) != 3:
        raise OSError("an incomplete request")
    data, fds = message
    for target, fd in enumerate(fds):
        os.dup2(fd, target)
        os.close(fd)
    request = json.loads(data)
    return request["argv"], request["env"], request["cwd"]


def _run(argv, cwd, seed, server, reads):
    """What `python -m container_kernel kernel ...` would do, with the seed, in cwd."""
    from ..runtime.options import PROG
    from ..runtime.errors import ContainerError
    from . import launch
    try:
        return launch.cmd_kernel(argv[argv.index("kernel") + 1:], seed=seed, cwd=cwd, server=server,
                                 warm_reads=reads)
    except ContainerError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
