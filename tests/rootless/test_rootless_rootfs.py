"""A rootless overlay rootfs: writes go to an upper dir that holds files of the user's subuids,
and the launcher, its reaper, gc and `rootfs rm --layer` remove it all (runtime/unshare_rm.py)."""
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time

import pytest

from tests.helpers import CK, IS_ROOT
from tests.rootfs_cache import cached_rootfs
from tests.rootless.test_rootless import as_user, user  # noqa: F401

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="needs root to create and become the test user")

# Inside, a package manager's users own files: uid 1000 is the user's subuid start + 999.
OWNED = ("mkdir /usr/owned && echo x > /usr/owned/f && chown -R 1000:1000 /usr/owned "
         "&& chmod 700 /usr/owned")


def shifted_copy(src, dst, uid, gid, subuid, subgid):
    """cp -a, with owners moved into the user's mapping (0 -> the user, n -> subid + n - 1):
    the tree a rootless `rootfs build` (mmdebstrap --mode=unshare) gives, without a rebuild."""
    subprocess.run(["cp", "-a", src, dst], check=True)
    seen = set()
    for top, dirs, files in os.walk(dst):
        for path in [top] + [os.path.join(top, n) for n in files + [d for d in dirs
                                                                     if os.path.islink(os.path.join(top, d))]]:
            st = os.lstat(path)
            if st.st_ino in seen:  # a hard link: shifted once
                continue
            seen.add(st.st_ino)
            os.lchown(path, uid if st.st_uid == 0 else subuid + st.st_uid - 1,
                      gid if st.st_gid == 0 else subgid + st.st_gid - 1)
            if not stat.S_ISLNK(st.st_mode) and st.st_mode & 0o6000:  # chown cleared setuid
                os.chmod(path, st.st_mode & 0o7777)


def subid(path, name):
    with open(path) as f:
        for line in f:
            who, start, _ = line.strip().split(":")
            if who == name:
                return int(start)
    return None


@pytest.fixture(scope="module")
def world(user):  # noqa: F811
    """(the user, its store with rootfs "deb", its run base, its subuid start)."""
    sub, subg = subid("/etc/subuid", user.pw_name), subid("/etc/subgid", user.pw_name)
    if sub is None or subg is None or not shutil.which("newuidmap"):
        pytest.skip(f"no /etc/subuid range for {user.pw_name} or no newuidmap (apt-get install uidmap)")
    cache = cached_rootfs()
    top = tempfile.mkdtemp(prefix="ck-rootless-rootfs-", dir="/tmp")
    try:
        os.chmod(top, 0o755)
        entry = os.path.join(top, "store/rootfs/deb")
        os.makedirs(entry)
        shutil.copy(os.path.join(cache, "config.json"), entry)
        started = time.monotonic()
        shifted_copy(os.path.join(cache, "rootfs"), os.path.join(entry, "rootfs"),
                     user.pw_uid, user.pw_gid, sub, subg)
        print(f"\n[rootless rootfs] shifted copy of {cache} in {time.monotonic() - started:.1f} s")
        for d in (top + "/store", top + "/store/rootfs", entry, entry + "/config.json"):
            os.chown(d, user.pw_uid, user.pw_gid)
        yield user, os.path.join(top, "store"), f"/tmp/container-kernel-{user.pw_uid}/container-kernel", sub
    finally:
        shutil.rmtree(top)


def run(world, *options, script, timeout=60):
    pw, store = world[0], world[1]
    return as_user(pw, CK, "run", "--rootfs", "deb", *options, "--", "/bin/sh", "-c", script,
                   env={"CK_STORE": store}, timeout=timeout)


def left_in(base):
    return os.listdir(base) if os.path.isdir(base) else []


def test_writes_to_usr_succeed_the_image_is_unchanged_and_nothing_is_left(world):
    _, store, base, _ = world
    tree = os.path.join(store, "rootfs/deb/rootfs")
    before = os.stat(os.path.join(tree, "usr")).st_mtime
    started = time.monotonic()
    r = run(world, script="grep ^ID= /etc/os-release; echo written > /usr/written && cat /usr/written; "
            f"rm /usr/bin/tail && {OWNED} && stat -c %u /usr/owned/f && id -u")
    took = time.monotonic() - started
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["ID=debian", "written", "1000", "0"]
    print(f"\n[rootless overlay] run with a write to /usr and its cleanup: {took:.2f} s")
    assert not os.path.exists(os.path.join(tree, "usr/written"))
    assert not os.path.exists(os.path.join(tree, "usr/owned"))
    assert os.path.exists(os.path.join(tree, "usr/bin/tail"))
    assert os.stat(os.path.join(tree, "usr")).st_mtime == before
    assert left_in(base) == []  # no upper dir, no work dir, no run dir
    assert not os.path.exists(os.path.join(store, "layers"))
    r = run(world, script="test -e /usr/written || echo gone")
    assert r.stdout == "gone\n", r.stderr


