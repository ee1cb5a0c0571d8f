"""The cgroup interface both drivers implement (v1.py, v2.py).

`Cgroup` is what the launcher and the control server use, as youki's libcgroups
`CgroupManager` with v1/ and v2/, and runc's fs/ and fs2/. File formats and unit
conversions are in units.py, the counters' records in stats.py.
"""

import errno
import os
import time

from ..errors import ContainerError, usage
from ..spec import LIMITS

PARENT = "container-kernel"  # every cgroup of ours is <hierarchy>/container-kernel/<id>
RMDIR_TIMEOUT = 2.0  # seconds; rmdir is EBUSY until the last killed process has exited
KILL_TIMEOUT = 2.0

# What an errno means on a cgroup file, in words a user can act on.
_HINTS = {
    errno.EACCES: "run as root, or use a cgroup delegated to this user",
    errno.EPERM: "run as root, or use a cgroup delegated to this user",
    errno.EROFS: "cgroupfs is mounted read-only here (inside a container?)",
}


class Cgroup:
    """One container's cgroup. Subclasses: V1Cgroup (v1.py), V2Cgroup (v2.py).

    _write, _mkdir and _rmdir are the only calls that change cgroupfs: tests
    replace them to stand in for the kernel over a fake tree in a temp dir.
    """

    version = None

    def __init__(self, container_id):
        self.id = container_id

    def __repr__(self):
        return f"<{type(self).__name__} {self.id} {self.paths()}>"

    # -- to implement --
    def paths(self):
        """{controller: directory}; v2 has one, {"unified": ...}."""
        raise NotImplementedError

    def create(self, resources):
        """mkdir (PARENT too), switch controllers on (v2), apply(); on failure undo and raise."""
        raise NotImplementedError

    def apply(self, resources):
        """Write every non-None limit of a Resources; safe on a running container."""
        raise NotImplementedError

    def reset(self, field):
        """Lift one limit: "memory" (with swap), "cpus", "pids" or "io"."""
        raise NotImplementedError

    def stats(self):
        """The counters and limits now, as a stats.Stats (the same record on both versions)."""
        raise NotImplementedError

    def oom_kills(self):
        """How many processes the OOM killer took in this cgroup (0 if unknown)."""
        raise NotImplementedError

    def kill(self):
        """SIGKILL every process inside, in child cgroups too."""
        raise NotImplementedError

    def child(self, name):
        """The Cgroup of a child directory `name` (nothing is created here)."""
        raise NotImplementedError

    def _prepare_children(self):
        """What the version needs before a child can have controllers (v2: a leaf)."""

    # -- shared by both versions --
    def _dirs(self):
        """The directories to make and remove: one per hierarchy, comounts once."""
        return list(dict.fromkeys(self.paths().values()))

    def add(self, pid):
        for d in self._dirs():
            self._set(os.path.join(d, "cgroup.procs"), pid)

    def procs(self, recursive=False):
        """PIDs in this cgroup; recursive: in its child cgroups too (a %%sandbox, v2's leaf)."""
        pids = set()
        for d in (self._tree() if recursive else self._dirs()):
            pids.update(int(p) for p in (self._get(os.path.join(d, "cgroup.procs")) or "").split())
        return sorted(pids)

    def _tree(self):
        """Every directory of this cgroup and of its descendants, the deepest first."""
        out = []
        for d in self._dirs():
            # Only our own cgroup's subtree: children exist only if we made them (the
            # container sees cgroupfs read-only), so removing them all is ours to do.
            out += [top for top, _, _ in os.walk(d, topdown=False)]
        return out

    def create_child(self, name, resources):
        """Make a child cgroup with its own (tighter) limits: a %%sandbox. Returns its Cgroup.

        Its limits nest: a child can never use more than this cgroup allows.
        destroy() of this cgroup removes the child too.
        """
        if not name or "/" in name or name in (".", ".."):
            raise usage(f"cgroup: invalid child name {name!r}")
        self._prepare_children()
        child = self.child(name)
        child._create(child._dirs(), resources)
        return child

    def destroy(self):
        """Kill what is left, then remove the directories, children first (PARENT is shared).

        Idempotent. rmdir is EBUSY while a killed process has not finished
        exiting (a millisecond, usually), so it is retried for RMDIR_TIMEOUT.
        """
        if self.procs(recursive=True):
            self.kill()
        deadline = time.monotonic() + RMDIR_TIMEOUT
        for d in self._tree():
            while True:
                try:
                    self._rmdir(d)
                    break
                except FileNotFoundError:
                    break
                except OSError as e:
                    if e.errno == errno.EBUSY and time.monotonic() < deadline:
                        time.sleep(0.005)
                        continue
                    hint = "processes are still inside" if e.errno == errno.EBUSY else ""
                    raise _error("cannot remove", d, e, hint) from None

    def _create(self, dirs, resources):
        """mkdir each leaf (and PARENT), then apply(); undo the leaves on failure."""
        made = []
        try:
            for d in dirs:
                self._make(os.path.dirname(d), exist_ok=True)
                self._make(d, exist_ok=False)
                made.append(d)
            self.apply(resources)
        except BaseException:
            for d in reversed(made):
                try:
                    self._rmdir(d)
                except OSError:
                    pass
            raise

    def _make(self, path, exist_ok):
        try:
            self._mkdir(path)
        except FileExistsError:
            if not exist_ok:
                raise ContainerError(f"cgroup: {path} already exists: another container has this "
                                     "id, or a stale one is left (collect_stale removes those)") from None
        except OSError as e:
            raise _error("cannot create", path, e) from None

    def _kill_loop(self):
        # Without an atomic kill (v2's cgroup.kill), a process can fork between our
        # reading cgroup.procs and signalling it: repeat until empty, with a bound.
        # (runc freezes the cgroup first; pids.max bounds a fork bomb here.)
        import signal  # here, not at the top: it pulls in enum, ~4 ms of every start
        deadline = time.monotonic() + KILL_TIMEOUT
        while True:
            pids = self.procs(recursive=True)
            if not pids or time.monotonic() > deadline:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            time.sleep(0.001)

    # -- reading and writing files --
    def _get(self, path):
        """A file's text, stripped; None if it (or its controller) is absent."""
        if path is None:
            return None
        try:
            with open(path) as f:
                return f.read().strip()
        except FileNotFoundError:
            return None
        except OSError as e:
            if e.errno == errno.ENODEV:  # a v1 cgroup being removed (by our reaper, say)
                return None
            raise

    def _set(self, path, value, hints=None):
        try:
            self._write(path, str(value))
        except OSError as e:
            hint = (hints or {}).get(e.errno, "")
            if e.errno == errno.ENOENT and not os.path.basename(path).startswith("cgroup."):
                hint = hint or "its controller is not available in this cgroup"
            raise _error(f"cannot write {str(value)!r} to", path, e, hint) from None

    # The kernel interface: tests replace these three.
    def _write(self, path, text):
        # One write() per value: cgroupfs parses each write as a whole.
        fd = os.open(path, os.O_WRONLY | os.O_TRUNC)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)

    def _mkdir(self, path):
        os.mkdir(path)

    def _rmdir(self, path):
        os.rmdir(path)


def bad_limit(limit):
    return usage(f"cgroup: cannot reset {limit!r}: use one of {', '.join(LIMITS)}")


def _error(action, path, e, hint=""):
    hint = hint or _HINTS.get(e.errno, "")
    return ContainerError(f"cgroup: {action} {path}: {os.strerror(e.errno)}" + (f" ({hint})" if hint else ""))


