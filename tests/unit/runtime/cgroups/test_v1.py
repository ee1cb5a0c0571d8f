"""The cgroup v1 driver against a fake cgroupfs in a temp dir.

FakeV1 (tests/fakes/cgroupfs_v1.py) stands in for the kernel: it lays out the
hierarchies and a mountinfo naming them, fills each new cgroup with the files a real kernel makes (with
their real initial contents), and enforces the rules the driver must respect
(limit <= memsw, page rounding, one blkio rule per write, rmdir only when empty).
"""

import errno
import os
import shutil
import tempfile

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_kernel.runtime import cgroups
from container_kernel.runtime.cgroups import PARENT
from container_kernel.runtime.cgroups.v1 import V1Cgroup
from container_kernel.runtime.errors import ContainerError
from container_kernel.runtime.spec import IOLimit, Resources
from tests.fakes.cgroupfs_v1 import PAGE, UNLIMITED, FakeV1, MiB


@pytest.fixture
def fake(tmp_path, monkeypatch):
    return FakeV1(tmp_path).install(monkeypatch)


def names(writes):
    return [os.path.basename(path) for path, _ in writes]


# ---- layout ---------------------------------------------------------------------------

def test_paths_follow_mountinfo(fake):
    cg = fake.open()
    assert isinstance(cg, V1Cgroup) and cg.version == 1 and cg.id == "c1"
    assert cg.paths() == {c: os.path.join(fake.root, c, PARENT, "c1")
                          for c in ("memory", "cpu", "cpuacct", "pids", "blkio")}


def test_comounted_cpu_cpuacct_is_one_directory(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path, comount=True).install(monkeypatch)
    cg = fake.open()
    both = os.path.join(fake.root, "cpu,cpuacct", PARENT, "c1")
    assert cg.paths()["cpu"] == cg.paths()["cpuacct"] == both
    cg.create(Resources(cpus=1.5))
    assert fake.writes.count(("cpu,cpuacct/container-kernel/c1/cpu.cfs_quota_us", "150000")) == 1
    assert cg.stats().cpu.usage_ns == 0
    cg.add(42)
    assert names(fake.writes).count("cgroup.procs") == 4  # memory, cpu+cpuacct, pids, blkio
    fake.put(os.path.join(both, "cgroup.procs"), "")
    for d in set(cg.paths().values()):
        fake.put(os.path.join(d, "cgroup.procs"), "")
    cg.destroy()
    assert not os.path.exists(both)


def test_create_makes_parent_and_leaves_then_applies(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB, cpus=0.5, pids=10))
    for d in cg.paths().values():
        assert os.path.isdir(d)
    assert not os.path.exists(os.path.join(fake.root, "freezer", PARENT))  # only the five we use
    assert fake.cat("memory", "memory.limit_in_bytes") == str(64 * MiB)
    assert fake.cat("memory", "memory.memsw.limit_in_bytes") == str(64 * MiB)
    assert fake.cat("cpu", "cpu.cfs_period_us") == "100000"
    assert fake.cat("cpu", "cpu.cfs_quota_us") == "50000"
    assert fake.cat("pids", "pids.max") == "10"


def test_create_twice_is_refused_and_leaves_the_first(fake):
    fake.open().create(Resources())
    with pytest.raises(ContainerError, match="already exists"):
        fake.open().create(Resources())
    assert os.path.isdir(fake.open().paths()["memory"])


def test_failed_create_removes_what_it_made(fake):
    fake.fail["pids.max"] = errno.EINVAL
    cg = fake.open()
    with pytest.raises(ContainerError) as e:
        cg.create(Resources(memory=64 * MiB, pids=10))
    msg = str(e.value)
    assert "\n" not in msg and "pids.max" in msg and "Invalid argument" in msg and "'10'" in msg
    for d in cg.paths().values():
        assert not os.path.exists(d)
        assert os.path.isdir(os.path.dirname(d))  # PARENT is shared: kept


# ---- every field to its file ----------------------------------------------------------

