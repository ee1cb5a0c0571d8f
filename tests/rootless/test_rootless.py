"""Rootless containers: run as a non-root user that this suite creates (CI runs as root)."""
import glob
import json
import os
import pwd
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import CGROUP, CK, FORK_UNTIL_REFUSED, IS_ROOT, PROBE, children, comm, host_ns, traversable

USER = "ck-rootless"
pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root to create and become the test user")


@pytest.fixture(scope="module")
def user():
    if not shutil.which("useradd") or not shutil.which("setpriv"):
        pytest.skip("needs useradd and setpriv (apt-get install passwd util-linux)")
    if not traversable(sys.executable) or not traversable(CK):
        pytest.skip(f"the venv ({os.path.dirname(sys.executable)}) is not reachable by other users "
                    "(a parent dir lacks o+x): clone the project under a world-readable dir")
    try:
        pw = pwd.getpwnam(USER)
    except KeyError:
        # A normal (non-system) user: useradd gives it /etc/subuid and /etc/subgid ranges.
        subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", USER], check=True)
        pw = pwd.getpwnam(USER)
    probe = as_user(pw, CK, "doctor", "--json")
    if probe.returncode != 0 or json.loads(probe.stdout)["host"]["userns_error"]:
        pytest.skip(f"user namespaces are not available to {USER} here: {probe.stdout[-200:]} {probe.stderr[-200:]}")
    yield pw
    base = f"/tmp/container-kernel-{pw.pw_uid}/container-kernel"
    assert not os.path.isdir(base) or os.listdir(base) == [], os.listdir(base)


def as_user(pw, *args, timeout=60, env=None, **kw):
    """Run args as the test user with a clean environment (no XDG_RUNTIME_DIR: /tmp is the base)."""
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", **(env or {})}
    return subprocess.run(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
                           "env", "-i", *[f"{k}={v}" for k, v in clean.items()], *args],
                           capture_output=True, text=True, timeout=timeout, cwd="/tmp", **kw)


def probe(pw, *opts):
    r = as_user(pw, CK, "run", *opts, "--", *PROBE)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def py(*parts):
    return ["python3", "-c", "\n".join(textwrap.dedent(p) for p in parts)]


def test_all_namespaces_differ_and_root_inside_is_the_user_outside(user):
    inside = probe(user)
    for kind in ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user"):
        assert inside["namespaces"][kind] != host_ns(kind), kind
    assert inside["uid"] == 0 and inside["pid"] == 2 and inside["proc_pids"] == [1, 2]
    first = inside["uid_map"].splitlines()[0].split()
    assert first == ["0", str(user.pw_uid), "1"]
    assert inside["interfaces"] == ["lo"]
    assert "shared:" not in inside["mountinfo"]


def test_subuid_range_is_mapped_when_the_host_has_one(user):
    with open("/etc/subuid") as f:
        has_range = any(line.startswith(USER + ":") for line in f)
    if not (has_range and shutil.which("newuidmap")):
        pytest.skip("no /etc/subuid range for the test user or no newuidmap (apt-get install uidmap)")
    r = as_user(user, CK, "run", "--", *py("""
        import os
        print(open('/proc/self/uid_map').read().split())
        os.chown('/tmp', 1000, 1000)   # a uid of the range: what a package manager does
        print(os.stat('/tmp').st_uid)
        """))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    fields = eval(lines[0])
    assert fields[:3] == ["0", str(user.pw_uid), "1"] and fields[3] == "1" and int(fields[5]) >= 1000
    assert lines[1] == "1000"


def test_user_flag_keeps_the_users_own_ids(user):
    r = as_user(user, CK, "run", "--user", "--", "id", "-u")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == str(user.pw_uid)


def test_isolation_as_a_user(user):
    token = f"/var/tmp/ck-rootless-marker-{os.getpid()}"
    open(token, "w").close()
    os.chmod(token, 0o644)
    try:
        r = as_user(user, CK, "run", "--", *py(f"""
            import os, errno
            print(os.path.exists({token!r}), os.path.exists('/etc/shadow'))
            for p in ('/usr/x', '/etc/x'):
                try: open(p, 'w')
                except OSError as e: print(errno.errorcode[e.errno])
            print(open('/sys/kernel/hostname' if False else '/proc/sys/kernel/hostname').read().strip())
            """))
    finally:
        os.unlink(token)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "False False"
    assert lines[1:3] == ["EROFS", "EROFS"]
    assert lines[3] != os.uname().nodename


