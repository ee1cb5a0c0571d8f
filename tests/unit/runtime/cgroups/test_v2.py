"""The cgroup v2 driver against a fake unified cgroupfs in a temp dir.

FakeV2 (tests/fakes/cgroupfs_v2.py) stands in for the kernel: a new cgroup gets
the controller files its parent enabled in cgroup.subtree_control (and only those), with the initial
contents a real kernel shows; writes follow the kernel's rules (subtree_control
"+name" tokens, the no-internal-processes rule, io.max keys merged per device).
"""

import errno
import json
import os
import shutil

import pytest

from container_kernel.runtime import cgroups
from container_kernel.runtime.cgroups import PARENT
from container_kernel.runtime.cgroups.v2 import V2Cgroup
from container_kernel.runtime.errors import ContainerError
from container_kernel.runtime.spec import IOLimit, Resources
from tests.fakes.cgroupfs_v2 import FakeV2, MiB


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return FakeV2(tmp_path).install(monkeypatch)


# ---- layout and controllers -------------------------------------------------------------

def test_paths(fake):
    cg = fake.open()
    assert isinstance(cg, V2Cgroup) and cg.version == 2
    assert cg.paths() == {"unified": os.path.join(fake.root, PARENT, "c1")}


def test_create_enables_controllers_from_base_down(fake):
    cg = fake.open()
    cg.create(Resources())
    assert fake.writes == [("cgroup.subtree_control", "+memory +cpu +pids +io"),
                           (f"{PARENT}/cgroup.subtree_control", "+memory +cpu +pids +io")]
    assert fake.cat("cgroup.controllers") == "cpu io memory pids"
    fake.writes.clear()
    fake.open("c2").create(Resources())  # already on: nothing to write
    assert fake.writes == []


def test_only_available_controllers_are_enabled(tmp_path, monkeypatch):
    fake = FakeV2(tmp_path, controllers="cpu memory pids").install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB))
    assert fake.writes[0] == ("cgroup.subtree_control", "+memory +cpu +pids")
    s = cg.stats().as_dict()
    assert s["io"] == {"limits": [], "read_bytes": None, "write_bytes": None}
    with pytest.raises(ContainerError, match=r"io.max: No such file .*controller is not available"):
        cg.apply(Resources(io_read_bps=(IOLimit("8:0", 8, 0, 1),)))


def test_delegated_base(fake):
    base = os.path.join(fake.root, "user.slice")
    fake.put(os.path.join(fake.root, "cgroup.subtree_control"), "cpu io memory pids\n")
    fake.mkdir(base)
    cg = fake.open(base=base)
    assert cg.paths() == {"unified": os.path.join(base, PARENT, "c1")}
    cg.create(Resources(pids=5))
    assert fake.read(os.path.join(base, PARENT, "c1", "pids.max")) == "5"
    assert cgroups.list_ids(root=fake.root, base=base, mountinfo=fake.mountinfo) == ["c1"]


def test_no_internal_processes_rule_is_explained(fake):
    base = os.path.join(fake.root, "session")
    fake.put(os.path.join(fake.root, "cgroup.subtree_control"), "cpu io memory pids\n")
    fake.mkdir(base)
    fake.put(os.path.join(base, "cgroup.procs"), "4242\n")  # e.g. the user's shell
    with pytest.raises(ContainerError) as e:
        fake.open(base=base).create(Resources())
    msg = str(e.value)
    assert "\n" not in msg and base in msg and "no-internal-processes" in msg
    assert not os.path.exists(os.path.join(base, PARENT, "c1"))


def test_base_that_is_not_a_cgroup(fake, tmp_path):
    with pytest.raises(ContainerError, match="not a cgroup v2 directory"):
        fake.open(base=str(tmp_path)).create(Resources())


# ---- every field to its file ------------------------------------------------------------

def test_apply_writes_each_field_to_its_file(fake):
    cg = fake.open()
    cg.create(Resources())
    fake.writes.clear()
    cg.apply(Resources(memory=100 * MiB, memory_swap=300 * MiB, cpus=1.5, pids=64,
                       io_read_bps=(IOLimit("/dev/vda", 254, 0, MiB),),
                       io_write_bps=(IOLimit("/dev/vda", 254, 0, 2 * MiB), IOLimit("8:0", 8, 0, 500))))
    leaf = f"{PARENT}/c1/"
    assert fake.writes == [
        (leaf + "memory.max", str(100 * MiB)),
        (leaf + "memory.swap.max", str(200 * MiB)),   # v2 limits swap alone: total - memory
        (leaf + "cpu.max", "150000 100000"),
        (leaf + "pids.max", "64"),
        (leaf + "io.max", "254:0 rbps=1048576 wbps=2097152"),
        (leaf + "io.max", "8:0 wbps=500"),
    ]
    assert fake.cat("io.max") == ("8:0 rbps=max wbps=500 riops=max wiops=max\n"
                                  "254:0 rbps=1048576 wbps=2097152 riops=max wiops=max")