def test_apply_writes_each_field_to_its_file(fake):
    cg = fake.open()
    cg.create(Resources())
    fake.writes.clear()
    cg.apply(Resources(memory=100 * MiB, memory_swap=200 * MiB, cpus=2, pids=64,
                       io_read_bps=(IOLimit("/dev/vda", 254, 0, 1048576),),
                       io_write_bps=(IOLimit("/dev/vda", 254, 0, 2 * MiB), IOLimit("8:0", 8, 0, 500))))
    assert fake.writes == [
        # lowering from unlimited: limit first, then memsw
        ("memory/container-kernel/c1/memory.limit_in_bytes", str(100 * MiB)),
        ("memory/container-kernel/c1/memory.memsw.limit_in_bytes", str(200 * MiB)),
        ("cpu/container-kernel/c1/cpu.cfs_period_us", "100000"),
        ("cpu/container-kernel/c1/cpu.cfs_quota_us", "200000"),
        ("pids/container-kernel/c1/pids.max", "64"),
        ("blkio/container-kernel/c1/blkio.throttle.read_bps_device", "254:0 1048576"),
        ("blkio/container-kernel/c1/blkio.throttle.write_bps_device", "254:0 2097152"),
        ("blkio/container-kernel/c1/blkio.throttle.write_bps_device", "8:0 500"),
    ]
    assert fake.cat("blkio", "blkio.throttle.write_bps_device") == "8:0 500\n254:0 2097152"


def test_apply_leaves_none_fields_alone(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB, cpus=1, pids=10))
    fake.writes.clear()
    cg.apply(Resources(pids=20))
    assert fake.writes == [("pids/container-kernel/c1/pids.max", "20")]
    cg.apply(Resources())
    assert len(fake.writes) == 1
    assert fake.cat("memory", "memory.limit_in_bytes") == str(64 * MiB)


def test_small_cpus_round_to_the_kernel_minimum(fake):
    cg = fake.open()
    cg.create(Resources(cpus=0.01))
    assert fake.cat("cpu", "cpu.cfs_quota_us") == "1000"
    cg.apply(Resources(cpus=0.333))
    assert fake.cat("cpu", "cpu.cfs_quota_us") == "33300"


# ---- memory and memsw: the order matters ------------------------------------------------

def test_raising_memory_writes_memsw_first(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB))
    fake.writes.clear()
    cg.apply(Resources(memory=128 * MiB, memory_swap=128 * MiB))
    assert names(fake.writes) == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    assert fake.cat("memory", "memory.limit_in_bytes") == str(128 * MiB)


def test_lowering_memory_writes_limit_first(fake):
    cg = fake.open()
    cg.create(Resources(memory=128 * MiB, memory_swap=256 * MiB))
    fake.writes.clear()
    cg.apply(Resources(memory=32 * MiB, memory_swap=32 * MiB))
    assert names(fake.writes) == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    assert fake.cat("memory", "memory.memsw.limit_in_bytes") == str(32 * MiB)


def test_unlimited_swap_is_written_first(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB))
    fake.writes.clear()
    cg.apply(Resources(memory=32 * MiB, memory_swap=-1))
    assert fake.writes[0] == ("memory/container-kernel/c1/memory.memsw.limit_in_bytes", "-1")
    assert cg.stats().memory.swap_limit is None


def test_the_wrong_order_is_what_the_kernel_refuses(fake):
    # The fake enforces the kernel's rule, so the ordering above is needed, not cosmetic.
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB))
    with pytest.raises(ContainerError, match="memory.limit_in_bytes: Invalid argument"):
        cg.apply(Resources(memory=128 * MiB))  # memsw stays 64 MiB
    assert fake.cat("memory", "memory.limit_in_bytes") == str(64 * MiB)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 4096), st.one_of(st.just(-1), st.integers(0, 4096))),
                min_size=1, max_size=6))
def test_any_sequence_of_memory_limits_applies_live(steps):
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        fake = FakeV1(tmp).install(mp)
        cg = fake.open()
        cg.create(Resources())
        for mem_pages, extra_pages in steps:
            memory = mem_pages * PAGE
            swap = -1 if extra_pages == -1 else memory + extra_pages * PAGE
            cg.apply(Resources(memory=memory, memory_swap=swap))
            m = cg.stats().memory
            assert (m.limit, m.swap_limit) == (memory, None if swap == -1 else swap)


def test_without_swap_accounting_memsw_is_skipped(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path, memsw=False).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=128 * MiB))
    assert names(fake.writes) == ["memory.limit_in_bytes"]
    cg.reset("memory")
    assert fake.cat("memory", "memory.limit_in_bytes") == UNLIMITED
    assert cg.stats().memory.swap_limit is None


def test_lowering_below_usage_says_why(fake):
    cg = fake.open()
    cg.create(Resources())
    fake.fail["memory.limit_in_bytes"] = errno.EBUSY
    with pytest.raises(ContainerError, match="could not reclaim") as e:
        cg.apply(Resources(memory=8 * MiB))
    assert "Device or resource busy" in str(e.value) and "\n" not in str(e.value)


# ---- reset ------------------------------------------------------------------------------

