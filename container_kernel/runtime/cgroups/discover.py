"""Finding the host's cgroup filesystems: which version, which hierarchies, what is delegated.

Two generations exist:
- v1 mounts one hierarchy per controller (/sys/fs/cgroup/memory, .../cpu, ...),
  so a container is one directory in *each* hierarchy;
- v2 mounts a single unified tree: a container is one directory, and a parent
  hands controllers down by writing to its cgroup.subtree_control.
The version is the integer 1 or 2 everywhere (None: no cgroupfs).
"""

import os

from .. import procfs
from ..errors import ContainerError, usage
from ..paths import under
from .base import PARENT

ROOT = "/sys/fs/cgroup"
MOUNTINFO = "/proc/self/mountinfo"
V1_CONTROLLERS = ("memory", "cpu", "cpuacct", "pids", "blkio", "devices")
VERSIONS = (1, 2)


def _detect(mounts, root):
    at_root = None
    v1 = False
    for m in mounts:
        if m.point == root:
            at_root = m.fstype  # mounts stacked on one point: the last one is visible
        if m.fstype == "cgroup" and under(m.point, root) and any(
                c in m.super_options for c in V1_CONTROLLERS):
            v1 = True
    if at_root == "cgroup2":
        return 2
    # Hybrid hosts (systemd's default before v2) also mount cgroup2 at root/unified,
    # but with no controllers in it: the controllers are all in the v1 hierarchies.
    return 1 if v1 else None


def detect(root=ROOT, mountinfo=MOUNTINFO):
    """The cgroup version at root: 2 if root is a cgroup2 mount, 1 if v1 controller
    hierarchies are mounted under it (hybrid hosts count as v1), None if there is
    no cgroupfs there."""
    return _detect(procfs.mountinfo(mountinfo), os.path.normpath(root))


def v1_hierarchies(mounts, root=ROOT):
    """{controller: mount point} of the v1 controllers we drive.

    Read from the mount options, not from directory names: hosts that comount
    cpu,cpuacct only add `cpu -> cpu,cpuacct` symlinks, and following both would
    write every file twice. Comounted controllers share one mount point here.
    """
    found = {}
    for m in mounts:
        if m.fstype == "cgroup" and under(m.point, root):
            for controller in m.super_options:
                if controller in V1_CONTROLLERS:
                    found.setdefault(controller, m.point)  # later mounts are binds of the same
    return {c: found[c] for c in V1_CONTROLLERS if c in found}


def check_version(version, what="cgroup"):
    if version not in VERSIONS:
        raise usage(f"{what}: unknown version {version!r}: use 1 or 2")
    return version


def layout(version, root=ROOT, base=None, mountinfo=MOUNTINFO):
    """(version, {controller: <hierarchy>/container-kernel}) for this host."""
    root = os.path.normpath(root)
    mounts = None
    if version is None:
        mounts = procfs.mountinfo(mountinfo)
        version = _detect(mounts, root)
        if version is None:
            raise ContainerError(f"cgroup: no cgroup filesystem is mounted at {root}: "
                                 "resource limits need cgroups (see `mount | grep cgroup`)")
    if check_version(version) == 2:
        return version, {"unified": os.path.join(base or root, PARENT)}
    hierarchies = v1_hierarchies(mounts or procfs.mountinfo(mountinfo), root)
    if not hierarchies:
        raise ContainerError(f"cgroup: no cgroup v1 hierarchy of {', '.join(V1_CONTROLLERS)} "
                             f"is mounted under {root}")
    return version, {c: os.path.join(p, PARENT) for c, p in hierarchies.items()}


def available_controllers(version=None, root=ROOT, mountinfo=MOUNTINFO):
    """The controllers this host offers us: v1 mounted hierarchies, v2 root cgroup.controllers."""
    version = version or detect(root, mountinfo)
    if version == 1:
        return list(v1_hierarchies(procfs.mountinfo(mountinfo), root))
    if version == 2:
        try:
            with open(os.path.join(root, "cgroup.controllers")) as f:
                return f.read().split()
        except OSError:
            return []
    return []


def own_paths(version, root=ROOT, mountinfo=MOUNTINFO, pid="self"):
    """{controller: directory} of a process's own cgroup, as it sees the tree.

    Inside a container with a cgroup namespace the membership reads "/" and the
    mount is already that cgroup; inside Docker without one, the path names the
    host's tree while the mount is the container's own cgroup: take the mount."""
    lines = procfs.cgroup_membership(pid)
    if version == 2:
        rel = next((p for h, _, p in lines if h == 0), "/")
        path = os.path.join(root, rel.lstrip("/"))
        return {"unified": path if os.path.isdir(path) else root}
    paths = {}
    for controller, point in v1_hierarchies(procfs.mountinfo(mountinfo), root).items():
        rel = next((p for _, cs, p in lines if controller in cs), "/")
        path = os.path.join(point, rel.lstrip("/"))
        paths[controller] = path if os.path.isdir(path) else point
    return paths


def delegated_base(root=ROOT, proc_cgroup="/proc/self/cgroup"):
    """(dir, None) of the cgroup v2 subtree delegated to this user, or (None, why not).

    Rootless limits need a subtree the user owns (systemd's user@UID.service with
    Delegate=yes, or any dir an admin chowned): the topmost ancestor of our own
    cgroup that we can write. It must hold no processes itself, since controllers
    are enabled for its children (the no-internal-processes rule); moving a
    process between two cgroups needs write access to their common ancestor,
    which is why it has to be an ancestor of the launcher's own cgroup.
    """
    if detect(root) != 2:
        return None, "cgroup v2 is not the host's cgroup mode (rootless limits need v2)"
    own = next((p for h, _, p in procfs.parse_cgroup_membership(procfs.read(proc_cgroup))
                if h == 0), None)
    if own is None:
        return None, "no cgroup v2 entry in /proc/self/cgroup"
    uid = os.geteuid()
    path, best = os.path.join(root, own.lstrip("/")), None
    while under(path, root) and path != os.path.normpath(root):
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
    if (procfs.read(os.path.join(best, "cgroup.procs")) or "").strip():
        return None, (f"the delegated cgroup {best} holds processes itself: start from a "
                      "child cgroup of it (the no-internal-processes rule)")
    return best, None
