"""Shared by the test layers: run the real CLI, probe a container, gate on host capabilities."""
import contextlib
import glob
import json
import os
import signal
import subprocess
import sys
import time

import pytest

from container_kernel.runtime import cgroups
from container_kernel.runtime.rundir import HIDDEN, being_made, owner_alive

BIN = os.path.dirname(sys.executable)
CK = os.path.join(BIN, "container-kernel")
PROBE = ["python3", "-m", "container_kernel.runtime.probe"]
RUN_BASE = "/run/container-kernel"

IS_ROOT = os.geteuid() == 0
# Inside the v2 VM (tests/vm) everything runs under software emulation, ~10x slower: time
# limits of the tests that measure a bound scale by this, the bounds they assert do not.
SLOW = 10 if os.environ.get("CK_IN_V2_VM") else 1
CGROUP = cgroups.detect() if os.path.isdir("/sys/fs/cgroup") else None

requires_root = pytest.mark.skipif(not IS_ROOT, reason="needs root (rootless runs are tested separately)")
requires_cgroups = pytest.mark.skipif(not (IS_ROOT and CGROUP), reason="needs root and a cgroup filesystem")


def ck(*args, timeout=60, **kw):
    """Run `container-kernel ARGS` and return the CompletedProcess (text mode)."""
    return subprocess.run([CK, *args], capture_output=True, text=True, timeout=timeout, **kw)


def install_kernels(prefix, specs):
    """`container-kernel install` of each {name: [options]} into prefix (the real CLI, as
    a user would); returns the prefix's share/jupyter, for JUPYTER_PATH."""
    for name, options in specs.items():
        r = ck("install", "--prefix", str(prefix), "--name", name, *options)
        assert r.returncode == 0, r.stderr
    return str(os.path.join(prefix, "share/jupyter"))


@contextlib.contextmanager
def environ(**values):
    """os.environ with these set for the block (None unsets one), as it was after."""
    old = {name: os.environ.get(name) for name in values}
    try:
        for name, value in values.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, str(value))
        yield
    finally:
        for name, value in old.items():
            os.environ.pop(name, None) if value is None else os.environ.__setitem__(name, value)


def probe(*options):
    r = ck("run", *options, "--", *PROBE)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def start(*args, **kw):
    """Start `container-kernel ARGS` in the background; returns the Popen."""
    return subprocess.Popen([CK, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def state_of(launcher_pid, timeout=10):
    """The state.json of the container whose launcher is launcher_pid, once it is running."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        for path in glob.glob(f"{RUN_BASE}/*/state.json"):
            try:
                with open(path) as f:
                    state = json.load(f)
            except (OSError, ValueError):
                continue
            if state["launcher_pid"] == launcher_pid:
                return state
        time.sleep(0.02)
    raise AssertionError(f"no running container for launcher {launcher_pid}")


def children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(x) for x in f.read().split()]
    except OSError:
        return []


def comm(pid):
    """A process's name, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/comm") as f:
            return f.read().strip()
    except OSError:
        return None


def init_of(launcher_pid):
    """The container's init among a launcher's children (its reaper is the other one)."""
    for pid in children(launcher_pid):
        if comm(pid) == "ck-init":
            return pid
    raise AssertionError(f"launcher {launcher_pid} has no ck-init child")


def alive(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except OSError:
        return False


def traversable(path):
    """Can any user reach path (o+x on every parent)? The rootless and hub tests run the
    venv as other users."""
    path = os.path.abspath(path)
    while path != "/":
        if not os.stat(path).st_mode & 0o001:
            return False
        path = os.path.dirname(path)
    return True


def host_ns(kind, pid="self"):
    return os.stat(f"/proc/{pid}/ns/{kind}").st_ino


def our_cgroups():
    """Every cgroup directory of ours on this host (v1: in each hierarchy; v2: one tree)."""
    found = []
    for parent in glob.glob("/sys/fs/cgroup/*/container-kernel") + glob.glob("/sys/fs/cgroup/container-kernel"):
        for entry in os.scandir(parent):
            if entry.is_dir():
                found.append(entry.path)
    return found


def leftovers():
    """What containers left on this host: cgroups, mounts, processes, run dirs."""
    out = [f"cgroup {p}" for p in our_cgroups()]
    with open("/proc/self/mountinfo") as f:
        out += [f"mount {line.split()[4]}" for line in f if "container-kernel" in line]
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                args = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{pid}/comm") as f:
                comm = f.read().strip()
        except OSError:
            continue
        if not alive(pid):  # a zombie is not running: the host's init reaps it in its own time
            continue
        if pid != os.getpid() and (comm == "ck-init" or "container-kernel run" in args
                                   or "container_kernel.cli" in args):
            out.append(f"process {pid} {args.strip()[:80]}")
    try:
        # A live warm-start template (t-ID) is its Jupyter server's, as long as that lives
        # (kernel/template.py): not left over. A dead one's dir is.
        # Nor is a dir its live maker is making this moment (.new-PID-START-ID): its next step
        # renames it into place.
        out += [f"run dir {RUN_BASE}/{n}" for n in os.listdir(RUN_BASE)
                if not (n.startswith("t-") and owner_alive(os.path.join(RUN_BASE, n)))
                and not (n.startswith(HIDDEN) and being_made(n))]
    except OSError:  # absent, or not ours to read (a non-root run)
        pass
    return out


def within(seconds, predicate, step=0.02):
    """Poll predicate until it holds or seconds pass; its last value. (A fixed sleep before
    an assert is a race on a loaded machine: CI's.)"""
    deadline = time.monotonic() + seconds
    while not (value := predicate()) and time.monotonic() < deadline:
        time.sleep(step)
    return value


def kill_tree(proc):
    """End a launcher we started (by its PID) if a test left it running."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    proc.wait(10)


# Python for inside a container: fork sleeping children until fork fails, print
# "ERRNO_NAME NUMBER_FORKED", then kill and reap them (the pids limit tests).
FORK_UNTIL_REFUSED = """
import errno, os, time
kids, err = [], None
for _ in range(40):
    try:
        pid = os.fork()
    except OSError as e:
        err = errno.errorcode[e.errno]; break
    if pid == 0:
        time.sleep(5); os._exit(0)
    kids.append(pid)
print(err, len(kids))
for k in kids:
    os.kill(k, 9); os.waitpid(k, 0)
"""


def whole_disk(path):
    """(MAJ, MIN) of the whole disk holding path (throttles take whole disks), or None
    where there is no block device under it (tmpfs, overlay, 9p)."""
    from container_kernel.runtime import spec
    st = os.stat(path)
    major, minor = os.major(st.st_dev), os.minor(st.st_dev)
    if major == 0 or not os.path.exists(f"/sys/dev/block/{major}:{minor}"):
        return None
    return spec.block_device(f"{major}:{minor}", "whole_disk")
