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
        "set_rlimits", "set_no_new_privs", "load_seccomp_while_privileged", "drop_capabilities",
        "set_ids", "load_seccomp", "close_fds"]


def test_process_setup_calls_in_order(sc):
    spec = host_spec()
    spec = spec._replace(
        process=spec.process._replace(uid=1000, gid=1000, rlimits=((7, 64, 64),)),
        security=spec.security._replace(no_new_privs=True))
    init.setup_process(spec, init.Setup({5, 9}, b"\0" * 8))
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
    spec = host_spec()
    init.setup_process(spec._replace(security=spec.security._replace(no_new_privs=False)),
                       init.Setup(set(), None))
    assert "seccomp_load" not in sc.names() and "set_ids" not in sc.names()
    assert (real.PR_SET_NO_NEW_PRIVS, 1) not in sc.of("prctl")


def test_without_no_new_privs_seccomp_goes_in_while_privileged(sc):
    """The kernel takes a filter only with no_new_privs or CAP_SYS_ADMIN (runc's order)."""
    spec = host_spec()
    spec = spec._replace(security=spec.security._replace(no_new_privs=False))
    init.setup_process(spec, init.Setup(set(), b"\0" * 8))
    names = sc.names()
    assert names.index("seccomp_load") < names.index("capset")
    assert (real.PR_SET_NO_NEW_PRIVS, 1) not in sc.of("prctl")


def test_the_default_spec_is_hardened():
    security = host_spec().security
    assert security.no_new_privs is True and security.seccomp.profile is None
    assert security.seccomp.deny_namespaces is True
    assert "/proc/kcore" in security.masked_paths and "/proc/sys" in security.readonly_paths


def test_masks_and_read_only_paths_come_last(sc, tmp_path):
    root = str(tmp_path / "root")
    os.mkdir(root)
    steps = mounts.plan(host_spec(), root)
    kinds = [s.kind for s in steps]
    last_other = max(i for i, k in enumerate(kinds) if k not in ("mask", "ro-path", "remount-ro",
                                                                 "pivot-root"))
    assert kinds.index("mask") > last_other and kinds.index("ro-path") > kinds.index("mask")
    for d in ("proc/sys", "proc/acpi"):
        os.makedirs(os.path.join(root, d))
    open(os.path.join(root, "proc/kcore"), "w").close()
    for step in steps:
        if step.kind in ("mask", "ro-path"):
            mounts._APPLY[step.kind](root, step)
    calls = sc.of("mount")
    assert ("/dev/null", root + "/proc/kcore", None, real.MS_BIND) in calls  # a file: /dev/null
    acpi = next(c for c in calls if c[1] == root + "/proc/acpi")
    assert acpi[2] == "tmpfs" and acpi[3] & real.MS_RDONLY  # a directory: an empty ro tmpfs
    sysctl = [c for c in calls if c[1] == root + "/proc/sys"]
    assert sysctl[0][3] & real.MS_BIND and sysctl[1][3] & real.MS_REMOUNT
    assert sysctl[1][3] & real.MS_RDONLY and sysctl[1][3] & real.MS_NOEXEC
    # paths this kernel does not have are skipped, not made
    assert not any(c[1] == root + "/proc/timer_stats" for c in calls)


@pytest.mark.parametrize("text, says", [
    ("seccomp=/nonexistent.json", "cannot read it"), ("apparmor=unconfined", "unknown value"),
    ("no-new-privileges=maybe", "unknown value"), ("seccomp=", "unknown value")])
def test_bad_security_opts_are_one_line(text, says):
    with pytest.raises(ContainerError, match=says) as e:
        S.build({"security_opt": [("--security-opt", text)]}, ["true"])
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_security_opts():
    build = lambda *opts: S.build({"security_opt": [("--security-opt", o) for o in opts]}, ["true"])
    assert build("seccomp=unconfined").security.seccomp is None
    assert build("no-new-privileges=false").security.no_new_privs is False
    assert build("no-new-privileges:true").security.no_new_privs is True
    assert build("seccomp=unconfined", "no-new-privileges").security == S.Security(
        S.Security().capabilities, True, None)._replace(capabilities=build().security.capabilities)
    off = build("systempaths=unconfined").security
    assert off.masked_paths == () and off.readonly_paths == () and off.seccomp is not None