def test_the_host_sees_the_container_run_by_the_user(user):
    """Seed note 8: root inside, but `ps` on the host shows the user running it."""
    p = subprocess.Popen(["setpriv", f"--reuid={user.pw_uid}", f"--regid={user.pw_gid}", "--init-groups",
                          "env", "-i", "PATH=/usr/bin:/bin", "HOME=/tmp", CK, "run", "--", "sleep", "30"],
                         cwd="/tmp")
    try:
        deadline = time.time() + 10
        payload = None
        # Wait for the payload itself: `sleep`, a child of ck-init. While the
        # container starts, the launcher's intermediate child is init's parent,
        # and init's first child can still be a fork that has not exec'd.
        while time.time() < deadline and payload is None:
            for init in children(p.pid):
                if comm(init) == "ck-init":
                    payload = next((k for k in children(init) if comm(k) == "sleep"), None)
            time.sleep(0.05)
        assert payload, "the container did not start"
        with open(f"/proc/{payload}/status") as f:
            status = dict(line.split(":", 1) for line in f)
        assert status["Uid"].split()[0] == str(user.pw_uid)
        assert status["NSpid"].split() == [str(payload), "2"]
    finally:
        p.kill()
        p.wait()
        as_user(user, CK, "run", "--", "true")  # collects what SIGKILL left


@pytest.mark.skipif(CGROUP != 1, reason="the rlimit fallbacks are what a v1 host gives a user; "
                    "v2 with delegation is tested in the VM")
def test_fallback_limits_without_cgroups(user):
    r = as_user(user, CK, "run", "--memory", "64M", "--pids", "20", "--cpus", "0.5", "--", *py("""
        import os, errno
        try:
            x = bytearray(200 << 20); print('allocated')
        except MemoryError:
            print('MemoryError')
        """, FORK_UNTIL_REFUSED))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split()[:2] == ["MemoryError", "EAGAIN"]
    assert "the cpu limit is not enforced" in r.stderr  # said, never claimed


@pytest.fixture
def shared_tmp():
    """A temp dir the test user can read (pytest's own tmp_path is root's, mode 0700)."""
    import pathlib
    import tempfile
    with tempfile.TemporaryDirectory(prefix="ck-rootless-") as d:
        os.chmod(d, 0o755)
        yield pathlib.Path(d)


def test_rootless_kernel_through_jupyter_client(user, shared_tmp):
    tmp_path = shared_tmp
    prefix = tmp_path / "prefix"
    r = subprocess.run([CK, "install", "--prefix", str(prefix), "--name", "ck-rootless",
                        "--memory", "256M", "--pids", "64"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    runtime = tmp_path / "runtime"
    runtime.mkdir()
    os.chown(runtime, user.pw_uid, user.pw_gid)
    for d in (tmp_path, prefix):
        os.chmod(d, 0o755)
    script = tmp_path / "client.py"
    script.write_text(textwrap.dedent("""
        import json
        from jupyter_client.manager import start_new_kernel
        km, kc = start_new_kernel(kernel_name="ck-rootless")
        try:
            reply = []
            hook = lambda m: m['msg_type'] == 'stream' and reply.append(m['content']['text'])
            code = "import os, json; print(json.dumps([os.getuid(), open('/proc/self/uid_map').read().split(), os.getpid()]))"
            kc.execute_interactive(code, timeout=30, output_hook=hook)
            big = kc.execute_interactive("x = bytearray(400 << 20)", timeout=30)["content"]
            kc.execute_interactive("info = %container_info --json\\nprocs = %container_ps --json\\n"
                                   "print(json.dumps([info['host']['enforced'], procs]))", timeout=30, output_hook=hook)
            print(json.dumps([json.loads(reply[0]), big.get("ename"), json.loads(reply[1])]))
        finally:
            kc.stop_channels(); km.shutdown_kernel(now=False)
        """))
    os.chmod(script, 0o644)
    r = as_user(user, sys.executable, str(script), timeout=120,
                env={"JUPYTER_PATH": str(prefix / "share/jupyter"), "JUPYTER_RUNTIME_DIR": str(runtime)})
    assert r.returncode == 0, r.stderr[-2000:]
    (uid, uid_map, pid), ename, (enforced, procs) = json.loads(r.stdout.strip().splitlines()[-1])
    assert uid == 0 and uid_map[:3] == ["0", str(user.pw_uid), "1"] and pid == 2
    if "delegated" not in enforced["memory"]:  # the fallback: a MemoryError, the kernel lives on
        assert ename == "MemoryError"
        assert "RLIMIT_AS" in enforced["memory"] and "RLIMIT_NPROC" in enforced["pids"]
    kernel = [p for p in procs if p["pid"] == 2][0]
    assert kernel["user"] == USER and kernel["uids"] == [user.pw_uid]  # ps from the host: root inside is this user
    assert glob.glob(f"/tmp/container-kernel-{user.pw_uid}/container-kernel/*") == []
