"""Run directories: each container's state on the host, and what a dead one left behind.

Every run dir is <run base>/<id> (/run/container-kernel/<id> for root): the
container's root mount point, its state.json for `ps`, and an "owner" file that
names the live process responsible for it (a launcher, or the Jupyter server for
a kernel's socket dir) with its start time. When that process is gone the dir is
stale, and whoever comes next removes it with the container's cgroups.
"""

import os
from collections import namedtuple

from . import cgroups, procfs
from .paths import remove_tree_here as _remove_tree
from .errors import ContainerError


def make_run_base(run_base):
    """Create the dir holding run dirs, and refuse one we do not own.

    A rootless base may sit in /tmp under a predictable name: another user could
    have made it first to watch or swap our sockets, so check, as ssh-agent does."""
    try:
        os.makedirs(run_base, 0o711 if os.geteuid() == 0 else 0o700, exist_ok=True)
    except OSError as e:
        raise _unwritable(run_base, e) from None
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
    """The container's run dir, with its owner file; nothing is left if it fails half-way."""
    make_run_base(spec.run_base)
    # Root inside a user namespace of root's is no one outside: it must still reach its root.
    remapped = "user" in spec.namespaces and not spec.rootless
    make_owned_dir(spec.run_dir, subdirs=("root",), mode=0o711 if remapped else 0o700)


def make_owned_dir(path, subdirs=(), mode=0o700):
    """mkdir path with its owner file already in it, so that no one collecting stale dirs
    (another container's start, gc) ever sees it without one: it is made under a hidden
    name and renamed into place, complete. OSError becomes one line.

    The hidden name carries its maker (PID and start time): a maker SIGKILLed between
    the mkdir and the rename leaves a dir that is stale at once, not after a timeout."""
    tmp = hidden(path, os.getpid(), procfs.start_time(os.getpid()))
    try:
        os.mkdir(tmp, 0o700)
    except OSError as e:
        raise _unwritable(path, e) from None
    try:
        os.chmod(tmp, mode)
        write_owner(tmp)
        for d in subdirs:
            os.mkdir(os.path.join(tmp, d), 0o755)
        os.rename(tmp, path)  # refuses an existing non-empty path: no two owners for one id
    except OSError as e:
        remove_tree(tmp)
        raise _unwritable(path, e) from None


HIDDEN = ".new-"  # .new-PID-START-ID: a run dir being made; stale once its maker is gone


def hidden(path, pid, start):
    """The name path has while the process pid (started at start) makes it."""
    return os.path.join(os.path.dirname(path), f"{HIDDEN}{pid}-{start}-{os.path.basename(path)}")


def made_by(path, pid, start):
    """Is path (or its hidden name, half made) the run dir that process made? Its reaper asks,
    so as never to remove another container's that has the same id."""
    return os.path.isdir(hidden(path, pid, start)) or \
        procfs.read(os.path.join(path, "owner")) == f"{pid} {start}\n"


def _unwritable(path, e):
    why = {28: "the filesystem is full", 30: "the filesystem is read-only",
           17: "it exists already", 39: "it exists already"}.get(e.errno, e.strerror)
    return ContainerError(f"cannot create the run dir {path}: {why} (set XDG_RUNTIME_DIR, or free "
                          "space there)" if os.geteuid() != 0 else
                          f"cannot create the run dir {path}: {why}")


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


def write_state_file(path, state):
    """--state-file: the same state, for the caller that asked (written whole, then renamed)."""
    try:
        with open(path + ".tmp", "w") as f:
            f.write(to_json(state))
        os.rename(path + ".tmp", path)
    except OSError as e:
        raise ContainerError(f"--state-file {path}: cannot write it: {e.strerror}") from None


def live_state(run_dir):
    """The state.json of a running container (its launcher alive), else None."""
    if not owner_alive(run_dir):
        return None
    try:
        with open(os.path.join(run_dir, "state.json")) as f:
            import json  # not on the start path of a plain container: joins only
            state = json.load(f)
    except (OSError, ValueError):
        return None
    pid = state.get("init_pid") if isinstance(state, dict) else None
    # init is the launcher's child: a PID reused by another process has another parent;
    # an init that has exited (a zombie until its launcher waits) has no namespaces left.
    if not isinstance(pid, int) or procfs.ppid(pid) != state.get("launcher_pid") \
            or procfs.live_start_time(pid) is None:
        return None
    return state


