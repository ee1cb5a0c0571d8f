"""Run directories: each container's state on the host, and what a dead one left behind.

Every run dir is <run base>/<id> (/run/container-kernel/<id> for root): the
container's root mount point, its state.json for `ps`, and an "owner" file that
names the live process responsible for it (a launcher, or the Jupyter server for
a kernel's socket dir) with its start time. When that process is gone the dir is
stale, and whoever comes next removes it with the container's cgroups.
"""

import os

from . import cgroups, procfs
from .errors import ContainerError


def make_run_base(run_base):
    """Create the dir holding run dirs, and refuse one we do not own.

    A rootless base may sit in /tmp under a predictable name: another user could
    have made it first to watch or swap our sockets, so check, as ssh-agent does."""
    os.makedirs(run_base, 0o711 if os.geteuid() == 0 else 0o700, exist_ok=True)
    dirs = [run_base]
    if os.path.basename(os.path.dirname(run_base)).startswith("container-kernel-"):
        dirs.append(os.path.dirname(run_base))  # /tmp/container-kernel-UID
    for d in dirs:
        st = os.lstat(d)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not os.path.isdir(d) or os.path.islink(d):
            raise ContainerError(f"{d} is not a private directory of this user "
                                 f"(owner uid {st.st_uid}, mode {oct(st.st_mode & 0o777)}): remove it "
                                 "or set XDG_RUNTIME_DIR")


def make_run_dir(spec):
    make_run_base(spec.run_base)
    os.mkdir(spec.run_dir, 0o700)
    os.mkdir(os.path.join(spec.run_dir, "root"), 0o755)
    write_owner(spec.run_dir)


def write_owner(path, pid=None):
    """Record which live process owns a run dir: when it is gone, the dir is stale."""
    pid = pid or os.getpid()
    with open(os.path.join(path, "owner"), "w") as f:
        f.write(f"{pid} {procfs.start_time(pid)}\n")


def write_state(run_dir, state):
    """state.json: what `ps` shows of a running container (written once it runs)."""
    path = os.path.join(run_dir, "state.json")
    with open(path + ".tmp", "w") as f:
        f.write(to_json(state))
    os.rename(path + ".tmp", path)


def to_json(value):
    """JSON for plain data. (The json module imports re: 5 ms on a 30 ms start path.)"""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_json(str(k))}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}"
                             for c in value) + '"'
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def owner_alive(run_dir):
    try:
        with open(os.path.join(run_dir, "owner")) as f:
            pid, start = f.read().split()
    except (OSError, ValueError):
        return False
    return procfs.start_time(int(pid)) == start


def collect_stale(run_base):
    """Remove the run dirs and cgroups of containers whose owner is gone (e.g. SIGKILLed).

    A run dir's "owner" file names the process that made it (a launcher, or the
    Jupyter server for a kernel's socket dir) with its start time, so a reused
    PID does not keep a stale dir alive."""
    removed = []
    try:
        names = os.listdir(run_base)
    except FileNotFoundError:
        names = []
    for name in names:
        if not owner_alive(os.path.join(run_base, name)):
            remove_tree(os.path.join(run_base, name))
            removed.append(name)
    if os.geteuid() == 0:
        alive = set(os.listdir(run_base)) if os.path.isdir(run_base) else set()
        removed += cgroups.collect_stale(lambda cid: cid in alive)
    return removed


def remove_tree(path):
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if os.path.ismount(entry.path):  # never delete through a mount point
                continue
            remove_tree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(path)
