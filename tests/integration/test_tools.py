"""`container-kernel doctor` and `container-kernel ps`, through the CLI.

Each fact they print is checked against the host itself (mountinfo, the cgroup
files, os.uname, util-linux's unshare), not against the runtime's own helpers:
a bug shared by the tool and its test would otherwise pass.
"""
import json
import os
import platform
import pwd
import re
import shutil
import stat
import subprocess

import pytest

from tests.helpers import (CK, ck, kill_tree, leftovers, requires_cgroups, requires_root, start,
                           state_of)

TEST_USER = "ck-test-user"
LIMITS = {"memory": "memory limit (--memory)", "cpu": "CPU quota (--cpus)",
          "pids": "process limit (--pids)", "io": "I/O limits (--io-*-bps)"}
FEATURE_LINE = re.compile(r"^  \[(on |off)\] (.+?): (.+)$")


# ---- the host, read directly ----------------------------------------------------------------

def host_cgroup_mounts():
    """[(mount point, fstype, super options)] of the cgroup filesystems under /sys/fs/cgroup."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            point, (fstype, _, superopts) = left.split()[4], right.split()[:3]
            if fstype in ("cgroup", "cgroup2") and point.startswith("/sys/fs/cgroup"):
                out.append((point, fstype, superopts.split(",")))
    return out


def host_cgroups():
    """(mode, hybrid, controllers) as this host has them."""
    mounts = host_cgroup_mounts()
    if any(p == "/sys/fs/cgroup" and t == "cgroup2" for p, t, _ in mounts):
        with open("/sys/fs/cgroup/cgroup.controllers") as f:
            return "v2", False, set(f.read().split())
    v1 = {c for _, t, opts in mounts if t == "cgroup" for c in opts} - {"rw", "ro"}
    if not v1:
        return None, False, set()
    # Hybrid: systemd also mounts an empty cgroup2 (at /sys/fs/cgroup/unified).
    return "v1", any(t == "cgroup2" for _, t, _ in mounts), v1


def kernel_limits(cid):
    """(memory bytes, cpus, pids limit, [pids]) of a container, from its cgroup files."""
    mode, _, _ = host_cgroups()
    if mode == "v2":
        d = f"/sys/fs/cgroup/container-kernel/{cid}"
        quota, period = read(f"{d}/cpu.max").split()
        return (int(read(f"{d}/memory.max")), int(quota) / int(period), int(read(f"{d}/pids.max")),
                [int(p) for p in read(f"{d}/cgroup.procs").split()])

    def v1(controller, name):
        (point,) = {p for p, t, o in host_cgroup_mounts() if t == "cgroup" and controller in o}
        return read(f"{point}/container-kernel/{cid}/{name}")
    cpus = int(v1("cpu", "cpu.cfs_quota_us")) / int(v1("cpu", "cpu.cfs_period_us"))
    return (int(v1("memory", "memory.limit_in_bytes")), cpus, int(v1("pids", "pids.max")),
            [int(p) for p in v1("pids", "cgroup.procs").split()])


def read(path):
    with open(path) as f:
        return f.read().strip()


# Tried by another tool (util-linux), as doctor tries them: in a throw-away process.
# prefix: run as another user, in a user namespace mapped to root inside.
def userns_works(prefix=()):
    return subprocess.run([*prefix, "unshare", "--user", "true"], capture_output=True,
                          cwd="/", timeout=30).returncode == 0


def pivot_root_works(prefix=()):
    user = ["--user", "--map-root-user"] if prefix else []
    script = "mount -t tmpfs ck-test /tmp && mkdir /tmp/old && pivot_root /tmp /tmp/old"
    return subprocess.run([*prefix, "unshare", *user, "--mount", "sh", "-c", script],
                          capture_output=True, cwd="/", timeout=30).returncode == 0


def features_of(text):
    """The "Here container-kernel will:" lines of doctor's text: {feature: (on, why)}."""
    lines = text.split("Here container-kernel will:\n", 1)[1].splitlines()
    found = {}
    for line in lines:
        m = FEATURE_LINE.match(line)
        assert m, f"a feature line without [on]/[off] and a reason: {line!r}"
        found[m.group(2)] = (m.group(1) == "on ", m.group(3))
    return found


# ---- doctor, as root ------------------------------------------------------------------------