def test_reset_each_field(fake):
    cg = fake.open()
    cg.create(Resources(memory=64 * MiB, memory_swap=64 * MiB, cpus=0.5, pids=10,
                        io_read_bps=(IOLimit("8:0", 8, 0, 100),),
                        io_write_bps=(IOLimit("8:0", 8, 0, 200), IOLimit("8:16", 8, 16, 300))))
    fake.writes.clear()
    cg.reset("memory")
    assert fake.writes == [("memory/container-kernel/c1/memory.memsw.limit_in_bytes", "-1"),
                           ("memory/container-kernel/c1/memory.limit_in_bytes", "-1")]
    cg.reset("cpu")
    cg.reset("pids")
    cg.reset("io")
    assert fake.writes[2:] == [
        ("cpu/container-kernel/c1/cpu.cfs_quota_us", "-1"),
        ("pids/container-kernel/c1/pids.max", "max"),
        ("blkio/container-kernel/c1/blkio.throttle.read_bps_device", "8:0 0"),
        ("blkio/container-kernel/c1/blkio.throttle.write_bps_device", "8:0 0"),
        ("blkio/container-kernel/c1/blkio.throttle.write_bps_device", "8:16 0"),
    ]
    s = cg.stats().as_dict()
    assert s["memory"]["limit"] is None and s["memory"]["swap_limit"] is None
    assert s["cpu"]["cpus"] is None and s["pids"]["limit"] is None and s["io"]["limits"] == []


def test_reset_unknown_field(fake):
    cg = fake.open()
    with pytest.raises(ContainerError, match="use one of memory, cpu, pids, io"):
        cg.reset("swap")


# ---- reading ----------------------------------------------------------------------------