def init_pid(run_base, cid):
    """Host PID of a running container's init, or None."""
    state = live_state(os.path.join(run_base, cid)) if not cid.startswith(".") else None
    return state["init_pid"] if state else None


def members(run_base, network):
    """Host PIDs of the inits of running containers on this network (private:NAME)."""
    try:
        names = sorted(os.listdir(run_base))
    except OSError:
        return
    for name in names:
        if name.startswith("."):
            continue
        state = live_state(os.path.join(run_base, name))
        if state and state.get("network") == network:
            yield state["init_pid"]


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
    return procfs.live_start_time(int(pid)) == start


class Stale(namedtuple("Stale", "id kind path why")):
    """Something a dead container left: kind "run dir" or "cgroup"."""
    __slots__ = ()


def stale(run_base):
    """What dead containers left under run_base, and (as root) in the cgroup trees.

    A run dir's "owner" file names the process that made it (a launcher, or the
    Jupyter server for a kernel's socket dir) with its start time, so a reused
    PID does not keep a stale dir alive. A cgroup of ours is stale when no live run
    dir has its id. Only our own named objects are ever listed."""
    out, alive = [], set()
    try:
        names = sorted(os.listdir(run_base))
    except OSError:  # not there yet, or not ours to read: make_run_base says which
        names = []
    for name in names:
        path = os.path.join(run_base, name)
        if owner_alive(path):
            alive.add(name)
        elif name.startswith(HIDDEN) and being_made(name):
            continue  # being made this very moment: its owner file comes next
        else:
            out.append(Stale(name, "run dir", path, _owner_text(path)))
    if os.geteuid() == 0:
        try:
            ids = cgroups.list_ids()
        except ContainerError:  # no cgroupfs here
            ids = []
        # Asked again per id: a container that made its run dir (then its cgroup) after the
        # listing above must not lose its cgroup to us.
        out += [Stale(cid, "cgroup", f"container-kernel/{cid}", "no live run dir has its id")
                for cid in ids if cid not in alive and not owner_alive(os.path.join(run_base, cid))]
    return out


def collect_stale(run_base):
    """Remove what dead containers left (e.g. a SIGKILLed launcher's). Returns the ids
    removed. A cgroup whose processes will not die yet stays for the next sweep."""
    removed = []
    for item in stale(run_base):
        if item.kind == "run dir":
            remove_tree(item.path)
            removed.append(item.id)
        else:
            try:
                cgroups.open_cgroup(item.id).destroy()
            except ContainerError:
                continue
            removed.append(item.id)
    return removed


def collect(run_base, cid):
    """Remove one container's run dir and cgroups, if its owner is gone: for whoever outlives
    its launcher (the kernel provisioner, in the Jupyter server). Safe to race with the
    launcher's own cleanup and its reaper's. True if nothing of it is left."""
    path = os.path.join(run_base, cid)
    if owner_alive(path):
        return False
    if os.geteuid() == 0:
        try:
            cgroups.open_cgroup(cid).destroy()
        except (ContainerError, OSError):
            return False  # still draining, or no cgroupfs: gc (or the next start) retries
    remove_tree(path)
    return True


def being_made(name):
    """Is the hidden dir name (.new-PID-START-ID) being made: is its maker still running?"""
    pid, _, rest = name[len(HIDDEN):].partition("-")
    start = rest.partition("-")[0]
    return pid.isdigit() and procfs.live_start_time(int(pid)) == start


def _owner_text(path):
    text = procfs.read(os.path.join(path, "owner"))
    if not text:
        return "no owner file"
    return f"its owner, PID {text.split()[0]}, is gone"


def remove_tree(path, unshare=True):
    """rm -r that never crosses a mount point, and that two processes may run at once on
    the same tree (the launcher and its reaper, or the provisioner): gone is done. A user's
    tree that refuses it (a rootless overlay's upper and work dirs) is removed from a user
    namespace mapped like the container's (unshare_rm.py)."""
    try:
        _remove_tree(path)
    except PermissionError:
        if not unshare or os.geteuid() == 0:
            raise
        from . import unshare_rm
        unshare_rm.remove([path])
