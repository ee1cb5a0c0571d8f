"""What both drivers share: detection from mountinfo, v1 hierarchy discovery,
open_cgroup, the unit conversions, and the import budget of the start path."""

import subprocess
import sys

import pytest

from container_kernel.runtime import cgroups, procfs
from container_kernel.runtime.cgroups import units
from container_kernel.runtime.cgroups.stats import IORule
from container_kernel.runtime.errors import ContainerError

# /proc/self/mountinfo of real hosts, cut to the lines that matter.
UNIFIED = """\
22 27 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
26 23 0:24 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
"""
HYBRID = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
LEGACY_COMOUNT = """\
25 18 0:22 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:9 - tmpfs tmpfs ro,mode=755
26 25 0:23 / /sys/fs/cgroup/systemd rw,nosuid,nodev,noexec,relatime shared:10 - cgroup cgroup rw,xattr,release_agent=/lib/systemd/systemd-cgroups-agent,name=systemd
29 25 0:26 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,cpu,cpuacct
30 25 0:27 / /sys/fs/cgroup/net_cls,net_prio rw,nosuid,nodev,noexec,relatime shared:14 - cgroup cgroup rw,net_cls,net_prio
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:15 - cgroup cgroup rw,memory
32 25 0:29 / /sys/fs/cgroup/pids rw,nosuid,nodev,noexec,relatime shared:16 - cgroup cgroup rw,pids
33 25 0:30 / /sys/fs/cgroup/blkio rw,nosuid,nodev,noexec,relatime shared:17 - cgroup cgroup rw,blkio
"""
SYSTEMD_ONLY = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
NONE = "22 27 0:21 / /proc rw,nosuid - proc proc rw\n"


@pytest.fixture
def mountinfo(tmp_path):
    def write(text):
        path = tmp_path / "mountinfo"
        path.write_text(text)
        return str(path)
    return write


@pytest.mark.parametrize("text, version", [
    (UNIFIED, 2), (HYBRID, 1), (LEGACY_COMOUNT, 1), (SYSTEMD_ONLY, None), (NONE, None)])
def test_detect(mountinfo, text, version):
    assert cgroups.detect(mountinfo=mountinfo(text)) == version
    assert cgroups.detect("/sys/fs/cgroup/", mountinfo=mountinfo(text)) == version


def test_detect_other_root(mountinfo):
    assert cgroups.detect("/sys/fs/cgroup/unified", mountinfo=mountinfo(HYBRID)) == 2
    assert cgroups.detect("/elsewhere", mountinfo=mountinfo(HYBRID)) is None


def test_a_later_mount_hides_an_earlier_one(mountinfo):
    text = UNIFIED + "90 26 0:50 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n"
    assert cgroups.detect(mountinfo=mountinfo(text)) is None


def test_escaped_mount_points(mountinfo):
    text = "26 23 0:24 / /tmp/my\\040cgroups rw - cgroup2 cgroup2 rw\n"
    assert cgroups.detect("/tmp/my cgroups", mountinfo=mountinfo(text)) == 2


def test_v1_hierarchies_from_mount_options(mountinfo):
    mounts = procfs.mountinfo(mountinfo(LEGACY_COMOUNT))
    assert cgroups.v1_hierarchies(mounts) == {
        "memory": "/sys/fs/cgroup/memory",
        "cpu": "/sys/fs/cgroup/cpu,cpuacct",
        "cpuacct": "/sys/fs/cgroup/cpu,cpuacct",
        "pids": "/sys/fs/cgroup/pids",
        "blkio": "/sys/fs/cgroup/blkio",
    }
    assert cgroups.v1_hierarchies(procfs.mountinfo(mountinfo(HYBRID)))["cpuacct"] == \
        "/sys/fs/cgroup/cpuacct"


