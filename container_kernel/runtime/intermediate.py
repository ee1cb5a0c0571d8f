"""The intermediate stage: the fork between the launcher and init (launcher.py's tree).

Why a stage of its own? unshare(CLONE_NEWPID) does not move the caller: only its
*next child* is PID 1 of the new namespace (unshare(2)). And the caller of
unshare(CLONE_NEWUSER) must be single-threaded, which only a fresh fork of a
single-threaded launcher is guaranteed to be (youki: main -> intermediate -> init;
runc runs its nsenter C code before the Go runtime starts threads).

It is forked by the launcher once the spec is built, or, for a warm start, at the
launcher's birth, before it has read anything, and then given its inputs (seed.py).
"""

import os
# The C module under `signal` (which only wraps it to hand out IntEnums): importing
# enum would cost ~2.5 ms of a container's start.
import _signal as signal

from . import init, namespaces, stages
from . import syscalls as sc
from .errors import RUNTIME


def main(spec, steps, root, from_launcher, to_launcher, payload, netns):
    """In the fork between launcher and init. Never returns."""
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if netns is not None:  # first: once in a new user namespace, we may not join the host's
            sc.setns(netns, sc.CLONE_NEWNET)
            os.close(netns)
        if "user" in spec.namespaces:
            sc.unshare(sc.CLONE_NEWUSER)
        stages.send(to_launcher, stages.UNSHARED)
        if not stages.wait_go(from_launcher):
            os._exit(RUNTIME)
        if "user" in spec.namespaces and not spec.rootless:
            # Root's own uid 0 is not in the map (--userns auto): become the namespace's root,
            # as runc's child does, or no file it creates could be owned by anyone (EOVERFLOW).
            os.setresgid(0, 0, 0)
            os.setresuid(0, 0, 0)
        # The cgroup was joined just before: the new cgroup namespace is rooted there.
        sc.unshare(namespaces.flags(k for k in spec.namespaces if k != "user"))
        try:
            pid = os.fork()
        except OSError as e:  # EAGAIN: the cgroup (or a parent of it) is at its pids.max
            stages.send_error(to_launcher, RUNTIME, f"cannot fork the container's init: "
                              f"{os.strerror(e.errno)} (the cgroup's pids.max, or a parent's, is "
                              "reached)" if e.errno == 11 else f"cannot fork the container's init: {e}")
            os._exit(RUNTIME)
        if pid == 0:
            init.main(spec, steps, root, from_launcher, to_launcher, payload)
        stages.send(to_launcher, stages.INIT, str(pid))
        os._exit(0)
    except BaseException as e:
        detail = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)
        if "user" in spec.namespaces and isinstance(e, OSError) and e.errno in (1, 28):
            # EPERM: forbidden by sysctl or AppArmor; ENOSPC: the user namespace limit is 0.
            detail += (" (unprivileged user namespaces are not allowed here; "
                       "`container-kernel doctor` says how to enable them)")
        stages.send_error(to_launcher, RUNTIME, f"cannot create the namespaces: {detail}")
        os._exit(RUNTIME)