@requires_root
def test_doctor_json_reports_this_hosts_facts():
    r = ck("doctor", "--json")
    assert r.returncode == 0, r.stderr
    host = json.loads(r.stdout)["host"]
    mode, hybrid, controllers = host_cgroups()
    assert host["root"] is True and host["uid"] == 0
    assert host["python"] == platform.python_version()  # the venv's, which runs this test
    assert host["kernel"] == os.uname().release
    assert host["cgroup_version"] == {"v1": 1, "v2": 2}.get(mode)
    assert host["cgroup_hybrid"] == hybrid
    reported = set(host["cgroup_controllers"])
    assert reported <= controllers  # nothing it does not have...
    for needed in ("memory", "cpu", "pids", "blkio" if mode == "v1" else "io"):
        assert (needed in reported) == (needed in controllers), needed  # ...and all it does
    assert host["max_user_namespaces"] == read("/proc/sys/user/max_user_namespaces")
    assert host["overlayfs"] == ("overlay" in read("/proc/filesystems"))
    assert (host["userns_error"] is None) == userns_works()
    assert host["namespaces_error"] is None
    assert (host["pivot_root_error"] is None) == pivot_root_works()


@requires_root
def test_doctor_text_as_root_says_what_is_on_and_why():
    r = ck("doctor")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    mode, hybrid, controllers = host_cgroups()
    assert "user:          root\n" in out
    assert f"kernel:        {os.uname().release}   python: {platform.python_version()}\n" in out
    cgroup_line = re.search(r"^cgroups: +(.*)$", out, re.M).group(1)
    assert cgroup_line.split()[0] == mode
    assert ("hybrid" in cgroup_line) == hybrid
    listed = re.search(r"^controllers: +(.*)$", out, re.M).group(1).split(", ")
    for needed in ("memory", "cpu", "pids", "blkio" if mode == "v1" else "io"):
        assert (needed in listed) == (needed in controllers), needed
    userns, pivot = userns_works(), pivot_root_works()
    assert bool(re.search(r"^user ns: +allowed ", out, re.M)) == userns
    assert bool(re.search(r"^pivot_root: +works$", out, re.M)) == pivot

    feats = features_of(out)
    assert feats["user namespaces (rootless containers)"][0] == userns
    assert feats["pivot_root into the container's rootfs"][0] == pivot
    assert feats["containers (PID, mount, UTS, IPC, net, cgroup namespaces)"] == (True, "as root")
    for controller, feature in LIMITS.items():
        controller = "blkio" if controller == "io" and mode == "v1" else controller
        on, why = feats[feature]
        assert on == (controller in controllers), feature
        assert f"cgroup {mode} controller {controller!r} " in why  # ... 'cpu' present

    # The text and --json agree line by line.
    as_json = json.loads(ck("doctor", "--json").stdout)["features"]
    assert {f["feature"]: (f["on"], f["why"]) for f in as_json} == feats


# ---- doctor, as a user ----------------------------------------------------------------------

def as_test_user():
    """argv prefix that runs a command as TEST_USER (made if absent, and kept); or skip."""
    try:
        user = pwd.getpwnam(TEST_USER)
    except KeyError:
        if not shutil.which("useradd"):
            pytest.skip(f"no user {TEST_USER} and no useradd to make one")
        r = subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", TEST_USER], capture_output=True, text=True)
        if r.returncode not in (0, 9):  # 9: made meanwhile by a parallel run
            pytest.skip(f"cannot create the user {TEST_USER}: {r.stderr.strip()}")
        user = pwd.getpwnam(TEST_USER)
    # The user must reach the venv and the checkout; opening them up is not a test's call.
    venv, here = os.path.dirname(os.path.dirname(CK)), os.path.dirname(os.path.abspath(__file__))
    for path in (venv, here):
        for d in [path, *_parents(path)]:
            if not os.stat(d).st_mode & stat.S_IXOTH:
                pytest.skip(f"{d} is not searchable by others (o+x): {TEST_USER} cannot run "
                            f"{CK}; the test will not chmod it")
    if shutil.which("setpriv"):
        return [shutil.which("setpriv"), f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}",
                "--init-groups", "--"], user
    if shutil.which("runuser"):
        return [shutil.which("runuser"), "-u", TEST_USER, "--"], user
    pytest.skip("needs setpriv or runuser (util-linux) to run a command as another user")


def _parents(path):
    while path != "/":
        path = os.path.dirname(path)
        yield path


