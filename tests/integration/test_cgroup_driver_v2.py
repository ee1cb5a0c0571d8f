"""The v2 driver on a real cgroup-v2-only kernel (skipped elsewhere, with the reason).

`make test-v2` (tests/vm/) boots such a kernel when the host is v1 or hybrid. Only
ever touches <root>/container-kernel/test-<random>: the machine's own cgroups are
not ours to change. The v2 rules checked here are the kernel's, not a fake's:
controllers handed down through cgroup.subtree_control, the no-internal-processes
rule (also for a child cgroup made in a running container's), memory.events and
memory.peak, cpu.max, io.max keyed by MAJ:MIN, pids.max, cgroup.kill, and delegation
(a subtree chowned to a user, as systemd's Delegate=yes: rootless limits).

Measured figures are printed as "measured: ..." lines (the VM harness reports them).
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import pytest

from container_kernel.runtime import cgroups
from container_kernel.runtime.cgroups.stats import IORule, Pids
from container_kernel.runtime.errors import ContainerError
from container_kernel.runtime.spec import LIMITS, IOLimit, Resources
from tests.helpers import whole_disk

MiB = 1 << 20
WANTED = ("memory", "cpu", "pids", "io")


@pytest.fixture
def cg():
    if os.geteuid() != 0:
        pytest.skip("needs root: the cgroup v2 root is root's to write")
    version = cgroups.detect() if os.path.isdir(cgroups.ROOT) else None
    if version != 2:
        pytest.skip(f"needs a cgroup v2 host (this one: {version or 'no cgroupfs'}; "
                    "make test-v2 runs this in a v2 VM)")
    missing = [c for c in WANTED if c not in cgroups.available_controllers(2)]
    if missing:
        pytest.skip(f"the v2 root does not offer {', '.join(missing)}")
    cg = cgroups.open_cgroup("test-" + os.urandom(4).hex(), 2)
    yield cg
    try:
        cg.destroy()
    finally:
        assert not os.path.exists(cg.path), f"cgroup left behind: {cg.path}"


def cat(path, name=None):
    with open(os.path.join(path, name) if name else path) as f:
        return f.read().strip()


def keyed(path, name):
    return dict((k, int(v)) for k, v in (line.split() for line in cat(path, name).splitlines()))


def waiting(code):
    """A Python child that waits for a line on stdin before it acts: it is in the cgroup first."""
    return subprocess.Popen([sys.executable, "-c", "input()\n" + code], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def go(*ps):
    for p in ps:
        p.stdin.write("go\n")
        p.stdin.flush()


def test_controllers_limits_live_changes_kill_and_destroy(cg, procs):
    disk = whole_disk("/var/tmp") or whole_disk("/tmp") or whole_disk("/")
    io = (IOLimit("disk", disk[0], disk[1], 10 * MiB),) if disk else ()
    cg.create(Resources())
    parent = os.path.dirname(cg.path)
    assert os.path.basename(parent) == cgroups.PARENT and os.path.dirname(parent) == cgroups.ROOT
    # Controllers reach a cgroup only through every ancestor's subtree_control.
    for d in (cgroups.ROOT, parent):
        assert set(WANTED) <= set(cat(d, "cgroup.subtree_control").split()), d
    assert set(WANTED) <= set(cat(cg.path, "cgroup.controllers").split())
    assert cat(cg.path, "cgroup.subtree_control") == ""  # a leaf: its processes are allowed

    sleep = subprocess.Popen(["sleep", "30"])
    procs.append(sleep)
    cg.add(sleep.pid)
    assert cg.procs() == [sleep.pid]
    assert cat(f"/proc/{sleep.pid}/cgroup") == f"0::/{cgroups.PARENT}/{cg.id}"

    cg.apply(Resources(memory=64 * MiB, memory_swap=64 * MiB, cpus=0.5, pids=10, io_write_bps=io))
    has_swap = os.path.exists(os.path.join(cg.path, "memory.swap.max"))
    assert cat(cg.path, "memory.max") == str(64 * MiB)
    if has_swap:
        assert cat(cg.path, "memory.swap.max") == "0"  # v2 counts swap alone: no swap at all
    assert cat(cg.path, "cpu.max") == "50000 100000"
    assert cat(cg.path, "pids.max") == "10"
    if disk:
        assert cat(cg.path, "io.max") == f"{disk[0]}:{disk[1]} rbps=max wbps={10 * MiB} riops=max wiops=max"

    s = cg.stats()
    assert s.version == 2 and s.paths == {"unified": cg.path}
    assert s.memory.limit == 64 * MiB
    assert s.memory.swap_limit == (64 * MiB if has_swap else None)
    assert s.memory.oom_kills == 0 and s.memory.failcnt == 0
    assert s.memory.usage is not None
    assert s.memory.peak is not None or not os.path.exists(os.path.join(cg.path, "memory.peak"))
    assert s.cpu.cpus == 0.5 and s.cpu.usage_ns >= 0 and s.cpu.nr_throttled >= 0
    assert s.pids == Pids(limit=10, current=1, events_max=0)
    if disk:
        assert s.io.limits == (IORule(disk[0], disk[1], None, 10 * MiB),)
    assert s.io.read_bytes >= 0 and s.io.write_bytes >= 0

    # Live changes. Unlike v1 there is no order to respect: memory.max may go below
    # usage (the kernel reclaims) and above the old memory+swap total.
    cg.apply(Resources(memory=32 * MiB, memory_swap=32 * MiB))
    assert cg.stats().memory.limit == 32 * MiB
    cg.apply(Resources(memory=128 * MiB, memory_swap=256 * MiB))
    s = cg.stats().memory
    assert s.limit == 128 * MiB
    if has_swap:
        assert s.swap_limit == 256 * MiB and cat(cg.path, "memory.swap.max") == str(128 * MiB)
    if disk:  # rbps added for the same device: wbps keeps its value
        cg.apply(Resources(io_read_bps=(IOLimit("disk", disk[0], disk[1], 5 * MiB),)))
        assert cg.stats().io.limits == (IORule(disk[0], disk[1], 5 * MiB, 10 * MiB),)
    for field in LIMITS:
        cg.reset(field)
    s = cg.stats()
    assert (s.memory.limit, s.memory.swap_limit, s.cpu.cpus, s.pids.limit) == \
        (None, None, None, None)
    assert s.io.limits == () and cat(cg.path, "io.max") == ""

    cg.kill()
    assert sleep.wait(timeout=5) == -signal.SIGKILL
    cg.destroy()
    assert not os.path.exists(cg.path)
    cg.destroy()  # idempotent
    assert cg.id not in cgroups.list_ids()


def test_no_internal_processes_rule(cg, procs):
    """A non-root cgroup holds processes or hands controllers down, never both."""
    inner = cgroups.open_cgroup("inner", 2, base=cg.path)
    inner_parent = os.path.join(cg.path, cgroups.PARENT)
    cg.create(Resources())
    sleep = subprocess.Popen(["sleep", "30"])
    procs.append(sleep)
    cg.add(sleep.pid)
    try:
        with pytest.raises(ContainerError, match="Device or resource busy.*no-internal-processes"):
            inner.create(Resources(pids=5))
        assert not os.path.exists(inner.path)
        cg.kill()
        sleep.wait(timeout=5)
        inner.create(Resources(pids=5))  # emptied: now it may hand controllers down
        assert "pids" in cat(cg.path, "cgroup.subtree_control").split()
        assert cat(inner.path, "pids.max") == "5"
        late = subprocess.Popen(["sleep", "30"])
        procs.append(late)
        with pytest.raises(ContainerError, match="Device or resource busy"):
            cg.add(late.pid)  # ...and so it may no longer hold processes
        inner.add(late.pid)
        assert inner.procs() == [late.pid] and cg.procs() == []
    finally:
        inner.destroy()
        if os.path.isdir(inner_parent):
            os.rmdir(inner_parent)


def test_limits_are_enforced(cg, procs):
    cg.create(Resources(memory=32 * MiB, memory_swap=32 * MiB, pids=4))
    hog = waiting("b = bytearray(128 << 20); print(len(b))")
    forker = subprocess.Popen(["sh", "-c", "read x; for i in 1 2 3 4 5 6; do sleep 5 & done; wait"],
                              stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    procs += [hog, forker]
    for p in (hog, forker):
        cg.add(p.pid)
    hog.communicate("go\n", timeout=60)
    assert hog.returncode == -signal.SIGKILL  # the OOM killer, inside the cgroup only
    go(forker)
    s = cg.stats()
    events = keyed(cg.path, "memory.events")
    assert s.memory.oom_kills == events["oom_kill"] >= 1 and cg.oom_kills() == events["oom_kill"]
    assert s.memory.failcnt == events["max"] >= 1  # v2 counts every hit of memory.max
    if os.path.exists(os.path.join(cg.path, "memory.peak")):  # Linux 5.19+
        assert 0 < s.memory.peak <= 32 * MiB
        print(f"measured: OOM at memory.max 32 MiB: memory.peak {s.memory.peak / MiB:.1f} MiB, "
              f"oom_kill {events['oom_kill']}, max events {events['max']}")
    deadline = time.monotonic() + 10
    while not cg.stats().pids.events_max and time.monotonic() < deadline:
        time.sleep(0.01)
    s = cg.stats()
    assert s.pids.events_max >= 1 and s.pids.current <= 4
    print(f"measured: pids.max 4: pids.events max {s.pids.events_max}, "
          f"pids.current {s.pids.current}")
    assert len(cg.procs()) >= 2
    cg.destroy()  # kills them first: rmdir would be EBUSY otherwise
    assert not os.path.exists(cg.path)
    forker.wait(timeout=5)


def test_cpu_max_throttles_two_busy_processes_to_half_a_cpu(cg, procs):
    if os.cpu_count() < 2:
        pytest.skip("needs 2 CPUs: one busy process alone would not reach the quota")
    cg.create(Resources(cpus=0.5))
    spin = "import time\nend = time.monotonic() + 3\nwhile time.monotonic() < end: pass"
    busy = [waiting(spin) for _ in range(2)]
    procs += busy
    for p in busy:
        cg.add(p.pid)
    before, t0 = cg.stats().cpu, time.monotonic()
    go(*busy)
    for p in busy:
        assert p.wait(timeout=60) == 0
    after, wall = cg.stats().cpu, time.monotonic() - t0
    ratio = (after.usage_ns - before.usage_ns) / 1e9 / wall
    throttled = after.nr_throttled - before.nr_throttled
    print(f"measured: cpu.max 50000 100000, 2 busy processes for 3 s: {ratio:.3f} CPUs, "
          f"{throttled} of {after.nr_periods - before.nr_periods} periods throttled, "
          f"{(after.throttled_ns - before.throttled_ns) / 1e9:.2f} s throttled")
    assert 0.4 <= ratio <= 0.6, ratio
    assert throttled > 0 and after.throttled_ns > before.throttled_ns


def test_io_max_throttles_direct_writes_on_a_real_disk(cg, procs):
    base = "/var/tmp"
    disk = whole_disk(base)
    if disk is None:
        pytest.skip(f"{base} is not on a real block device here: the write rate cannot be measured")
    rate, size = 4 * MiB, 12 * MiB
    cg.create(Resources(io_write_bps=(IOLimit("disk", disk[0], disk[1], rate),)))
    path = os.path.join(base, f"ck-v2-io-{os.getpid()}")
    writer = waiting(f"""
