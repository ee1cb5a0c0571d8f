"""Nothing left behind, whoever dies: the launcher, its process group, init or the payload,
at any moment, even half-way through the start. What is left anyway, gc removes."""
import glob
import json
import os
import signal
import subprocess
import time

import pytest

from tests.helpers import CK, alive, children, ck, comm, init_of, requires_root, start

pytestmark = requires_root
RUN_BASE = "/run/container-kernel"


def left_of(cid):
    """Its run dir, the same being made (.new-PID-START-ID, rundir.make_owned_dir), its cgroups."""
    return glob.glob(f"{RUN_BASE}/{cid}") + glob.glob(f"{RUN_BASE}/.new-*-*-{cid}") + \
        glob.glob(f"/sys/fs/cgroup/*/container-kernel/{cid}")


def gone_within(cid, seconds=2.0):
    deadline = time.monotonic() + seconds
    while left_of(cid) and time.monotonic() < deadline:
        time.sleep(0.02)
    return left_of(cid)


def running(cid, *cmd):
    # A group of its own, as jupyter_client starts a kernel: a kill of that group is what
    # a forced shutdown does.
    p = start("run", "--name", cid, "--memory", "64M", "--", *cmd, start_new_session=True)
    deadline = time.monotonic() + 10
    while not os.path.exists(f"{RUN_BASE}/{cid}/state.json") and time.monotonic() < deadline:
        time.sleep(0.01)
    return p


@pytest.mark.parametrize("victim", ["launcher", "launcher's group", "init", "payload"])
def test_killing_any_process_leaves_nothing_within_2_s(victim):
    cid = f"ck-kill-{victim.split()[0].replace(chr(39), '')}-{os.getpid()}"
    p = running(cid, "sleep", "30")
    try:
        init = init_of(p.pid)
        target = {"launcher": p.pid, "init": init}.get(victim)
        if victim == "payload":
            target = children(init)[0]
        if victim == "launcher's group":
            os.killpg(p.pid, signal.SIGKILL)
        else:
            os.kill(target, signal.SIGKILL)
        assert gone_within(cid) == []
    finally:
        if p.poll() is None:
            p.kill()
        p.wait(10)


def test_sigkill_at_any_moment_of_the_start_leaves_nothing():
    """Between the cgroup's creation and init's exec, too: 25 starts killed after 0 to 48 ms."""
    ids = []
    for i in range(25):
        cid = f"ck-midstart-{os.getpid()}-{i}"
        ids.append(cid)
        p = subprocess.Popen([CK, "run", "--name", cid, "--memory", "64M", "--", "true"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(i * 0.002)
        p.kill()
        p.wait(10)
    deadline = time.monotonic() + 3
    while any(left_of(c) for c in ids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [x for c in ids for x in left_of(c)] == []


def test_a_start_refused_for_a_name_in_use_leaves_that_container_be():
    """The refused start's reaper runs before the run dir is made: it must not take the
    running container's run dir and cgroups for its own, even when killed."""
    cid = f"ck-dupe-{os.getpid()}"
    p = running(cid, "sleep", "30")
    try:
        before = left_of(cid)
        r = ck("run", "--name", cid, "--", "true")
        assert r.returncode == 125 and "exists already" in r.stderr
        late = start("run", "--name", cid, "--", "true")  # killed, whenever that lands
        time.sleep(0.01)
        late.kill()
        late.wait(10)
        time.sleep(0.3)  # its reaper's turn
        assert left_of(cid) == before and p.poll() is None
        assert cid in [c["id"] for c in json.loads(ck("ps", "--json").stdout)]
    finally:
        p.kill()
        p.wait(10)
    assert gone_within(cid) == []


def test_ps_all_shows_what_a_dead_container_left_and_gc_removes_it():
    cid = f"ck-gc-{os.getpid()}"
    p = running(cid, "sleep", "30")
    reaper = next(c for c in children(p.pid) if comm(c) == "ck-reaper")
    # Its reaper first, then the launcher: the one way to leave things behind.
    os.kill(reaper, signal.SIGKILL)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    deadline = time.monotonic() + 2
    while alive(reaper) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert left_of(cid), "nothing was left: the test did not make a stale container"
    listed = json.loads(ck("ps", "--all", "--json").stdout)
    assert {s["kind"] for s in listed if s.get("status") == "stale" and s["id"] == cid} == \
        {"run dir", "cgroup"}
    assert "stale run dir" in ck("ps", "--all").stdout
    r = ck("gc")
    assert r.returncode == 0 and f"removed stale run dir {RUN_BASE}/{cid}" in r.stdout
    assert left_of(cid) == [] and cid not in ck("ps", "--all").stdout


def test_containers_starting_together_never_collect_each_other():
    """Each start collects stale run dirs and cgroups: it must never take one of a
    container that is starting at the same moment (a run dir not yet owned, a cgroup made
    after the listing). 3 rounds of 12 starts at once, every one must succeed."""
    for _ in range(3):
        ps = [subprocess.Popen([CK, "run", "--memory", "64M", "--", "true"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True) for _ in range(12)]
        results = [(p.wait(60), p.stderr.read()) for p in ps]
        assert [r for r in results if r[0] != 0] == []


def test_a_run_dir_being_made_is_not_stale(tmp_path):
    from container_kernel.runtime import procfs, rundir

    def stale_dirs():  # run dirs only: the host's cgroups are not this test's
        return [s.path for s in rundir.stale(base) if s.kind == "run dir"]
    base = str(tmp_path)
    # Made by a live process, its owner file not yet written: not stale, however old.
    me = f"{os.getpid()}-{procfs.start_time(os.getpid())}"
    mine = os.path.join(base, f"{rundir.HIDDEN}{me}-abc")
    os.mkdir(mine)
    os.utime(mine, (time.time() - 3600, time.time() - 3600))
    assert stale_dirs() == []
    rundir.make_owned_dir(os.path.join(base, "def"))
    assert os.path.exists(os.path.join(base, "def", "owner")) and stale_dirs() == []
    # Its maker gone (SIGKILLed between the mkdir and the rename): stale at once, not after a
    # timeout. A PID reused by another process has another start time.
    dead = subprocess.Popen(["true"])
    dead.wait()
    gone = os.path.join(base, f"{rundir.HIDDEN}{dead.pid}-1-ghi")
    reused = os.path.join(base, f"{rundir.HIDDEN}{os.getpid()}-1-jkl")
    unnamed = os.path.join(base, f"{rundir.HIDDEN}mno")  # no maker in its name
    for d in (gone, reused, unnamed):
        os.mkdir(d)
    assert sorted(stale_dirs()) == sorted([gone, reused, unnamed])
