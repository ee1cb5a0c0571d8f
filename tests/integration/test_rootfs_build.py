"""`rootfs build`: the cached minbase build (tests/rootfs_cache.py), its reuse, and its errors."""
import json
import os
import shutil
import subprocess

import pytest

from tests.helpers import CK, ck, requires_root
from tests.rootfs_cache import SUITE, VARIANT, debian_rootfs  # noqa: F401

pytestmark = requires_root


def test_the_build_is_measured_verified_and_ours(debian_rootfs):  # noqa: F811
    config = json.load(open(os.path.join(debian_rootfs, "config.json")))
    assert config["made_by"] == "container-kernel rootfs" and config["kind"] == "build"
    assert config["seconds"] > 0 and 100 << 20 < config["size"] < 2 << 30
    assert config["os_release"].startswith("Debian GNU/Linux")
    # verified by running its own python in a container: the versions it reported
    assert config["executable"] == "/usr/bin/python3" and config["ipykernel"]
    assert set(config["config"]["packages"]) >= {"python3", "python3-ipykernel", "python3-psutil",
                                                 "python3-ipywidgets"}
    tree = os.path.join(debian_rootfs, "rootfs")
    assert os.path.isfile(os.path.join(tree, "usr/bin/python3"))
    assert not os.listdir(os.path.join(tree, "proc"))  # no mount of the build was left in it
    assert not [n for n in os.listdir(os.path.join(tree, "var/cache/apt/archives")) if n.endswith(".deb")]


def test_a_rerun_with_the_same_config_reuses_it(debian_rootfs):  # noqa: F811
    r = ck("rootfs", "build", "--suite", SUITE, "--variant", VARIANT, debian_rootfs)
    assert r.returncode == 0 and "up to date" in r.stdout, r.stdout + r.stderr


def test_another_config_in_the_same_dir_is_refused(debian_rootfs):  # noqa: F811
    r = ck("rootfs", "build", "--suite", SUITE, "--package", "curl", debian_rootfs)
    assert r.returncode == 2 and "another config (packages differ)" in r.stderr


def _refused(args, words, **kw):
    r = ck("rootfs", "build", *args, **kw)
    assert r.returncode == 2, r.stderr
    assert words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    return r


def test_errors_are_one_line_and_create_nothing(tmp_path):
    store = tmp_path / "store"
    env = dict(os.environ, CK_STORE=str(store))
    (tmp_path / "notours").mkdir()
    (tmp_path / "notours/file").write_text("someone's")
    _refused([str(tmp_path / "notours")], "is not a rootfs of container-kernel", env=env)
    assert os.listdir(tmp_path / "notours") == ["file"]
    _refused(["--variant", "huge", "x"], "--variant: 'huge' is not one of minbase, buildd", env=env)
    _refused(["--suite", "nosuch", "x"], "name no mirror for suite 'nosuch'", env=env)
    _refused(["--package", "Bad_Name", "x"], "invalid package name", env=env)
    _refused(["bad name"], "invalid rootfs name", env=env)
    # Neither tool on PATH: the error says what to install.
    _refused(["x"], "debootstrap is not installed: apt-get install debootstrap mmdebstrap",
             env=dict(env, PATH="/nonexistent"))
    assert not store.exists()


def tool_path(tmp_path):
    """PATH with debootstrap on it: the real one, or where there is none (a machine without
    it; CI has it) one that fails loudly, for the refusals that must come before it runs."""
    if shutil.which("debootstrap"):
        return os.environ["PATH"]
    (tmp_path / "bin").mkdir()
    fake = tmp_path / "bin/debootstrap"
    fake.write_text("#!/bin/sh\necho 'debootstrap ran: the refusal came too late' >&2\nexit 99\n")
    fake.chmod(0o755)
    return f"{tmp_path / 'bin'}:{os.environ['PATH']}"


def test_an_unreachable_mirror_is_one_line_before_anything_is_made(tmp_path):
    r = ck("rootfs", "build", "--mirror", "http://127.0.0.1:9/debian", "x",
           env=dict(os.environ, CK_STORE=str(tmp_path / "store"), PATH=tool_path(tmp_path)))
    assert r.returncode == 2 and "no mirror reachable for" in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "store").exists()


def test_too_little_disk_space_is_refused_before_it_starts(tmp_path):
    tiny = tmp_path / "tiny"
    tiny.mkdir()
    # A named tmpfs of our own, so a leftover could be found; unmounted whatever happens.
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "ck-test-tiny", str(tiny)], check=True)
    try:
        _refused([str(tiny / "x")], "only 64 MiB free on",
                 env=dict(os.environ, PATH=tool_path(tmp_path)))
        assert os.listdir(tiny) == []
    finally:
        subprocess.run(["umount", str(tiny)], check=True)


def test_apt_get_install_inside_survives_with_persist(debian_rootfs, tmp_path):  # noqa: F811
    """The issue's "an installed package survives a restart": apt-get, from the mirror."""
    env = dict(os.environ, CK_STORE=str(tmp_path / "store"))
    run = ("run", "--rootfs", debian_rootfs, "--persist", "apt")
    r = ck(*run, "--network", "host", "--", "/bin/sh", "-c",
           "apt-get update -qq && apt-get install -y -qq sl >/dev/null 2>&1; test -x /usr/games/sl",
           env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    assert ck(*run, "--", "/usr/games/sl", "--help", env=env).returncode in (0, 1)  # it is there
    assert not os.path.exists(os.path.join(debian_rootfs, "rootfs/usr/games/sl"))


def test_help_names_the_subcommands():
    r = ck("rootfs", "--help")
    assert r.returncode == 0 and all(w in r.stdout for w in ("build", "import", "ls", "layers", "rm"))
    assert CK
