"""A probe run inside a container: prints what the container looks like from inside, as JSON.

Tests assert from inside by running this (youki's runtimetest, crun's tests/init.c)
rather than by scraping human output. `python3 -m container_kernel.runtime.probe`.
"""

import json
import os
import socket
import sys

from . import procfs
from .namespaces import inodes


def read(path):
    try:
        with open(path) as f:
            return f.read()
    except OSError as e:
        return f"<{e.strerror}>"


def _readlink(path):
    try:
        return os.readlink(path)
    except OSError as e:
        return f"<{e.strerror}>"


def probe():
    pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
    return {
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "uid": os.getuid(),
        "gid": os.getgid(),
        "hostname": socket.gethostname(),
        "namespaces": inodes(),
        "proc_pids": pids,
        "proc_comms": {p: read(f"/proc/{p}/comm").strip() for p in pids},
        "uid_map": read("/proc/self/uid_map"),
        "gid_map": read("/proc/self/gid_map"),
        "cgroup": read("/proc/self/cgroup"),
        "mountinfo": read("/proc/self/mountinfo"),
        "interfaces": [name for _, name in socket.if_nameindex()],
        "cwd": os.getcwd(),
        "env": dict(os.environ),
        "root_entries": sorted(os.listdir("/")),
        "fds": sorted(int(fd) for fd in os.listdir("/proc/self/fd")),
        "fd_targets": {fd: _readlink(f"/proc/self/fd/{fd}") for fd in os.listdir("/proc/self/fd")},
        "no_new_privs": procfs.status_field("NoNewPrivs"),
        "seccomp": procfs.status_field("Seccomp"),
        "cap_eff": procfs.status_field("CapEff"),
    }


if __name__ == "__main__":
    json.dump(probe(), sys.stdout)
    sys.stdout.write("\n")
