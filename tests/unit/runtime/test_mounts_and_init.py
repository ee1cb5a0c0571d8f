"""mounts.apply() and init's process setup against the recording syscall fake: no root needed.

What is asserted is the order the kernel would see: the tree made private before
anything is mounted, each read-only bind followed by its remount, the new root
made read-only, then pivot_root(".", ".") and the old root detached; and for the
payload rlimits -> no_new_privs -> capabilities -> ids -> seccomp -> close fds.
"""

import os

import pytest

from container_kernel.runtime import capabilities, init, mounts
from container_kernel.runtime import spec as S
from container_kernel.runtime import syscalls as real
from container_kernel.runtime.errors import ContainerError
from tests.fakes.syscalls import RecordingSyscalls


@pytest.fixture
def sc(monkeypatch):
    return RecordingSyscalls().install(monkeypatch, mounts, init, capabilities)


def host_spec(**kw):
    return S.build({}, ["true"], cid="abc", **kw)


def test_apply_runs_the_plan_in_order(sc, tmp_path):
    root = str(tmp_path / "root")
    os.mkdir(root)
    steps = mounts.plan(host_spec(), root)
    mounts.apply(steps, root)
    mounts_ = sc.of("mount")
    assert mounts_[0] == (None, "/", None, real.MS_REC | real.MS_PRIVATE)  # before any other mount
    assert mounts_[1][1:3] == (root, "tmpfs")
    # /usr: bound, then remounted read-only (the bind alone would be read-write)
    usr = [i for i, m in enumerate(mounts_) if m[1] == root + "/usr"]
    assert mounts_[usr[0]][0] == "/usr" and mounts_[usr[0]][3] & real.MS_BIND
    assert mounts_[usr[1]][3] & real.MS_REMOUNT and mounts_[usr[1]][3] & real.MS_RDONLY
    proc = next(m for m in mounts_ if m[2] == "proc")
    assert proc[1] == root + "/proc" and proc[3] & real.MS_NOEXEC and proc[3] & real.MS_NOSUID
    # the new root read-only, then pivot_root, then the old root detached: last, in that order
    assert sc.names()[-5:] == ["mount", "chdir", "pivot_root", "umount2", "chdir"]
    source, target, _, flags = sc.calls[-5][1][:4]
    ro = real.MS_REMOUNT | real.MS_BIND | real.MS_RDONLY
    assert (source, target) == (None, root) and flags & ro == ro
    assert sc.of("pivot_root") == [(".", ".")] and sc.of("umount2") == [(".", real.MNT_DETACH)]
    assert sc.of("chdir") == [(root,), ("/",)]
    # the generated /etc was written into the new root, with nothing secret in it
    with open(root + "/etc/passwd") as f:
        assert f.read().startswith("root:x:0:0:root:/root:")
    assert not os.path.exists(root + "/etc/shadow")


def test_a_failed_step_names_itself(sc, tmp_path, monkeypatch):
    def refuse(*args):
        raise OSError(1, "Operation not permitted")
    monkeypatch.setattr(sc, "pivot_root", refuse, raising=False)
    root = str(tmp_path / "root")
    os.mkdir(root)
    with pytest.raises(ContainerError, match="mount step 'pivot-root /' failed: Operation not permitted"):
        mounts.apply(mounts.plan(host_spec(), root), root)


def test_process_setup_is_the_named_sequence():
    assert [f.__name__ for f in init.PROCESS_SETUP] == [
        "set_rlimits", "set_no_new_privs", "drop_capabilities", "set_ids", "load_seccomp", "close_fds"]


def test_process_setup_calls_in_order(sc):
    spec = host_spec()
    spec = spec._replace(
        process=spec.process._replace(uid=1000, gid=1000, rlimits=((7, 64, 64),)),
        security=spec.security._replace(no_new_privs=True, seccomp=b"\0" * 8))
    init.setup_process(spec, keep_fds={5, 9})
    order = []
    for name, args in sc.calls:
        step = {"setrlimit": "rlimits", "capset": "capabilities", "set_ids": "ids",
                "seccomp_load": "seccomp", "closerange": "close fds"}.get(name)
        if name == "prctl":
            step = {real.PR_SET_NO_NEW_PRIVS: "no_new_privs", real.PR_CAPBSET_DROP: "capabilities",
                    real.PR_CAP_AMBIENT: "capabilities"}[args[0]]
        if step and (not order or order[-1] != step):
            order.append(step)
    assert order == ["rlimits", "no_new_privs", "capabilities", "ids", "seccomp", "close fds"]
    assert sc.of("setrlimit") == [(7, 64, 64)]
    assert [args[:2] for args in sc.of("set_ids")] == [(1000, 1000)]
    # every fd above 2 is closed except those kept: 3-4, 6-8, 10 and up
    assert sc.of("closerange") == [(3, 5), (6, 9), (10,)]
    kept = [n for n in capabilities.NAMES if n in capabilities.DEFAULT]
    mask = sum(1 << capabilities.NAMES.index(n) for n in kept)
    assert sc.of("capset") == [(mask, mask, 0)]  # inheritable stays empty (CVE-2022-24769)


def test_no_seccomp_and_root_skip_those_steps(sc):
    init.setup_process(host_spec(), keep_fds=set())
    assert "seccomp_load" not in sc.names() and "set_ids" not in sc.names()
    assert (real.PR_SET_NO_NEW_PRIVS, 1) not in sc.of("prctl")
