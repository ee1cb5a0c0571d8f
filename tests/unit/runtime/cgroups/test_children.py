"""Child cgroups, what %%sandbox asks of the drivers, on the fake cgroupfs trees."""

import errno
import os

import pytest

from container_kernel.runtime.cgroups import PARENT
from container_kernel.runtime.cgroups.v2 import LEAF, V2Cgroup
from container_kernel.runtime.spec import Resources
from tests.fakes.cgroupfs_v1 import FakeV1
from tests.fakes.cgroupfs_v2 import FakeV2

MiB = 1 << 20


# ---- child cgroups: what %%sandbox asks of the drivers -------------------------------------

class MovingFakeV2(FakeV2):
    """FakeV2, plus the rules a child cgroup meets: a PID written to cgroup.procs *moves*
    (it leaves its old cgroup), a cgroup that hands controllers down may not take
    processes, and cgroup.kill empties the whole subtree."""

    def write(self, path, text, plain):
        name, d = os.path.basename(path), os.path.dirname(path)
        if name == "cgroup.procs":
            if d != self.root and self.read(os.path.join(d, "cgroup.subtree_control")).split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
            for top, _, files in os.walk(self.root):
                if "cgroup.procs" in files and top != d:
                    procs = self.read(os.path.join(top, "cgroup.procs")).split()
                    if text in procs:
                        procs.remove(text)
                        self.put(os.path.join(top, "cgroup.procs"), "".join(p + "\n" for p in procs))
        if name == "cgroup.kill":
            for top, _, files in os.walk(d):
                self.put(os.path.join(top, "cgroup.procs"), "")
            return plain("")
        return super().write(path, text, plain)


def test_v2_child_moves_the_container_into_a_leaf(tmp_path, monkeypatch):
    fake = MovingFakeV2(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=512 * MiB, pids=100))
    for pid in (101, 102):
        cg.add(pid)
    child = cg.create_child("sandbox-1", Resources(memory=50 * MiB, memory_swap=50 * MiB, pids=16))
    assert isinstance(child, V2Cgroup) and child.path == os.path.join(cg.path, "sandbox-1")
    # The no-internal-processes rule: <id> holds nothing now, its processes are in <id>/main.
    assert fake.cat("cgroup.procs") == ""
    assert fake.cat(f"{LEAF}/cgroup.procs").split() == ["101", "102"]
    assert fake.cat("cgroup.subtree_control").split() == ["cpu", "io", "memory", "pids"]
    assert fake.cat("sandbox-1/memory.max") == str(50 * MiB) and fake.cat("sandbox-1/pids.max") == "16"
    child.add(103)
    assert cg.procs() == [] and cg.procs(recursive=True) == [101, 102, 103]
    assert child.procs() == [103]
    # A second sandbox does not move anything again.
    fake.writes.clear()
    second = cg.create_child("sandbox-2", Resources(pids=8))
    assert not [p for p, _ in fake.writes if p.endswith("cgroup.procs") or "subtree" in p]
    second.destroy()
    assert not os.path.exists(second.path)
    # destroy() of the container removes main and the sandboxes too.
    cg.destroy()
    assert [e.name for e in os.scandir(os.path.join(fake.root, PARENT)) if e.is_dir()] == []


def test_v2_child_of_an_empty_container_still_gets_a_leaf_free_parent(tmp_path, monkeypatch):
    fake = MovingFakeV2(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources())
    cg.create_child("sandbox-1", Resources(memory=50 * MiB))
    assert fake.cat("sandbox-1/memory.max") == str(50 * MiB)
    cg.destroy()
    assert not os.path.exists(cg.path)


def test_v2_child_names_cannot_climb(tmp_path, monkeypatch):
    fake = MovingFakeV2(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources())
    for name in ("", "..", "a/b"):
        with pytest.raises(Exception, match="invalid child name"):
            cg.create_child(name, Resources())
    cg.destroy()


def test_v1_child_is_a_dir_in_each_hierarchy(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=512 * MiB, memory_swap=512 * MiB))
    child = cg.create_child("sandbox-1", Resources(memory=50 * MiB, memory_swap=50 * MiB, cpus=0.5))
    assert child.paths() == {c: os.path.join(p, "sandbox-1") for c, p in cg.paths().items()}
    assert fake.cat("memory", "sandbox-1/memory.limit_in_bytes") == str(50 * MiB)
    assert fake.cat("cpu", "sandbox-1/cpu.cfs_quota_us") == "50000"
    child.add(7)
    assert cg.procs() == [] and cg.procs(recursive=True) == [7]
    for d in child.paths().values():
        fake.put(os.path.join(d, "cgroup.procs"), "")  # it exited
    cg.destroy()
    assert all(not os.path.exists(d) for d in cg.paths().values())


