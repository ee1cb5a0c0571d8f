"""run --rootfs on an overlay: the image below stays pristine, --persist keeps a layer, one writer."""
import json
import os
import shutil
import time

import pytest

from tests.helpers import ck, requires_root, start
from tests.rootfs_cache import debian_rootfs  # noqa: F401

pytestmark = requires_root


@pytest.fixture
def store(tmp_path, monkeypatch, debian_rootfs):  # noqa: F811
    """A tmp store whose rootfs "deb" is the cached build (its tree linked, not copied)."""
    s = tmp_path / "store"
    entry = s / "rootfs/deb"
    entry.mkdir(parents=True)
    shutil.copy(os.path.join(debian_rootfs, "config.json"), entry / "config.json")
    (entry / "rootfs").symlink_to(os.path.join(debian_rootfs, "rootfs"))
    monkeypatch.setenv("CK_STORE", str(s))
    return s


def sh(*options, script):
    return ck("run", *options, "--", "/bin/sh", "-c", script)


def test_a_debian_userland_writes_succeed_and_the_image_is_unchanged(store, debian_rootfs):  # noqa: F811
    tree = os.path.join(debian_rootfs, "rootfs")
    before = os.stat(os.path.join(tree, "usr")).st_mtime
    r = sh("--rootfs", "deb", script="grep ^ID= /etc/os-release; command -v python3; "
           "echo written > /usr/written && cat /usr/written; rm /usr/bin/tail; echo $PATH")
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["ID=debian", "/usr/bin/python3", "written",
                                     "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]
    assert not os.path.exists(os.path.join(tree, "usr/written"))
    assert os.path.exists(os.path.join(tree, "usr/bin/tail"))
    assert os.stat(os.path.join(tree, "usr")).st_mtime == before
    # The next container starts from the image again.
    assert sh("--rootfs", "deb", script="test -e /usr/written || echo gone").stdout == "gone\n"


def test_a_dir_of_ours_is_an_overlay_too(debian_rootfs):  # noqa: F811
    r = ck("run", "--rootfs", debian_rootfs, "--print-plan", "--", "/bin/true")
    assert r.returncode == 0 and "\noverlay    / <- " in r.stdout
    assert "remount-ro /\n" not in r.stdout


def test_persist_keeps_a_layer_and_without_it_nothing_stays(store):
    assert sh("--rootfs", "deb", "--persist", "work", script="echo kept > /root/kept").returncode == 0
    assert sh("--rootfs", "deb", "--persist", "work", script="cat /root/kept").stdout == "kept\n"
    assert sh("--rootfs", "deb", script="cat /root/kept 2>/dev/null || echo none").stdout == "none\n"
    layers = json.loads(ck("rootfs", "layers", "--json").stdout)
    assert [(x["name"], x["rootfs"], x["holder"]) for x in layers] == [("work", "deb", None)]
    assert (store / "layers/work/upper/root/kept").read_text() == "kept\n"


def test_one_writer_a_layer(store, procs):
    first = start("run", "--rootfs", "deb", "--persist", "one", "--", "/bin/sleep", "30")
    procs.append(first)
    deadline = time.time() + 20
    while time.time() < deadline and not (store / "layers/one/holder").exists():
        time.sleep(0.05)
    r = sh("--rootfs", "deb", "--persist", "one", script="true")
    assert r.returncode == 125 and "the layer 'one' is in use by" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    r = ck("rootfs", "rm", "--layer", "one")
    assert r.returncode != 0 and "in use" in r.stderr
    first.terminate()
    first.wait(20)
    assert sh("--rootfs", "deb", "--persist", "one", script="true").returncode == 0
    assert ck("rootfs", "rm", "--layer", "one").returncode == 0
    assert not (store / "layers/one").exists()


def test_persist_needs_a_rootfs_of_ours_and_a_good_name(store):
    r = ck("run", "--persist", "x", "--", "true")
    assert r.returncode == 2 and "--persist LAYER needs --rootfs NAME" in r.stderr
    r = ck("run", "--rootfs", "deb", "--persist", "../x", "--", "true")
    assert r.returncode == 2 and "invalid --persist layer name" in r.stderr
    r = ck("run", "--rootfs", "nosuch", "--", "true")
    assert r.returncode == 2 and "no rootfs named 'nosuch'" in r.stderr and "deb" in r.stderr


def test_ls_and_rm(store, debian_rootfs):  # noqa: F811
    ls = ck("rootfs", "ls")
    assert ls.returncode == 0 and "deb" in ls.stdout and "Debian GNU/Linux 12" in ls.stdout
    r = ck("rootfs", "rm", "deb")
    assert r.returncode == 0, r.stderr
    assert not (store / "rootfs/deb").exists()
    assert os.path.isfile(os.path.join(debian_rootfs, "rootfs/usr/bin/python3"))  # the link went, not the tree
    r = ck("rootfs", "rm", "/etc")
    assert r.returncode == 2 and "not a rootfs of container-kernel" in r.stderr
