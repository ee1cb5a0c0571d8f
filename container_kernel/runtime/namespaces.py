"""Namespace kinds: their CLONE_* flag, their /proc/<pid>/ns name, their inode.

Two processes are in the same namespace exactly when /proc/<pid>/ns/<kind>
points at the same inode (the link reads e.g. "net:[4026531840]").
"""

import os

from . import syscalls as sc

# kind (as named in /proc/<pid>/ns) -> (clone flag, what it isolates)
KINDS = {
    "pid": (sc.CLONE_NEWPID, "process IDs: the container has its own PID 1"),
    "mnt": (sc.CLONE_NEWNS, "mount points: its own root and /proc"),
    "uts": (sc.CLONE_NEWUTS, "hostname and domain name"),
    "ipc": (sc.CLONE_NEWIPC, "System V IPC and POSIX message queues"),
    "net": (sc.CLONE_NEWNET, "network devices, addresses, routes, ports"),
    "cgroup": (sc.CLONE_NEWCGROUP, "the view of the cgroup tree: its cgroup appears as /"),
    "user": (sc.CLONE_NEWUSER, "user and group IDs: root inside can be a user outside"),
}


def flags(kinds):
    f = 0
    for kind in kinds:
        f |= KINDS[kind][0]
    return f


def inode(pid, kind):
    """The namespace's inode number, or None if the process is gone or hidden."""
    try:
        return os.stat(f"/proc/{pid}/ns/{kind}").st_ino
    except OSError:
        return None


def inodes(pid="self"):
    return {kind: inode(pid, kind) for kind in KINDS}