def test_stats_of_a_fresh_cgroup(fake):
    cg = fake.open()
    cg.create(Resources())
    assert cg.stats().as_dict() == {
        "version": 1,
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
    mem = os.path.dirname(fake.file("memory", "x"))
    fake.put(os.path.join(mem, "memory.usage_in_bytes"), "1234567\n")
    fake.put(os.path.join(mem, "memory.max_usage_in_bytes"), "67108864\n")
    fake.put(os.path.join(mem, "memory.failcnt"), "7\n")
    fake.put(os.path.join(mem, "memory.memsw.failcnt"), "10\n")  # hits on memsw count too
    fake.put(os.path.join(mem, "memory.oom_control"), "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    fake.put(fake.file("cpuacct", "cpuacct.usage"), "987654321\n")
    fake.put(fake.file("cpu", "cpu.stat"),
             "nr_periods 120\nnr_throttled 30\nthrottled_time 4500000000\nnr_bursts 0\nburst_time 0\n")
    fake.put(fake.file("pids", "pids.current"), "10\n")
    fake.put(fake.file("pids", "pids.events"), "max 5\n")
    fake.put(fake.file("blkio", "blkio.throttle.io_service_bytes"),
             "254:0 Read 4096\n254:0 Write 1048576\n254:0 Sync 0\n254:0 Async 1052672\n"
             "254:0 Discard 0\n254:0 Total 1052672\n8:0 Read 512\n8:0 Write 0\n"
             "8:0 Sync 0\n8:0 Async 512\n8:0 Discard 0\n8:0 Total 512\nTotal 1053184\n")
    s = cg.stats().as_dict()
    assert s["memory"] == {"limit": 64 * MiB, "swap_limit": 96 * MiB, "usage": 1234567,
                           "peak": 64 * MiB, "oom_kills": 2, "failcnt": 17}
    assert s["cpu"] == {"cpus": 0.5, "usage_ns": 987654321, "nr_periods": 120, "nr_throttled": 30,
                        "throttled_ns": 4500000000}
    assert s["pids"] == {"limit": 10, "current": 10, "events_max": 5}
    assert s["io"] == {"limits": [{"major": 254, "minor": 0, "rbps": None, "wbps": MiB}],
                       "read_bytes": 4608, "write_bytes": 1048576}
    assert cg.oom_kills() == 2
    import json
    json.dumps(s)


def test_missing_files_read_as_none(fake):
    cg = fake.open()
    cg.create(Resources())
    for c in ("memory", "pids", "blkio"):
        shutil.rmtree(cg.paths()[c])
    os.remove(fake.file("cpu", "cpu.stat"))
    s = cg.stats().as_dict()
    assert set(s["memory"].values()) == {None}
    assert set(s["pids"].values()) == {None}
    assert s["io"] == {"limits": [], "read_bytes": None, "write_bytes": None}
    assert s["cpu"] == {"cpus": None, "usage_ns": 0, "nr_periods": None, "nr_throttled": None,
                        "throttled_ns": None}
    assert cg.oom_kills() == 0


def test_a_hierarchy_not_mounted(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path)
    with open(fake.mountinfo) as f:
        lines = [l for l in f if not l.rstrip().endswith(",blkio")]
    with open(fake.mountinfo, "w") as f:
        f.writelines(lines)
    fake.install(monkeypatch)
    cg = fake.open()
    assert "blkio" not in cg.paths()
    cg.create(Resources(pids=5))
    assert cg.stats().as_dict()["io"] == {"limits": [], "read_bytes": None, "write_bytes": None}
    with pytest.raises(ContainerError, match="no cgroup v1 blkio hierarchy"):
        cg.apply(Resources(io_read_bps=(IOLimit("8:0", 8, 0, 1),)))


# ---- processes --------------------------------------------------------------------------

def test_add_and_procs(fake):
    cg = fake.open()
    cg.create(Resources())
    cg.add(1234)
    assert [p for p, t in fake.writes if p.endswith("cgroup.procs")] == [
        f"{c}/container-kernel/c1/cgroup.procs" for c in ("memory", "cpu", "cpuacct", "pids", "blkio")]
    assert cg.procs() == [1234]


def test_kill_loops_until_empty(fake, monkeypatch):
    cg = fake.open()
    cg.create(Resources())
    cg.add(101)
    cg.add(102)
    killed = []

    def kill(pid, sig):
        killed.append((pid, sig))
        if pid == 101:  # 101 forks 103 before it dies: the next round must catch it
            for d in cg.paths().values():
                fake.put(os.path.join(d, "cgroup.procs"), "102\n103\n")
        else:
            for d in cg.paths().values():
                pids = [p for p in fake.read(os.path.join(d, "cgroup.procs")).split() if p != str(pid)]
                fake.put(os.path.join(d, "cgroup.procs"), "".join(p + "\n" for p in pids))

    monkeypatch.setattr(os, "kill", kill)
    cg.kill()
    assert [p for p, _ in killed] == [101, 102, 103] and cg.procs() == []


# ---- removing ---------------------------------------------------------------------------

def test_destroy_retries_ebusy_and_is_idempotent(fake):
    cg = fake.open()
    cg.create(Resources())
    fake.busy = 3
    cg.destroy()
    for d in cg.paths().values():
        assert not os.path.exists(d)
        assert os.path.isdir(os.path.dirname(d))
    cg.destroy()


def test_destroy_gives_up_with_one_line(fake, monkeypatch):
    monkeypatch.setattr(cgroups.base, "RMDIR_TIMEOUT", 0.05)
    cg = fake.open()
    cg.create(Resources())
    fake.busy = 10 ** 6
    with pytest.raises(ContainerError, match=r"cannot remove .*: Device or resource busy"):
        cg.destroy()


def test_list_ids_and_collect_stale(fake):
    for cid in ("alive", "dead1", "dead2"):
        fake.open(cid).create(Resources())
    os.makedirs(os.path.join(fake.root, "pids", PARENT, "only-in-pids"))
    kw = dict(root=fake.root, mountinfo=fake.mountinfo)
    assert cgroups.list_ids(**kw) == ["alive", "dead1", "dead2", "only-in-pids"]
    removed = cgroups.collect_stale(lambda cid: cid == "alive", **kw)
    assert removed == ["dead1", "dead2", "only-in-pids"]
    assert cgroups.list_ids(**kw) == ["alive"]
    assert cgroups.list_ids(version=1, **kw) == ["alive"]


def test_list_ids_without_parent(fake):
    assert cgroups.list_ids(root=fake.root, mountinfo=fake.mountinfo) == []


# ---- devices: only the minimal /dev ---------------------------------------------------------

def test_devices_cgroup_allows_only_the_minimal_set(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path, devices=True).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources())
    rules = [(name, text) for name, text in fake.writes if name.startswith("devices/")]
    # deny everything first, then allow each node read-write: no "m", no wildcard but the ptys
    assert rules[0] == (f"devices/{PARENT}/c1/devices.deny", "a")
    allowed = [text for name, text in rules[1:]]
    assert all(name.endswith("devices.allow") for name, _ in rules[1:])
    assert "c 1:3 rw" in allowed and "c 1:9 rw" in allowed and "c 136:* rw" in allowed
    assert not any("m" in text.split()[-1] or text.startswith("b ") for text in allowed)
    cg.destroy()


def test_a_refused_devices_rule_removes_the_cgroup(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path, devices=True).install(monkeypatch)
    fake.fail["devices.allow"] = errno.EINVAL
    cg = fake.open()
    with pytest.raises(ContainerError, match="devices.allow"):
        cg.create(Resources())
    assert not any(os.path.exists(d) for d in cg.paths().values())