def test_open_cgroup_picks_the_driver(mountinfo):
    cg = cgroups.open_cgroup("abc", mountinfo=mountinfo(HYBRID))
    assert cg.version == 1 and cg.paths()["memory"] == "/sys/fs/cgroup/memory/container-kernel/abc"
    cg = cgroups.open_cgroup("abc", mountinfo=mountinfo(UNIFIED))
    assert cg.version == 2 and cg.paths() == {"unified": "/sys/fs/cgroup/container-kernel/abc"}
    cg = cgroups.open_cgroup("abc", version=2, base="/sys/fs/cgroup/user.slice/u.service")
    assert cg.paths() == {"unified": "/sys/fs/cgroup/user.slice/u.service/container-kernel/abc"}
    assert cgroups.open_cgroup("abc", version=1, mountinfo=mountinfo(LEGACY_COMOUNT)).version == 1


@pytest.mark.parametrize("kwargs, message", [
    (dict(id="abc", text=NONE), "no cgroup filesystem is mounted at /sys/fs/cgroup"),
    (dict(id="abc", text=UNIFIED, version=1), "no cgroup v1 hierarchy"),
    (dict(id="abc", text=UNIFIED, version=3), "unknown version"),
    (dict(id="../etc", text=UNIFIED), "invalid container id"),
    (dict(id="", text=UNIFIED), "invalid container id"),
])
def test_open_cgroup_errors(mountinfo, kwargs, message):
    with pytest.raises(ContainerError, match=message) as e:
        cgroups.open_cgroup(kwargs["id"], kwargs.get("version"), mountinfo=mountinfo(kwargs["text"]))
    assert "\n" not in str(e.value)


# ---- units ------------------------------------------------------------------------------

def test_cpus_and_quota():
    assert units.cpus_to_quota(0.5) == 50000
    assert units.cpus_to_quota(2) == 200000
    assert units.cpus_to_quota(0.001) == 1000  # the kernel's minimum
    assert units.quota_to_cpus(50000, 100000) == 0.5
    assert units.quota_to_cpus(-1, 100000) is None
    assert units.quota_to_cpus(None, 100000) is None


def test_limits():
    assert units.v1_limit("9223372036854771712") is None      # 4 KiB pages
    assert units.v1_limit("9223372036854710272") is None      # 64 KiB pages
    assert units.v1_limit("67108864") == 64 << 20
    assert units.v1_limit(None) is None
    assert units.number("max") is None and units.number("12") == 12
    assert units.swap_v2(64, 64) == 0 and units.swap_v2(64, 100) == 36 and units.swap_v2(64, -1) == "max"


def test_file_formats():
    assert units.keyed("oom_kill_disable 0\nunder_oom 0\noom_kill 3\n") == \
        {"oom_kill_disable": 0, "under_oom": 0, "oom_kill": 3}
    assert units.keyed(None) == {}
    assert units.nested("8:0 rbps=10 wbps=max riops=max wiops=max\n\n") == \
        [((8, 0), {"rbps": 10, "wbps": None, "riops": None, "wiops": None})]
    assert units.v1_throttle("8:0 100\n254:0 5\n") == {(8, 0): 100, (254, 0): 5}
    assert units.v1_throttle("") == {}
    assert units.v1_io_bytes("8:0 Read 10\n8:0 Write 20\n8:0 Total 30\n8:16 Read 1\nTotal 31\n") == (11, 20)
    assert units.io_limits({(8, 0): 1}, {(8, 0): 2, (1, 0): 3}) == (
        IORule(1, 0, None, 3), IORule(8, 0, 1, 2))


def test_start_path_imports_stay_light():
    # The launcher imports this on every container start: no dataclasses, json, re, typing,
    # not even signal (it imports enum): only modules the interpreter has at hand, and
    # collections (namedtuple, for the records), which the spec imports anyway.
    code = ("import sys; before = set(sys.modules)\n"
            "import container_kernel.runtime.cgroups.v1, container_kernel.runtime.cgroups.v2\n"
            "print(' '.join(sorted(m for m in set(sys.modules) - before "
            "if not m.startswith('container_kernel'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert set(out.stdout.split()) <= {"errno", "time", "collections", "_collections", "itertools",
                                       "keyword", "operator", "_operator", "reprlib"}