import mmap, os, time
buf = mmap.mmap(-1, 1 << 20)            # page-aligned, as O_DIRECT wants
buf.write(b'x' * (1 << 20))
fd = os.open({path!r}, os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
t0 = time.monotonic()
for _ in range({size // MiB}):
    os.write(fd, buf)
os.fsync(fd)
print({size} / (time.monotonic() - t0))
""")
    procs.append(writer)
    cg.add(writer.pid)
    try:
        before = cg.stats().io.write_bytes
        out, err = writer.communicate("go\n", timeout=120)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    if writer.returncode and "Invalid argument" in err:
        pytest.skip(f"O_DIRECT is not supported on {base}'s filesystem here")
    assert writer.returncode == 0, err
    measured = float(out)
    written = cg.stats().io.write_bytes - before
    print(f"measured: io.max {disk[0]}:{disk[1]} wbps=4 MiB/s, {size // MiB} MiB O_DIRECT: "
          f"{measured / MiB:.2f} MiB/s; io.stat wbytes +{written / MiB:.1f} MiB")
    assert written >= size  # the cgroup's own counter saw the writes
    assert rate * 0.5 <= measured <= rate * 1.25, f"{measured / MiB:.1f} MiB/s with a 4 MiB/s limit"


def test_cgroup_kill_takes_a_forking_tree_at_once(cg, procs):
    cg.create(Resources(pids=64))
    if not os.path.exists(os.path.join(cg.path, "cgroup.kill")):
        pytest.skip("no cgroup.kill here (Linux < 5.14): destroy() falls back to a kill loop")
    # A shell that keeps forking: a read-then-kill loop could always miss the newest child.
    forker = subprocess.Popen(["sh", "-c", "read x; while :; do sleep 30 & done"],
                              stdin=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    procs.append(forker)
    cg.add(forker.pid)
    go(forker)
    deadline = time.monotonic() + 20
    while len(cg.procs()) < 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(cg.procs()) >= 10
    cg.kill()
    assert forker.wait(timeout=5) == -signal.SIGKILL
    deadline = time.monotonic() + 5
    while keyed(cg.path, "cgroup.events")["populated"] and time.monotonic() < deadline:
        time.sleep(0.01)
    assert keyed(cg.path, "cgroup.events")["populated"] == 0 and cg.procs() == []


def test_create_child_moves_the_processes_to_a_leaf_and_nests_limits(cg, procs):
    """A child cgroup with controllers (a %%sandbox) in a running container's cgroup."""
    cg.create(Resources(memory=256 * MiB, pids=64))
    # What a kernel looks like: threads, and a child it has not reaped (a zombie).
    kernel = waiting("""
import os, threading, time
for _ in range(3):
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()
if os.fork() == 0:
    os._exit(0)
time.sleep(0.2)
print('ready', flush=True)
time.sleep(60)
""")
    sleeper = subprocess.Popen(["sleep", "60"])
    procs += [kernel, sleeper]
    cg.add(kernel.pid)
    cg.add(sleeper.pid)
    go(kernel)
    assert kernel.stdout.readline() == "ready\n"

    child = cg.create_child("sandbox", Resources(memory=32 * MiB, memory_swap=32 * MiB, pids=8))
    leaf = os.path.join(cg.path, "main")
    assert cat(cg.path, "cgroup.procs") == ""  # the no-internal-processes rule, kept
    assert {kernel.pid, sleeper.pid} <= {int(p) for p in cat(leaf, "cgroup.procs").split()}
    assert set(WANTED) <= set(cat(cg.path, "cgroup.subtree_control").split())
    assert cat(child.path, "memory.max") == str(32 * MiB) and cat(child.path, "pids.max") == "8"
    assert cg.create_child("other", Resources(pids=4)).procs() == []  # the leaf is made once

    # The child's limit is its own: its hog is OOM-killed, the container's processes live on.
    hog = waiting("b = bytearray(128 << 20)")
    procs.append(hog)
    child.add(hog.pid)
    hog.communicate("go\n", timeout=60)
    assert hog.returncode == -signal.SIGKILL
    assert child.oom_kills() >= 1 and kernel.poll() is None and sleeper.poll() is None
    assert {kernel.pid, sleeper.pid} <= set(cg.procs(recursive=True))
    assert cg.stats().memory.usage > 0  # the container's cgroup counts its whole subtree

    cg.destroy()  # cgroup.kill takes the subtree; the children go first, then the cgroup
    assert kernel.wait(timeout=5) == -signal.SIGKILL and sleeper.wait(timeout=5) == -signal.SIGKILL
    assert not os.path.exists(cg.path)


# ---- delegation: a user's own subtree (rootless limits) ------------------------------------

NOBODY = 65534
DELEGATE_FILES = ("cgroup.procs", "cgroup.subtree_control", "cgroup.threads")


def _readable_by_all(path):
    path = os.path.abspath(path)
    while path != "/":
        if not os.stat(path).st_mode & 0o005:
            return False
        path = os.path.dirname(path)
    return True


@pytest.fixture
def delegated(cg):
    """<cg>/user owned by uid NOBODY as systemd's Delegate=yes leaves it, the user's
    processes in its child <cg>/user/session. Returns a starter of such processes."""
    import container_kernel
    for path in (sys.executable, container_kernel.__file__):
        if not _readable_by_all(path):
            pytest.skip(f"{path} is not readable by other users: the delegated user cannot run it")
    cg.create(Resources())
    with open(os.path.join(cg.path, "cgroup.subtree_control"), "w") as f:
        f.write(" ".join("+" + c for c in WANTED))
    top = os.path.join(cg.path, "user")
    session = os.path.join(top, "session")
    for d in (top, session):
        os.mkdir(d)
        for path in (d, *(os.path.join(d, name) for name in DELEGATE_FILES)):
            os.chown(path, NOBODY, NOBODY)

    # Its own XDG_RUNTIME_DIR (a systemd user session's /run/user/UID), on /run's tmpfs.
    runtime_dir = tempfile.mkdtemp(prefix="ck-v2-user-", dir="/run")
    os.chown(runtime_dir, NOBODY, NOBODY)

    def start(code):
        """A Python child as NOBODY, in session before it reads its "go" line."""
        env = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "XDG_RUNTIME_DIR": runtime_dir}
        p = subprocess.Popen([sys.executable, "-c", "input()\n" + code], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/tmp",
                             env=env, user=NOBODY, group=NOBODY, extra_groups=[])
        with open(os.path.join(session, "cgroup.procs"), "w") as f:
            f.write(str(p.pid))
        return p

    yield top, start
    # cg's destroy (the fixture's) kills and removes the whole subtree, the user's dirs too.
    shutil.rmtree(runtime_dir)


def test_delegated_subtree_driver_as_the_user(delegated, procs):
    top, start = delegated
    user = start("""
import json, subprocess, sys
from container_kernel.runtime import cgroups
from container_kernel.runtime.spec import Resources
base, why = cgroups.delegated_base()
out = {"base": base, "why": why}
c = cgroups.open_cgroup("mine", 2, base=base)
c.create(Resources(memory=32 << 20, memory_swap=32 << 20, pids=8))
hog = subprocess.Popen([sys.executable, "-c", "input(); b = bytearray(128 << 20)"], stdin=subprocess.PIPE)
c.add(hog.pid)
hog.communicate(b"go\\n")
out.update(path=c.path, hog=hog.returncode, oom_kills=c.oom_kills(), limit=c.stats().memory.limit)
c.destroy()
out["removed"] = c.id not in cgroups.list_ids(base=base)
print(json.dumps(out))
""")
    procs.append(user)
    out, err = user.communicate("go\n", timeout=120)
    assert user.returncode == 0, err
    r = json.loads(out)
    assert r["base"] == top, r["why"]  # the topmost ancestor the user owns, empty of processes
    assert r["path"] == os.path.join(top, cgroups.PARENT, "mine")
    assert r["hog"] == -signal.SIGKILL and r["oom_kills"] >= 1 and r["limit"] == 32 * MiB
    assert r["removed"]


def test_delegated_subtree_container_run_as_the_user(delegated, procs):
    """`container-kernel run` by a user on v2 with delegation: limits are cgroups, as for root."""
    top, start = delegated
    ck = os.path.join(os.path.dirname(sys.executable), "container-kernel")
    user = start(f"""
import subprocess, sys
hog = "b = bytearray(200 << 20); print('survived')"
r = subprocess.run([{ck!r}, "run", "--memory", "50M", "--pids", "20", "--", "python3", "-c", hog],
                   capture_output=True, text=True)
sys.stdout.write(str(r.returncode) + "\\n" + r.stdout + r.stderr)
""")
    procs.append(user)
    out, err = user.communicate("go\n", timeout=120)
    assert user.returncode == 0, err
    code, _, rest = out.partition("\n")
    if code == "125" and "user namespace" in rest.lower():
        pytest.skip(f"no user namespaces for uid {NOBODY} here: {rest.strip()[:200]}")
    assert code == "137", out
    assert "survived" not in rest and "not enforced" not in rest, rest
    assert "killed by the OOM killer (memory limit 50 MiB" in rest, rest
    assert [e.name for e in os.scandir(os.path.join(top, cgroups.PARENT)) if e.is_dir()] == []


def test_collect_stale_removes_only_the_dead(cg):
    other = cgroups.open_cgroup(cg.id + "-dead", 2)
    try:
        cg.create(Resources())
        other.create(Resources(pids=5))
        assert {cg.id, other.id} <= set(cgroups.list_ids())
        removed = cgroups.collect_stale(lambda cid: cid != other.id)
        assert removed == [other.id]
        assert not os.path.exists(other.path) and os.path.isdir(cg.path)
    finally:
        other.destroy()