def test_swap_follows_docker_meaning(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB))
    assert fake.cat("memory.swap.max") == "0"  # memory_swap == memory: no swap at all
    cg.apply(Resources(memory_swap=-1))
    assert fake.cat("memory.swap.max") == "max"
    cg.apply(Resources(memory_swap=100 * MiB))  # memory unchanged: taken from memory.max
    assert fake.cat("memory.swap.max") == str(36 * MiB)
    assert cg.stats().memory.swap_limit == 100 * MiB
    cg.reset("memory")
    with pytest.raises(ContainerError, match="needs a memory limit"):
        cg.apply(Resources(memory_swap=100 * MiB))


def test_without_swap_accounting(tmp_path, monkeypatch):
    fake = FakeV2(tmp_path, swap=False).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB))
    assert [p for p, _ in fake.writes if "swap" in p] == []
    cg.reset("memory")
    assert cg.stats().memory.swap_limit is None


def test_apply_leaves_none_fields_alone(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB, cpus=1, pids=10))
    fake.writes.clear()
    cg.apply(Resources(cpus=0.25))
    assert fake.writes == [(f"{PARENT}/c1/cpu.max", "25000 100000")]


def test_reset_each_field(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB, cpus=0.5, pids=10,
                        io_read_bps=(IOLimit("8:0", 8, 0, 100),), io_write_bps=(IOLimit("8:16", 8, 16, 5),)))
    fake.writes.clear()
    for field in ("memory", "cpu", "pids", "io"):
        cg.reset(field)
    leaf = f"{PARENT}/c1/"
    assert fake.writes == [
        (leaf + "memory.max", "max"), (leaf + "memory.swap.max", "max"),
        (leaf + "cpu.max", "max 100000"), (leaf + "pids.max", "max"),
        (leaf + "io.max", "8:0 rbps=max wbps=max"), (leaf + "io.max", "8:16 rbps=max wbps=max"),
    ]
    assert fake.cat("io.max") == ""
    s = cg.stats().as_dict()
    assert (s["memory"]["limit"], s["cpu"]["cpus"], s["pids"]["limit"], s["io"]["limits"]) == \
        (None, None, None, [])
    with pytest.raises(ContainerError, match="cannot reset 'swap'"):
        cg.reset("swap")


def test_kernel_refusal_is_one_line(fake):
    cg = fake.open()
    cg.create(Resources())
    fake.fail["pids.max"] = errno.EINVAL
    with pytest.raises(ContainerError) as e:
        cg.apply(Resources(pids=10))
    assert str(e.value) == (f"cgroup: cannot write '10' to {fake.root}/{PARENT}/c1/pids.max: "
                            "Invalid argument")


def test_failed_create_removes_the_leaf(fake):
    fake.fail["cpu.max"] = errno.EINVAL
    cg = fake.open()
    with pytest.raises(ContainerError, match="cpu.max: Invalid argument"):
        cg.create(Resources(memory=64 * MiB, cpus=1))
    assert not os.path.exists(cg.paths()["unified"])
    assert os.path.isdir(os.path.join(fake.root, PARENT))


# ---- reading ----------------------------------------------------------------------------

def test_stats_of_a_fresh_cgroup(fake):
    cg = fake.open()
    cg.create(Resources())
    assert cg.stats().as_dict() == {
        "version": 2,
        "paths": cg.paths(),
        "memory": {"limit": None, "swap_limit": None, "usage": 0, "peak": 0, "oom_kills": 0,
                   "failcnt": 0},
        "cpu": {"cpus": None, "usage_ns": 0, "nr_periods": 0, "nr_throttled": 0, "throttled_ns": 0},
        "pids": {"limit": None, "current": 0, "events_max": 0},
        "io": {"limits": [], "read_bytes": 0, "write_bytes": 0},
    }


