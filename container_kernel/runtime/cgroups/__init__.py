"""cgroups: one interface, two drivers.

A container's limits live in a cgroup: a directory of a special filesystem
whose files are the knobs (memory.max, pids.max, ...). Two generations exist:

- v1 mounts one hierarchy per controller (/sys/fs/cgroup/memory, .../cpu, ...),
  so a container is one directory in *each* hierarchy (v1.py);
- v2 mounts a single unified tree: a container is one directory, and a parent
  hands controllers down by writing to its cgroup.subtree_control (v2.py).

`Cgroup` is the interface the launcher and the magics use, as youki's
libcgroups `CgroupManager` with v1/ and v2/, and runc's fs/ and fs2/. File
formats and unit conversions are in units.py.

Every cgroup we make is <hierarchy>/container-kernel/<id>: a parent of our own
keeps ours apart from the host's, and makes stale ones easy to find.
"""

import errno
import os
import time

from ..errors import ContainerError, usage

PARENT = "container-kernel"
ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "blkio")
FIELDS = ("memory", "cpus", "pids", "io")  # what reset() knows
RMDIR_TIMEOUT = 2.0  # seconds; rmdir is EBUSY until the last killed process has exited
KILL_TIMEOUT = 2.0

# What an errno means on a cgroup file, in words a user can act on.
_HINTS = {
    errno.EACCES: "run as root, or use a cgroup delegated to this user",
    errno.EPERM: "run as root, or use a cgroup delegated to this user",
    errno.EROFS: "cgroupfs is mounted read-only here (inside a container?)",
}


# ---- finding the cgroup filesystems --------------------------------------------------

def _unescape(field):
    # mountinfo writes space, tab, newline and backslash as octal escapes (\040).
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mounts(mountinfo=MOUNTINFO):
    """[(mount point, fstype, super options)] from a mountinfo file.

    A line is "ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [optional...] - FSTYPE SOURCE SUPEROPTS";
    for v1 the controllers of a hierarchy are in SUPEROPTS ("rw,cpu,cpuacct").
    """
    with open(mountinfo) as f:
        text = f.read()
    mounts = []
    for line in text.splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 5 and len(tail) >= 3:
            mounts.append((_unescape(fields[4]), tail[0], tail[2].split(",")))
    return mounts


def _under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _detect(mounts, root):
    at_root = None
    v1 = False
    for point, fstype, options in mounts:
        if point == root:
            at_root = fstype  # mounts stacked on one point: the last one is visible
        if fstype == "cgroup" and _under(point, root) and any(c in options for c in V1_CONTROLLERS):
            v1 = True
    if at_root == "cgroup2":
        return "v2"
    # Hybrid hosts (systemd's default before v2) also mount cgroup2 at root/unified,
    # but with no controllers in it: the controllers are all in the v1 hierarchies.
    return "v1" if v1 else None


def detect(root=ROOT, mountinfo=MOUNTINFO):
    """The cgroup version at root: "v2" if root is a cgroup2 mount, "v1" if v1
    controller hierarchies are mounted under it (hybrid hosts count as v1), None
    if there is no cgroupfs there."""
    return _detect(read_mounts(mountinfo), os.path.normpath(root))


def v1_hierarchies(mounts, root=ROOT):
    """{controller: mount point} of the v1 controllers we drive.

    Read from the mount options, not from directory names: hosts that comount
    cpu,cpuacct only add `cpu -> cpu,cpuacct` symlinks, and following both would
    write every file twice. Comounted controllers share one mount point here.
    """
    found = {}
    for point, fstype, options in mounts:
        if fstype == "cgroup" and _under(point, root):
            for controller in options:
                if controller in V1_CONTROLLERS:
                    found.setdefault(controller, point)  # later mounts are binds of the same
    return {c: found[c] for c in V1_CONTROLLERS if c in found}


def _layout(version, root, base, mountinfo):
    """("1"|"2", {controller: <hierarchy>/container-kernel}) for this host."""
    root = os.path.normpath(root)
    mounts = None
    if version is None:
        mounts = read_mounts(mountinfo)
        version = _detect(mounts, root)
        if version is None:
            raise ContainerError(f"cgroup: no cgroup filesystem is mounted at {root}: "
                                 "resource limits need cgroups (see `mount | grep cgroup`)")
    version = str(version).lstrip("v")
    if version == "2":
        return version, {"unified": os.path.join(base or root, PARENT)}
    if version == "1":
        hierarchies = v1_hierarchies(mounts or read_mounts(mountinfo), root)
        if not hierarchies:
            raise ContainerError(f"cgroup: no cgroup v1 hierarchy of {', '.join(V1_CONTROLLERS)} "
                                 f"is mounted under {root}")
        return version, {c: os.path.join(p, PARENT) for c, p in hierarchies.items()}
    raise usage(f"cgroup: unknown version {version!r}: use 1 or 2")


