"""An overlay rootfs in the mount plan and the spec, before anything is mounted."""
import os

import pytest

from container_kernel.runtime import mounts, overlay, store
from container_kernel.runtime import spec as S
from container_kernel.runtime.errors import ContainerError


@pytest.fixture
def ours(tmp_path, monkeypatch):
    """A DIR of ours (config.json + rootfs/) in a tmp store."""
    monkeypatch.setenv("CK_STORE", str(tmp_path / "store"))
    entry = tmp_path / "store/rootfs/deb"
    for d in ("proc", "dev", "sys", "tmp", "run", "root", "etc"):
        (entry / "rootfs" / d).mkdir(parents=True)
    (entry / "rootfs/etc/hostname").write_text("image\n")
    store.write_config(str(entry), {"name": "deb", "kind": "build"})
    return entry


def build(*options, **kw):
    opts = {}
    for option, field, text in options:
        opts[field] = (option, text)
    return S.build(opts, ["/usr/bin/python3"], **kw)


@pytest.mark.skipif(os.geteuid() != 0, reason="an overlay rootfs needs root (spec.build says so)")
def test_the_plan_mounts_an_overlay_and_leaves_it_writable(ours):
    spec = build(("--rootfs", "rootfs", "deb"))
    assert spec.rootfs.kind == "overlay" and spec.rootfs.name == "deb" and str(spec.rootfs) == "deb"
    steps = mounts.plan(spec, "/r")
    first = steps[1]
    assert first.kind == "overlay" and first.target == "/"
    assert first.options == (f"lowerdir={ours}/rootfs,upperdir={spec.run_dir}/upper,"
                             f"workdir={spec.run_dir}/work")
    assert ("remount-ro", "/") not in [(s.kind, s.target) for s in steps]
    assert [s for s in steps if s.target == "/root"] == [mounts.Step("dir", "/root")]  # no tmpfs: the layer's
    assert mounts.Step("file-over", "/etc/hostname", spec.hostname + "\n") in steps
    assert dict(spec.process.env)["PATH"] == S.DEFAULT_PATH


@pytest.mark.skipif(os.geteuid() != 0, reason="an overlay rootfs needs root")
def test_persist_puts_the_upper_layer_in_the_store(ours, tmp_path):
    spec = build(("--rootfs", "rootfs", "deb"), ("--persist", "persist", "work"))
    assert spec.rootfs.layer == "work"
    assert overlay.dirs(spec) == (str(tmp_path / "store/layers/work/upper"),
                                  str(tmp_path / "store/layers/work/work"))


def test_persist_without_an_overlay_and_bad_names_are_refused(ours):
    with pytest.raises(ContainerError, match="--persist LAYER needs --rootfs NAME"):
        build(("--persist", "persist", "work"))
    with pytest.raises(ContainerError, match="invalid --persist layer name"):
        build(("--persist", "persist", "a/b"))
    with pytest.raises(ContainerError, match="no rootfs named 'nope'.*have: deb"):
        build(("--rootfs", "rootfs", "nope"))


def test_a_foreign_dir_stays_a_read_only_bind(tmp_path):
    for d in ("proc", "dev", "sys", "tmp"):
        (tmp_path / "tree" / d).mkdir(parents=True)
    spec = build(("--rootfs", "rootfs", str(tmp_path / "tree")))
    assert spec.rootfs.kind == "dir"
    steps = mounts.plan(spec, "/r")
    assert steps[1] == mounts.Step("rbind", "/", str(tmp_path / "tree"))
    assert mounts.Step("remount-ro", "/") in steps


def test_an_images_defaults_become_the_process(ours):
    store.write_config(str(ours), {"name": "deb", "kind": "import",
                                   "image": {"env": ["A=1"], "workdir": "/srv", "cmd": ["/bin/x"]}})
    if os.geteuid() != 0:
        pytest.skip("an overlay rootfs needs root")
    spec = build(("--rootfs", "rootfs", "deb"))
    assert dict(spec.process.env)["A"] == "1" and spec.process.cwd == "/srv"
    assert S.image_command({"rootfs": ("--rootfs", "deb")}) == ("/bin/x",)
