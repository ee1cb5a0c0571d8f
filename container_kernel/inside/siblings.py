"""Demo containers from a notebook: ask the launcher, outside, to start a sibling container.

    >>> from container_kernel import demo
    >>> r = demo.run(["hostname"], hostname="box")
    >>> r.stdout, r.exit_code, r.init_pid, r.namespaces["uts"]
    ('box\\n', 0, 48211, 4026532871)

The kernel cannot make namespaces itself (no CAP_SYS_ADMIN, seccomp refuses
unshare), so the launcher starts each one as a `container-kernel run` of its own,
in a cgroup inside the kernel's, with the kernel's hardening (kernel/siblings.py).
Its options are run's: the keyword arguments become them, and `options` passes
any others as text (demo.run(["true"], options=["--cpus", "0.5"])).
"""

import sys
import time
from collections import namedtuple

from .. import protocol
from . import client

POLL = 0.05  # seconds between two looks at a running sibling's output


class Result(namedtuple("Result", "stdout stderr exit_code timed_out truncated name init_pid "
                        "processes namespaces kernel_namespaces cgroup uid_map hostname")):
    """A sibling that has ended: its output and exit code, and what the host saw of it.
    namespaces: its inodes by kind (read before its command ran), beside
    kernel_namespaces, this kernel's; processes: as last seen while it ran
    (host_pid, pid inside, host_uid, name)."""
    __slots__ = ()

    def shared_with_kernel(self):
        """The namespace kinds this sibling shares with the kernel (none but the user
        namespace, unless --userns auto gave it one of its own)."""
        mine, kernel = self.namespaces or {}, self.kernel_namespaces or {}
        return sorted(k for k in mine if mine[k] is not None and mine[k] == kernel.get(k))


def run_args(hostname=None, network=None, memory=None, cpus=None, pids=None, init=True,
             user_ns=False, env=None, workdir=None, options=()):
    """The keyword arguments as `container-kernel run` options."""
    argv = []
    for option, value in (("--hostname", hostname), ("--network", network), ("--memory", memory),
                          ("--cpus", cpus), ("--pids", pids), ("--workdir", workdir)):
        if value is not None:
            argv += [option, str(value)]
    for name, value in (env or {}).items():
        argv += ["--env", f"{name}={value}"]
    if user_ns:
        argv += ["--userns", "auto"]
    if not init:
        argv.append("--no-init")
    return argv + list(options)


class Sibling:
    """A running sibling (start()): poll its output, wait for it, kill it."""

    def __init__(self, reply):
        self.name = reply.name
        self.last = reply
        self.stdout, self.stderr = reply.stdout, reply.stderr
        self.processes = reply.processes

    def poll(self, echo=False):
        """Take what it printed since the last look; True while it runs."""
        r = self.last = client.request("run_poll", name=self.name, out=self.last.out,
                                       err=self.last.err)
        self._take(r, echo)
        return r.state == "running"

    def _take(self, r, echo):
        self.stdout += r.stdout
        self.stderr += r.stderr
        if r.processes:
            self.processes = r.processes
        if echo:
            sys.stdout.write(r.stdout)
            sys.stderr.write(r.stderr)

    def wait(self, echo=False):
        while self.poll(echo):
            time.sleep(POLL)
        return self.result()

    def kill(self):
        r = self.last = client.request("run_kill", name=self.name)
        self._take(r, False)
        return self.result()

    def result(self):
        r = self.last
        return Result(self.stdout, self.stderr, r.exit_code, r.timed_out, r.truncated, r.name,
                      r.init_pid, self.processes, r.namespaces, r.kernel_namespaces, r.cgroup,
                      r.uid_map, r.hostname)


def start(command, timeout=30, **kw):
    """Start a sibling running command (a list of words) and return it running."""
    if isinstance(command, str):
        raise protocol.ControlError("give the command as a list of words, e.g. ['sh', '-c', 'echo hi']")
    argv = run_args(**kw) + ["--"] + [str(c) for c in command]
    return Sibling(client.request("run", argv=argv, seconds=int(timeout)))


def run(command, timeout=30, echo=False, **kw):
    """Run command in a sibling container until it ends; its Result."""
    return start(command, timeout=timeout, **kw).wait(echo)