def open_cgroup(container_id, version=None, root=ROOT, base=None, mountinfo=MOUNTINFO):
    """The Cgroup of one container; nothing is created until create().

    version: None (detect from root), "v1"/"v2" or 1/2. base (v2 only): the
    directory PARENT is made in; root by default, a delegated one when rootless.
    """
    # ids come from the spec, but this path ends in rmdir: never let one climb out.
    if not container_id or "/" in container_id or container_id in (".", ".."):
        raise usage(f"cgroup: invalid container id {container_id!r}")
    version, parents = _layout(version, root, base, mountinfo)
    paths = {c: os.path.join(p, container_id) for c, p in parents.items()}
    if version == "2":
        from .v2 import V2Cgroup  # imported on use: a container start loads one driver only
        return V2Cgroup(container_id, paths["unified"], base or os.path.normpath(root))
    from .v1 import V1Cgroup
    return V1Cgroup(container_id, paths)


def list_ids(version=None, root=ROOT, base=None, mountinfo=MOUNTINFO):
    """Ids of the cgroups under container-kernel/ (in any hierarchy, for v1)."""
    _, parents = _layout(version, root, base, mountinfo)
    ids = set()
    for parent in set(parents.values()):
        try:
            ids.update(e.name for e in os.scandir(parent) if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            pass
    return sorted(ids)


def collect_stale(is_alive, version=None, root=ROOT, base=None, mountinfo=MOUNTINFO):
    """Destroy our cgroups whose container is gone (is_alive(id) is False).

    Returns the ids removed. One that cannot be removed yet (its processes will
    not die) is skipped, and stays listed by list_ids for the next sweep.
    """
    version, _ = _layout(version, root, base, mountinfo)
    removed = []
    for cid in list_ids(version, root, base, mountinfo):
        if is_alive(cid):
            continue
        try:
            open_cgroup(cid, version, root, base, mountinfo).destroy()
        except ContainerError:
            continue
        removed.append(cid)
    return removed


# ---- the interface -------------------------------------------------------------------

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
        """The same JSON-ready shape on both versions; None is unlimited or unavailable:
        {"version", "path": paths(),
         "memory": {limit, swap_limit (memory+swap, docker's meaning), usage, peak, oom_kills, failcnt},
         "cpu": {cpus, usage_ns, nr_periods, nr_throttled, throttled_ns},
         "pids": {limit, current, events_max},
         "io": {limits: [{major, minor, rbps, wbps}], read_bytes, write_bytes}}"""
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


def _error(action, path, e, hint=""):
    hint = hint or _HINTS.get(e.errno, "")
    return ContainerError(f"cgroup: {action} {path}: {os.strerror(e.errno)}" + (f" ({hint})" if hint else ""))


def available_controllers(version=None, root=ROOT, mountinfo=MOUNTINFO):
    """The controllers this host offers us: v1 mounted hierarchies, v2 root cgroup.controllers."""
    version = str(version or detect(root, mountinfo) or "").lstrip("v")
    if version == "1":
        return list(v1_hierarchies(read_mounts(mountinfo), root))
    if version == "2":
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                return f.read().split()
        except OSError:
            return []
    return []


def delegated_base(root=ROOT, proc_cgroup="/proc/self/cgroup"):
    """(dir, None) of the cgroup v2 subtree delegated to this user, or (None, why not).

    Rootless limits need a subtree the user owns (systemd's user@UID.service with
    Delegate=yes, or any dir an admin chowned): the topmost ancestor of our own
    cgroup that we can write. It must hold no processes itself, since controllers
    are enabled for its children (the no-internal-processes rule); moving a
    process between two cgroups needs write access to their common ancestor,
    which is why it has to be an ancestor of the launcher's own cgroup.
    """
    if detect(root) != "v2":
        return None, "cgroup v2 is not the host's cgroup mode (rootless limits need v2)"
    try:
        with open(proc_cgroup) as f:
            own = [l.split(":", 2)[2].strip() for l in f if l.startswith("0::")][0]
    except (OSError, IndexError):
        return None, "no cgroup v2 entry in /proc/self/cgroup"
    uid = os.geteuid()
    path, best = os.path.join(root, own.lstrip("/")), None
    while _under(path, root) and path != os.path.normpath(root):
        try:
            owned = os.stat(path).st_uid == uid
        except OSError:
            break
        if not (owned and os.access(os.path.join(path, "cgroup.procs"), os.W_OK)
                and os.access(os.path.join(path, "cgroup.subtree_control"), os.W_OK)):
            break
        best = path
        path = os.path.dirname(path)
    if best is None:
        return None, f"no cgroup delegated to uid {uid} around {own} (systemd: user@{uid}.service with Delegate=yes)"
    try:
        with open(os.path.join(best, "cgroup.procs")) as f:
            if f.read().strip():
                return None, (f"the delegated cgroup {best} holds processes itself: start from a "
                              "child cgroup of it (the no-internal-processes rule)")
    except OSError:
        pass
    return best, None
