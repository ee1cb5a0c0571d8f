"""cgroups: one interface, two drivers.

A container's limits live in a cgroup: a directory of a special filesystem
whose files are the knobs (memory.max, pids.max, ...). discover.py finds the
host's cgroupfs and its version (1 or 2); base.py is the `Cgroup` interface;
v1.py and v2.py are the drivers (youki's libcgroups v1/ and v2/, runc's fs/ and
fs2/); stats.py holds the counters' records and units.py every file format.

Every cgroup we make is <hierarchy>/container-kernel/<id>: a parent of our own
keeps ours apart from the host's, and makes stale ones easy to find.
"""

import os

from ..errors import ContainerError, usage
from .base import PARENT, Cgroup  # noqa: F401  (the interface, for readers of this package)
from .discover import (MOUNTINFO, ROOT, available_controllers, delegated_base,  # noqa: F401
                       detect, layout, own_paths, v1_hierarchies)


def open_cgroup(container_id, version=None, root=ROOT, base=None, mountinfo=MOUNTINFO):
    """The Cgroup of one container; nothing is created until create().

    version: None (detect from root), 1 or 2. base (v2 only): the directory
    PARENT is made in; root by default, a delegated one when rootless.
    """
    # ids come from the spec, but this path ends in rmdir: never let one climb out.
    if not container_id or "/" in container_id or container_id in (".", ".."):
        raise usage(f"cgroup: invalid container id {container_id!r}")
    version, parents = layout(version, root, base, mountinfo)
    paths = {c: os.path.join(p, container_id) for c, p in parents.items()}
    if version == 2:
        from .v2 import V2Cgroup  # imported on use: a container start loads one driver only
        return V2Cgroup(container_id, paths["unified"], base or os.path.normpath(root))
    from .v1 import V1Cgroup
    return V1Cgroup(container_id, paths)


def open_parent(container_id, version, base=None):
    """--cgroup-parent: the cgroup of a running container of ours, for a child to nest in.
    One line of error if there is none (no cgroup here, or no such container)."""
    if not version:
        raise usage("--cgroup-parent: this container gets no cgroup here (rootless without a "
                    "delegated cgroup v2 subtree), so it cannot nest in another's")
    parent = open_cgroup(container_id, version, base=base)
    if not all(os.path.isdir(p) for p in parent.paths().values()):
        raise usage(f"--cgroup-parent {container_id}: no cgroup of a running container "
                    f"{container_id!r} (see container-kernel ps)")
    return parent


def open_own(root=ROOT, mountinfo=MOUNTINFO):
    """This process's own cgroup, to read (a kernel no launcher of ours watches over:
    Binder's Docker container has a memory limit, say). None if there is no cgroupfs."""
    version = detect(root, mountinfo)
    if version is None:
        return None
    paths = own_paths(version, root, mountinfo)
    if version == 2:
        from .v2 import V2Cgroup
        return V2Cgroup("self", paths["unified"], root)
    from .v1 import V1Cgroup
    return V1Cgroup("self", paths)


def list_ids(version=None, root=ROOT, base=None, mountinfo=MOUNTINFO):
    """Ids of the cgroups under container-kernel/ (in any hierarchy, for v1)."""
    _, parents = layout(version, root, base, mountinfo)
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
    version, _ = layout(version, root, base, mountinfo)
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
