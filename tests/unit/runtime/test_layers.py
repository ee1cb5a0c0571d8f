"""layers.py: names, whiteouts and the path checks, on a tmp tree (no root needed)."""
import io
import os
import tarfile

import pytest

from container_kernel.runtime import layers
from container_kernel.runtime.layers import Escape


def test_clean_name_drops_dots_and_refuses_dotdot():
    assert layers.clean_name("./usr//bin/./x") == "usr/bin/x"
    assert layers.clean_name("/etc/passwd") == "etc/passwd"
    assert layers.clean_name("./") == ""
    for bad in ("../x", "a/../../x", "a/.."):
        with pytest.raises(Escape, match="'..'"):
            layers.clean_name(bad)


def test_classify_puts_opaque_first_wherever_it_sits():
    names = [("opq/new", 1), ("etc/.wh.gone", 2), ("opq/.wh..wh..opq", 3), ("./", 4), ("etc/b", 5)]
    plan = layers.classify(names)
    assert plan.opaque == ["opq"]
    assert plan.whiteouts == ["etc/gone"]
    assert plan.entries == [("opq/new", 1), ("etc/b", 5)]
    assert layers.classify([(".wh..wh..opq", 0)]).opaque == [""]  # the root itself


def test_whiteout_of_nothing_is_refused():
    with pytest.raises(Escape):
        layers.classify([("etc/.wh.", 0)])


def test_resolve_parent_follows_relative_links_inside(tmp_path):
    (tmp_path / "usr/bin").mkdir(parents=True)
    (tmp_path / "bin").symlink_to("usr/bin")
    (tmp_path / "usr/lib").mkdir()
    (tmp_path / "usr/bin/up").symlink_to("../lib")
    assert layers.host_path(str(tmp_path), "bin/sh") == str(tmp_path / "usr/bin/sh")
    assert layers.host_path(str(tmp_path), "bin/up/x") == str(tmp_path / "usr/lib/x")
    assert layers.host_path(str(tmp_path), "new/dir/x") == str(tmp_path / "new/dir/x")


def test_resolve_parent_refuses_links_that_lead_out(tmp_path):
    (tmp_path / "abs").symlink_to("/etc")
    (tmp_path / "d").mkdir()
    (tmp_path / "d/climb").symlink_to("../../..")
    (tmp_path / "loop").symlink_to("loop")
    for name in ("abs/passwd", "d/climb/etc/passwd", "loop/x"):
        with pytest.raises(Escape):
            layers.host_path(str(tmp_path), name)
    # The last component is never followed: a link there is replaced, not written through.
    assert layers.host_path(str(tmp_path), "abs") == str(tmp_path / "abs")


def _tar(entries):
    """[(name, kind, payload)] -> an open tarfile in memory."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        for name, kind, payload in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if kind == "dir":
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                t.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                t.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.LNKTYPE, payload
                t.addfile(info)
            else:
                data = payload.encode()
                info.size, info.mode = len(data), 0o644
                t.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return tarfile.open(fileobj=buf, mode="r")


def _apply(root, entries):
    tar = _tar(entries)
    layers.apply(str(root), tar, layers.classify((m.name, m) for m in tar.getmembers()), as_root=False)


def test_two_layers_with_whiteouts(tmp_path):
    _apply(tmp_path, [("etc", "dir", None), ("etc/a", "file", "a"), ("etc/gone", "file", "x"),
                      ("opq", "dir", None), ("opq/old", "file", "old"), ("l", "sym", "etc/a")])
    _apply(tmp_path, [("opq/new", "file", "new"), ("opq/.wh..wh..opq", "file", ""),
                      ("etc/.wh.gone", "file", ""), ("l", "file", "replaced, not written through")])
    assert sorted(os.listdir(tmp_path / "opq")) == ["new"]
    assert sorted(os.listdir(tmp_path / "etc")) == ["a"]
    assert (tmp_path / "etc/a").read_text() == "a"
    assert not (tmp_path / "l").is_symlink() and (tmp_path / "l").read_text().startswith("replaced")


def test_a_file_over_an_absolute_link_does_not_follow_it(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "root"
    root.mkdir()
    _apply(root, [("x", "sym", str(outside / "victim"))])
    _apply(root, [("x", "file", "mine")])
    assert not (outside / "victim").exists() and (root / "x").read_text() == "mine"
    with pytest.raises(Escape):
        _apply(root, [("d", "sym", str(outside)), ("d/pwned", "file", "no")])
    assert not (outside / "pwned").exists()


def test_hard_links_must_stay_inside(tmp_path):
    _apply(tmp_path, [("a", "file", "a"), ("b", "link", "a")])
    assert os.stat(tmp_path / "a").st_ino == os.stat(tmp_path / "b").st_ino
    for target in ("../../etc/passwd", "/etc/passwd", "missing"):
        with pytest.raises(Escape):
            _apply(tmp_path, [("c", "link", target)])
