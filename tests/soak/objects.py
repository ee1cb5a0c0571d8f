"""What one container kernel made on the host, named while it runs, looked for after it ended;
and the server's side of a soak: its fds and RSS, the one cell each kernel runs.

Only that kernel's own objects are looked at, never the host's whole state: other
runs (other engineers' tests, a kernel of last week) may hold containers of their own
at the same time. A kernel's objects are its container id's run dir, cgroups and
mounts, its processes (the launcher, its children and theirs, each known by PID and
start time so that a reused PID is not taken for it), its socket dir, and its
connection file with the exit record beside it.
"""
import asyncio
import glob
import os
import time

from container_kernel.kernel.launch import exit_record_path
from tests.helpers import RUN_BASE, children

CLEAN_WITHIN = 2.0  # seconds after a kernel's ending for all of it to be gone
# The kind of each leftover, as left() names them (the first words of each line).
KINDS = ("process", "zombie", "cgroup", "mount", "run dir", "socket dir", "connection file",
         "exit record")


def _stat(pid):
    """(state, ppid, start time) of a PID, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
    except OSError:
        return None
    return fields[0], int(fields[1]), fields[19]


def tree(pid):
    """pid and all its descendants now, each with its start time."""
    out = {}
    todo = [pid]
    while todo:
        p = todo.pop()
        st = _stat(p)
        if st is not None and st[0] != "Z":
            out[p] = st[2]
            todo += children(p)
    return out


class KernelObjects:
    """The host objects of one kernel (of its restarts too): add() it while it runs."""

    def __init__(self):
        self.ids = set()          # container ids: a restart is a new container
        self.procs = {}           # pid -> start time
        self.paths = {}           # path -> kind
        self.ending_began = None  # time.monotonic() when its ending began (a kill, a shutdown call)

    def add(self, container_id, launcher_pid, socket_dir, connection_file):
        self.ids.add(container_id)
        self.procs.update(tree(launcher_pid))
        self.paths[os.path.join(RUN_BASE, container_id)] = "run dir"
        self.paths[socket_dir] = "socket dir"
        self.paths[connection_file] = "connection file"
        self.paths[exit_record_path(connection_file)] = "exit record"

    def add_km(self, km):
        """A kernel's objects as its KernelManager names them, as far as its start got."""
        p = km.provisioner
        if km.connection_file:
            self.paths[km.connection_file] = "connection file"
            self.paths[exit_record_path(km.connection_file)] = "exit record"
        if p is None:
            return
        if p.socket_dir:
            self.paths[p.socket_dir] = "socket dir"
        if p.container_id:
            self.ids.add(p.container_id)
            self.paths[os.path.join(RUN_BASE, p.container_id)] = "run dir"
        if p.process is not None:
            self.procs.update(tree(p.process.pid))

    def add_pid(self, pid):
        """A process of ours in this kernel's story (a simulated server)."""
        st = _stat(pid)
        if st is not None:
            self.procs[pid] = st[2]

    def left(self):
        """What of it is still on the host, one line each: "KIND what"."""
        out = []
        for pid, start in self.procs.items():
            st = _stat(pid)
            if st is None or st[2] != start:
                continue  # gone (its PID may be someone else's by now)
            if st[0] == "Z":
                if st[1] == os.getpid():  # our own child, never waited for: the server leaks it
                    out.append(f"zombie {pid}")
                continue  # the host's init reaps it in its own time
            out.append(f"process {pid} {_cmdline(pid)}")
        for cid in sorted(self.ids):
            out += [f"cgroup {p}" for p in glob.glob(f"/sys/fs/cgroup/*/container-kernel/{cid}")
                    + glob.glob(f"/sys/fs/cgroup/container-kernel/{cid}")]
        names = sorted(self.ids) + [os.path.basename(p) for p, k in self.paths.items() if k == "socket dir"]
        with open("/proc/self/mountinfo") as f:
            out += [f"mount {line.split()[4]}" for line in f if any(n in line for n in names)]
        for path, kind in self.paths.items():
            if os.path.lexists(path):
                out.append(f"{kind} {path}" + _listing(path))
        return out

    async def wait_clean(self, within, known=lambda leftover: False):
        """Poll until nothing is left but known leftovers (of bugs reported, that nobody would
        remove later) or `within` seconds passed: (what is left, seconds taken)."""
        t0 = time.monotonic()
        while True:
            left = self.left()
            elapsed = time.monotonic() - t0
            if all(known(x) for x in left) or elapsed > within:
                return left, elapsed
            await asyncio.sleep(0.02)


def kind_of(leftover):
    return next(k for k in KINDS if leftover.startswith(k + " "))


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()[:80]
    except OSError:
        return "?"


def fds():
    return len(os.listdir("/proc/self/fd"))


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS in /proc/self/status")


async def cell(kc, code):
    """Run code in a kernel (an AsyncKernelClient); return its stdout (the reply must be ok)."""
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, timeout=30, output_hook=hook)
    assert reply["content"]["status"] == "ok", reply["content"]
    return "".join(out)


def _listing(path):
    """ " [names]" of a dir (what it still holds says who left it), "" for a file; a dir
    removed while we look (its cleanup running now) is still reported as there."""
    try:
        return f" {sorted(os.listdir(path))}"
    except NotADirectoryError:
        return ""
    except FileNotFoundError:
        return " [removed while listed]"