def test_persist_keeps_a_layer_and_rm_layer_removes_its_subuid_files(world):
    pw, store, base, sub = world
    assert run(world, "--persist", "work", script=f"echo kept > /root/kept && {OWNED}").returncode == 0
    r = run(world, "--persist", "work", script="cat /root/kept /usr/owned/f")
    assert r.stdout == "kept\nx\n", r.stderr
    assert run(world, script="cat /root/kept 2>/dev/null || echo none").stdout == "none\n"
    owned = os.path.join(store, "layers/work/upper/usr/owned")
    assert os.stat(owned).st_uid == sub + 999  # the user alone could not unlink owned/f
    layers = json.loads(as_user(pw, CK, "rootfs", "layers", "--json", env={"CK_STORE": store}).stdout)
    assert [(x["name"], x["rootfs"], x["holder"]) for x in layers] == [("work", "deb", None)]
    r = as_user(pw, CK, "rootfs", "rm", "--layer", "work", env={"CK_STORE": store})
    assert r.returncode == 0, r.stderr
    assert os.listdir(os.path.join(store, "layers")) == []
    assert left_in(base) == []


def test_the_reaper_removes_the_upper_of_a_killed_launcher(world):
    pw, store, base, _ = world
    clean = {"PATH": "/usr/bin:/bin", "HOME": "/tmp", "LANG": "C.UTF-8", "CK_STORE": store}
    launcher = subprocess.Popen(["setpriv", f"--reuid={pw.pw_uid}", f"--regid={pw.pw_gid}", "--init-groups",
                                 "env", "-i", *[f"{k}={v}" for k, v in clean.items()],
                                 CK, "run", "--rootfs", "deb", "--", "/bin/sh", "-c",
                                 f"{OWNED} && touch /usr/owned/ready && sleep 60"],
                                cwd="/tmp", stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 30
        ready = None
        while time.monotonic() < deadline and ready is None:
            ready = next((d for d in left_in(base)
                          if os.path.exists(f"{base}/{d}/upper/usr/owned/ready")), None)
            time.sleep(0.05)
        assert ready, launcher.stderr.read() if launcher.poll() is not None else "no container"
        launcher.kill()  # setpriv and env exec: this is the launcher itself
        launcher.wait(10)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and left_in(base):
            time.sleep(0.1)
        assert left_in(base) == []
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(10)


def test_gc_removes_a_dead_container_s_upper_with_subuid_files(world):
    pw, _, base, sub = world
    os.makedirs(base, 0o700, exist_ok=True)
    stale = os.path.join(base, "deadbeef0001")
    owned = os.path.join(stale, "upper/usr/owned")
    os.makedirs(owned)
    os.makedirs(os.path.join(stale, "work/work"))
    with open(os.path.join(owned, "f"), "w") as f:
        f.write("x\n")
    with open(os.path.join(stale, "owner"), "w") as f:
        f.write("999999999 0\n")  # no such process: stale
    for top, dirs, files in os.walk(stale):
        for p in [top] + [os.path.join(top, n) for n in files]:
            os.lchown(p, pw.pw_uid, pw.pw_gid)
    for p in (owned, os.path.join(owned, "f")):
        os.lchown(p, sub + 999, sub + 999)
    os.chmod(owned, 0o700)
    os.chmod(os.path.join(stale, "work/work"), 0)  # as overlayfs leaves its workdir
    r = as_user(pw, CK, "gc")
    assert r.returncode == 0 and f"removed stale run dir {stale}" in r.stdout, r.stdout + r.stderr
    assert left_in(base) == []


def test_a_tree_the_user_does_not_own_is_refused_in_one_line(world):
    pw = world[0]
    cache = cached_rootfs()
    r = as_user(pw, CK, "run", "--rootfs", cache, "--", "/bin/true")
    assert r.returncode == 2, r.stderr
    assert "is owned by uid 0, not by you" in r.stderr and len(r.stderr.strip().splitlines()) == 1