def test_stats_read_the_kernel_counters(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=96 * MiB, cpus=0.5, pids=10,
                        io_write_bps=(IOLimit("/dev/vda", 254, 0, MiB),)))
    leaf = cg.paths()["unified"]
    for name, text in {
        "memory.current": "1234567\n",
        "memory.peak": "67108864\n",
        "memory.events": "low 0\nhigh 0\nmax 17\noom 3\noom_kill 2\noom_group_kill 0\n",
        "cpu.stat": "usage_usec 987654\nuser_usec 600000\nsystem_usec 387654\n"
                    "nr_periods 120\nnr_throttled 30\nthrottled_usec 4500000\nnr_bursts 0\nburst_usec 0\n",
        "pids.current": "10\n",
        "pids.events": "max 5\n",
        "io.stat": "254:0 rbytes=4096 wbytes=1048576 rios=1 wios=256 dbytes=0 dios=0\n"
                   "8:0 rbytes=512 wbytes=0 rios=1 wios=0 dbytes=0 dios=0\n",
    }.items():
        fake.put(os.path.join(leaf, name), text)
    s = cg.stats().as_dict()
    assert s["memory"] == {"limit": 64 * MiB, "swap_limit": 96 * MiB, "usage": 1234567,
                           "peak": 64 * MiB, "oom_kills": 2, "failcnt": 17}
    assert s["cpu"] == {"cpus": 0.5, "usage_ns": 987654000, "nr_periods": 120, "nr_throttled": 30,
                        "throttled_ns": 4500000000}
    assert s["pids"] == {"limit": 10, "current": 10, "events_max": 5}
    assert s["io"] == {"limits": [{"major": 254, "minor": 0, "rbps": None, "wbps": MiB}],
                       "read_bytes": 4608, "write_bytes": 1048576}
    assert cg.oom_kills() == 2
    json.dumps(s)


def test_missing_files_read_as_none(fake):
    cg = fake.open()
    cg.create(Resources())
    leaf = cg.paths()["unified"]
    for name in ("memory.peak", "memory.events", "io.stat", "pids.events"):
        os.remove(os.path.join(leaf, name))  # e.g. memory.peak before Linux 5.19
    s = cg.stats().as_dict()
    assert s["memory"]["peak"] is None and s["memory"]["oom_kills"] is None
    assert s["io"]["read_bytes"] is None and s["pids"]["events_max"] is None
    assert cg.oom_kills() == 0
    shutil.rmtree(leaf)
    s = cg.stats().as_dict()
    assert set(s["memory"].values()) == set(s["pids"].values()) == {None}
    assert set(s["cpu"].values()) == {None}


def test_cpu_stat_without_the_cpu_controller(tmp_path, monkeypatch):
    fake = FakeV2(tmp_path, controllers="memory pids").install(monkeypatch)
    cg = fake.open()
    cg.create(Resources())
    assert cg.stats().as_dict()["cpu"] == {"cpus": None, "usage_ns": 0, "nr_periods": None,
                                 "nr_throttled": None, "throttled_ns": None}


# ---- processes --------------------------------------------------------------------------

def test_add_procs_and_cgroup_kill(fake):
    cg = fake.open()
    cg.create(Resources())
    cg.add(101)
    cg.add(102)
    assert cg.procs() == [101, 102]
    cg.kill()
    assert fake.writes[-1] == (f"{PARENT}/c1/cgroup.kill", "1")
    assert cg.procs() == []


def test_kill_without_cgroup_kill_loops(tmp_path, monkeypatch):
    fake = FakeV2(tmp_path, cgroup_kill=False).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources())
    cg.add(101)
    procs = os.path.join(cg.paths()["unified"], "cgroup.procs")
    killed = []

    def kill(pid, sig):
        killed.append(pid)
        fake.put(procs, "")

    monkeypatch.setattr(os, "kill", kill)
    cg.destroy()
    assert killed == [101] and not os.path.exists(cg.paths()["unified"])


# ---- removing ---------------------------------------------------------------------------

def test_destroy_kills_then_removes_and_is_idempotent(fake):
    cg = fake.open()
    cg.create(Resources())
    cg.add(101)
    fake.busy = 2
    cg.destroy()
    assert (f"{PARENT}/c1/cgroup.kill", "1") in fake.writes
    assert not os.path.exists(cg.paths()["unified"])
    assert os.path.isdir(os.path.join(fake.root, PARENT))
    cg.destroy()


def test_list_ids_and_collect_stale(fake):
    for cid in ("a", "b", "c"):
        fake.open(cid).create(Resources())
    fake.open("b").add(7)
    kw = dict(root=fake.root, mountinfo=fake.mountinfo)
    assert cgroups.list_ids(**kw) == ["a", "b", "c"]
    assert cgroups.collect_stale(lambda cid: cid == "a", **kw) == ["b", "c"]
    assert cgroups.list_ids(version=2, **kw) == ["a"]
