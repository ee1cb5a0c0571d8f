"""Cleanup that does not depend on the launcher surviving: a small watcher process.

A SIGKILLed launcher cleans nothing: its container dies with it (init has
PDEATHSIG), but the cgroups and the run dir would stay until someone else came.
So, before it creates anything that could be left (its run dir first), the
launcher forks a reaper in a session of its own (a kill of the launcher's process
group misses it). The reaper holds the read end of a pipe whose only write end the
launcher keeps: EOF comes the moment the launcher is gone, however it went, and the
reaper then removes what is left (all of it idempotent, so a launcher that cleaned
up first leaves it nothing to do) and exits.

The run dir and the cgroup are removed only if the run dir is the launcher's own (its
owner file, or its hidden name while made, names the launcher): a start refused because
another container has that id, or killed before it made anything, must leave that other
container be.
"""

import os
import time
# The C module under `signal`: no enum import on the start path.
import _signal as signal

from . import syscalls as sc
from .errors import ContainerError

PATIENCE = 10.0  # seconds a cgroup may take to drain before the reaper gives up on it


def start(run_dir, cgroup, paths):
    """Fork the reaper for a container's run dir and cgroup (or None), before either is made,
    and for paths of the caller's (a kernel's socket dir), removed whatever happens.

    Returns the write end of its pipe: keep it open while the container lives, close it
    when done (exit closes it too)."""
    me = (os.getpid(), _start_time(os.getpid()))  # the run dir's maker: this launcher
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _reaper(r, w, run_dir, me, cgroup, paths)
    os.close(r)
    return w


def also_kill(w, pid):
    """The reaper kills pid (a helper of the container's outside it: egress.py's slirp4netns)
    if we die; its start time goes along, so a reused PID is never killed."""
    os.write(w, f"{pid} {_start_time(pid)}\n".encode())


def _start_time(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[19].decode()  # field 22, starttime
    except (OSError, IndexError):
        return "?"


def _kill_helpers(said):
    for line in said.decode(errors="replace").splitlines():
        pid, _, start = line.partition(" ")
        if pid.isdigit() and start != "?" and _start_time(int(pid)) == start:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except OSError:
                pass


def _reaper(r, w, run_dir, launcher, cgroup, paths):
    """In the fork. Never returns."""
    try:
        os.close(w)
        os.setsid()
        sc.set_name("ck-reaper")
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
            signal.signal(sig, signal.SIG_IGN)  # only the launcher's end ends us
        signal.pthread_sigmask(signal.SIG_SETMASK, [])
        null = os.open("/dev/null", os.O_RDWR)
        for fd in (0, 1, 2):  # the launcher's stdout may be a pipe someone waits on for EOF
            os.dup2(null, fd)
        os.closerange(3, r)
        os.closerange(r + 1, sc.MAX_FD)
        said = b""
        while chunk := os.read(r, 64):
            said = (said + chunk)[-4096:]
        _collect(run_dir, launcher, cgroup, paths)
        _kill_helpers(said)
    finally:
        os._exit(0)


def _collect(run_dir, launcher, cgroup, paths):
    from .rundir import hidden, made_by, remove_tree
    ours = made_by(run_dir, *launcher)  # asked before anything is removed: no id is reused meanwhile
    deadline = time.monotonic() + PATIENCE
    while ours and cgroup is not None:
        try:
            cgroup.destroy()  # kills what is left, removes the dirs; retries EBUSY itself
            break
        except (ContainerError, OSError):
            if time.monotonic() > deadline:
                break  # `container-kernel gc` (or the next start) takes it from here
            time.sleep(0.1)
    if ours:
        remove_tree(hidden(run_dir, *launcher))
        remove_tree(run_dir)
    for path in paths:
        remove_tree(path)
