"""A seed: the intermediate stage, forked before the launcher knows anything (a warm start).

Usually the launcher forks its intermediate stage once the spec is built, and the
stage inherits all the launcher's memory. That is harmless when the container's
command is exec'd, as exec drops it. A warm start does not exec: the kernel runs
on in the interpreter a template pre-imported (kernel/template.py), and would keep
whatever the launcher's heap held: the Jupyter server's environment, the host's
mount table, other containers' state files. So the stage is forked first, while
the launcher's memory is still the template's, and it is sent what it needs: the
container's own config, pickled (both ends are ours, and nothing else writes to
the socket), and its fds, as SCM_RIGHTS. runc does the same: its parent sends the
config over the init pipe to a fresh `runc init` (libcontainer/process_linux.go).

    launcher                                seed (forked at the launcher's birth)
      Seed()        ---- fork ---->         waits on its socket, holding nothing
      ...reads the request, builds the spec, the cgroup, the mount plan
      send(spec, steps, fds)  -- socket ->  intermediate.main(...), as if forked now
"""

import os
import pickle
import socket
# The C module under `signal` (which only wraps it to hand out IntEnums).
import _signal as signal

from . import fdpass, intermediate, warm
from . import syscalls as sc
from .errors import RUNTIME
from .init import Payload

# fds sent with the config, in this order; the netns fd last, when there is one.
FDS = ("from_launcher", "to_launcher", "stdout", "stderr", "netns")
MAX_CONFIG = 64 << 20  # a spec, its mount plan and a seccomp program: well under 1 MB


class Seed:
    def __init__(self):
        """Fork the seed now. The caller must be single-threaded (the stage unshares a
        user namespace) and must not yet hold anything the container may not see."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        launcher = os.getpid()
        self.pid = os.fork()
        if self.pid == 0:
            ours.close()
            _grow(theirs, launcher)  # never returns
        theirs.close()
        self._socket = ours
        # What ps shows for the stages: the launcher's command line once it is known, as
        # a stage forked then would show it (init's, the kernelspec's argv, is a lesson).
        self.cmdline = None

    def send(self, spec, steps, root, from_launcher, to_launcher, payload, netns):
        """Give the seed what intermediate.main takes; it runs on as that stage."""
        fds = [from_launcher, to_launcher, *payload.output] + ([] if netns is None else [netns])
        blocked = sorted(signal.pthread_sigmask(signal.SIG_BLOCK, []))  # as a fork would inherit
        data = pickle.dumps((spec, steps, root, payload.seccomp, blocked, self.cmdline))
        with self._socket:
            fdpass.send(self._socket, data, fds)

    def cancel(self):
        """The launcher will not start a container after all: the seed exits at EOF."""
        if self._socket.fileno() >= 0:
            self._socket.close()
            try:
                os.waitpid(self.pid, 0)
            except ChildProcessError:
                pass


def _grow(sock, launcher):
    """The seed: wait for the config, then be the intermediate stage. Never returns."""
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)  # the launcher is single-threaded yet
        if os.getppid() != launcher:  # it died before the line above
            os._exit(RUNTIME)
        # Nothing the launcher held at its birth (its request's socket, say) passes on.
        sc.closerange(3, sock.fileno())
        sc.closerange(sock.fileno() + 1)
        message = fdpass.receive(sock, len(FDS), MAX_CONFIG)
        if message is None:  # EOF: cancelled, or the launcher died
            os._exit(RUNTIME)
        data, fds = message
        sock.close()
        spec, steps, root, seccomp, blocked, cmdline = pickle.loads(data)
        del data
        if cmdline:
            warm.set_cmdline(cmdline)
        signal.pthread_sigmask(signal.SIG_SETMASK, blocked)
        from_launcher, to_launcher, stdout, stderr = fds[:4]
        netns = fds[4] if len(fds) > 4 else None
    except BaseException:
        os._exit(RUNTIME)  # the launcher hears EOF where it expects "unshared", and says so
    intermediate.main(spec, steps, root, from_launcher, to_launcher, Payload((stdout, stderr), seccomp),
                      netns)