@pytest.fixture
def as_user():
    """Run a command as TEST_USER, in a user's environment: no root HOME, nothing of ours
    but what Python needs. Returns (run, pwd entry)."""
    if os.geteuid() != 0:
        pytest.skip("needs root to run a command as another user")
    prefix, user = as_test_user()
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "LANG", "PYTHONPATH",
                                                         "PYTHONDONTWRITEBYTECODE")}
    env["HOME"] = "/"

    def run(*argv):
        return subprocess.run(prefix + list(argv), capture_output=True, text=True, env=env,
                              cwd="/", timeout=60)
    run.prefix = prefix
    r = run(CK, "--help")
    if r.returncode != 0:
        pytest.skip(f"{TEST_USER} cannot run {CK}: {(r.stderr.strip().splitlines() or ['?'])[-1]}")
    return run, user


def test_doctor_as_a_user_says_how_limits_are_enforced(as_user):
    run, user = as_user
    r = run(CK, "doctor", "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["host"]["root"] is False and report["host"]["uid"] == user.pw_uid
    feats = {f["feature"]: (f["on"], f["why"]) for f in report["features"]}
    from container_kernel.runtime import cgroups
    if cgroups.detect() == 1:  # no delegation on v1: rlimit fallbacks for memory and pids only
        memory, cpu, pids, io = (feats[LIMITS[k]] for k in ("memory", "cpu", "pids", "io"))
        assert memory[0] and "RLIMIT_AS" in memory[1] and "MemoryError" in memory[1]
        assert pids[0] and "RLIMIT_NPROC" in pids[1]
        for off in (cpu, io):
            assert off[0] is False and "not enforced" in off[1]
    # Rootless containers hang on user namespaces: doctor must agree with util-linux.
    userns = userns_works(run.prefix)
    assert feats["user namespaces (rootless containers)"][0] == userns
    assert feats["containers (PID, mount, UTS, IPC, net, cgroup namespaces)"][0] == userns

    text = run(CK, "doctor")
    assert text.returncode == 0, text.stderr
    assert f"user:          uid {user.pw_uid}\n" in text.stdout
    assert features_of(text.stdout) == feats
    assert "  [off] CPU quota (--cpus): not enforced rootless" in text.stdout


def test_doctor_as_a_user_pivot_root_agrees_with_util_linux(as_user):
    run, _ = as_user
    report = json.loads(run(CK, "doctor", "--json").stdout)
    assert (report["host"]["pivot_root_error"] is None) == pivot_root_works(run.prefix)


# ---- ps -------------------------------------------------------------------------------------

@requires_cgroups
def test_ps_shows_a_running_container_its_pid_and_limits():
    p = start("run", "--memory", "64M", "--cpus", "0.5", "--pids", "30", "--", "sleep", "30")
    try:
        state = state_of(p.pid)
        cid, init_pid = state["id"], state["init_pid"]

        r = ck("ps")
        assert r.returncode == 0, r.stderr
        header, *rows = r.stdout.splitlines()
        assert header.split()[:2] == ["ID", "INIT"]
        (row,) = [line for line in rows if line.split()[0] == cid]
        fields = row.split()
        assert int(fields[1]) == init_pid
        assert "/ 64 MiB" in row  # usage / limit
        assert "0.5" in fields
        assert re.search(r" \d+/30 ", row)  # pids current/limit
        assert row.endswith("sleep 30")

        r = ck("ps", "--json")
        assert r.returncode == 0, r.stderr
        (item,) = [c for c in json.loads(r.stdout) if c["id"] == cid]
        assert item["init_pid"] == init_pid and item["launcher_pid"] == p.pid
        assert item["command"] == ["sleep", "30"]
        assert item["limits"]["memory"] == 64 << 20 and item["limits"]["pids"] == 30
        stats = item["stats"]
        # Against the kernel's own files, read here.
        memory, cpus, pids, procs = kernel_limits(cid)
        assert stats["memory"]["limit"] == memory == 64 << 20
        assert stats["cpu"]["cpus"] == cpus == 0.5
        assert stats["pids"]["limit"] == pids == 30
        assert init_pid in procs
        assert stats["pids"]["current"] == len(procs) == 2  # ck-init and sleep
        assert 0 < stats["memory"]["usage"] <= 64 << 20
    finally:
        kill_tree(p)
        ck("run", "--", "true")  # collects the killed container's cgroup and run dir
    assert cid not in ck("ps").stdout
    assert [x for x in leftovers() if cid in x or f"process {p.pid} " in x] == []


# ---- bad arguments --------------------------------------------------------------------------

@pytest.mark.parametrize("argv", [["doctor", "--bogus"], ["doctor", "json"],
                                  ["doctor", "--json", "extra"], ["ps", "-a"],
                                  ["ps", "--json", "--json"]])
def test_bad_arguments_give_one_line_and_exit_2(argv):
    r = ck(*argv)
    assert r.returncode == 2
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith(f"container-kernel: {argv[0]}: ")
