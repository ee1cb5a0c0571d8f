"""`rootfs import`: images this test builds itself, in the three shapes, into a tmp store."""
import hashlib
import io
import json
import os
import shutil
import stat
import tarfile

import pytest

from tests.helpers import ck, requires_root

pytestmark = requires_root
BUSYBOX = shutil.which("busybox")
MTIME = 1_700_000_000


def layer(entries):
    """[(name, kind, payload, mode)] -> the bytes of a layer tar."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as t:
        for name, kind, payload, mode in entries:
            info = tarfile.TarInfo(name)
            info.mtime, info.mode = MTIME, mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                t.addfile(info)
            elif kind == "sym":
                info.type, info.linkname = tarfile.SYMTYPE, payload
                t.addfile(info)
            elif kind == "chr":
                info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 3
                t.addfile(info)
            else:
                data = payload if isinstance(payload, bytes) else payload.encode()
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def two_layers():
    busybox = open(BUSYBOX, "rb").read() if BUSYBOX else b"#!/bin/false\n"
    one = layer([("bin", "dir", None, 0o755), ("bin/busybox", "file", busybox, 0o755),
                 ("bin/sh", "sym", "busybox", 0o777), ("bin/cat", "sym", "busybox", 0o777),
                 ("etc", "dir", None, 0o755), ("etc/a", "file", "from layer 1\n", 0o644),
                 ("etc/gone", "file", "whited out\n", 0o644),
                 ("opq", "dir", None, 0o755), ("opq/old", "file", "old\n", 0o644),
                 ("usr", "dir", None, 0o755), ("usr/bin", "dir", None, 0o755),
                 ("usr/bin/su", "file", "setuid\n", 0o4755), ("null-node", "chr", None, 0o666)])
    two = layer([("opq/new", "file", "new\n", 0o644),  # before its opaque marker, on purpose
                 ("opq/.wh..wh..opq", "file", "", 0o644), ("etc/.wh.gone", "file", "", 0o644),
                 ("etc/link", "sym", "a", 0o777), ("etc/b", "file", "from layer 2\n", 0o600)])
    return [one, two]


CONFIG = {"architecture": "amd64", "os": "linux",
          "config": {"Env": ["GREETING=hello", "PATH=/bin"], "WorkingDir": "/etc",
                     "Cmd": ["/bin/cat", "a", "b"]}}
EXPECTED = {  # path: (type, mode, link target or content)
    "bin/busybox": ("reg", 0o755, None), "bin/sh": ("lnk", None, "busybox"),
    "bin/cat": ("lnk", None, "busybox"), "etc/a": ("reg", 0o644, "from layer 1\n"),
    "etc/b": ("reg", 0o600, "from layer 2\n"), "etc/link": ("lnk", None, "a"),
    "opq/new": ("reg", 0o644, "new\n"), "usr/bin/su": ("reg", 0o4755, "setuid\n"),
    "null-node": ("chr", 0o666, (1, 3)),
}


def docker_save(path, layers, config=CONFIG):
    with tarfile.open(path, "w") as t:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), MTIME
            t.addfile(info, io.BytesIO(data))
        names = []
        for i, data in enumerate(layers):
            names.append(f"l{i}/layer.tar")
            add(names[-1], data)
        add("config.json", json.dumps(config).encode())
        add("manifest.json", json.dumps([{"Config": "config.json", "RepoTags": ["t:1"],
                                          "Layers": names}]).encode())


def oci_layout(d, layers, config=CONFIG):
    blobs = d / "blobs/sha256"
    blobs.mkdir(parents=True)

    def blob(data):
        digest = hashlib.sha256(data).hexdigest()
        (blobs / digest).write_bytes(data)
        return {"digest": f"sha256:{digest}", "size": len(data)}
    manifest = {"schemaVersion": 2, "config": blob(json.dumps(config).encode()),
                "layers": [dict(blob(x), mediaType="application/vnd.oci.image.layer.v1.tar")
                           for x in layers]}
    (d / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (d / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [
        dict(blob(json.dumps(manifest).encode()), platform={"architecture": "amd64", "os": "linux"})]}))


def tree(root):
    out = {}
    for top, dirs, files in os.walk(root):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            p = os.path.join(top, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                out[rel] = ("lnk", None, os.readlink(p))
            elif stat.S_ISCHR(st.st_mode):
                out[rel] = ("chr", stat.S_IMODE(st.st_mode), (os.major(st.st_rdev), os.minor(st.st_rdev)))
            else:
                content = None if rel == "bin/busybox" else open(p).read()
                out[rel] = ("reg", stat.S_IMODE(st.st_mode), content)
    return out


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.setenv("CK_STORE", str(tmp_path / "store"))
    return tmp_path / "store"


@pytest.mark.parametrize("shape", ["docker-save", "oci-dir"])
def test_two_layers_give_exactly_the_expected_tree(tmp_path, store, shape):
    if shape == "docker-save":
        src = tmp_path / "image.tar"
        docker_save(src, two_layers())
    else:
        src = tmp_path / "oci"
        oci_layout(src, two_layers())
    r = ck("rootfs", "import", str(src), "img")
    assert r.returncode == 0, r.stderr
    root = store / "rootfs/img/rootfs"
    assert tree(root) == EXPECTED
    assert sorted(os.listdir(root)) == sorted(["bin", "etc", "opq", "usr", "null-node",
                                               "proc", "sys", "dev", "tmp", "run"])
    config = json.loads((store / "rootfs/img/config.json").read_text())
    assert config["image"] == {"env": ["GREETING=hello", "PATH=/bin"], "workdir": "/etc",
                               "cmd": ["/bin/cat", "a", "b"]}
    assert len(config["layers"]) == 2
    ls = ck("rootfs", "ls")
    assert "img" in ls.stdout and "import" in ls.stdout


@pytest.mark.skipif(not BUSYBOX, reason="needs busybox-static to make a runnable image")
def test_the_image_config_is_runs_default(tmp_path, store):
    src = tmp_path / "image.tar"
    docker_save(src, two_layers())
    assert ck("rootfs", "import", str(src), "img").returncode == 0
    r = ck("run", "--rootfs", "img")  # no command: the image's Cmd, in its WorkingDir
    assert r.returncode == 0, r.stderr
    assert r.stdout == "from layer 1\nfrom layer 2\n"
    r = ck("run", "--rootfs", "img", "--", "/bin/sh", "-c", "echo $GREETING; pwd")
    assert r.stdout == "hello\n/etc\n"


def test_docker_export_is_one_layer(tmp_path, store):
    src = tmp_path / "export.tar"
    src.write_bytes(layer([("etc", "dir", None, 0o755), ("etc/os-release", "file",
                                                          'PRETTY_NAME="Tiny"\n', 0o644)]))
    r = ck("rootfs", "import", str(src), "flat")
    assert r.returncode == 0, r.stderr
    config = json.loads((store / "rootfs/flat/config.json").read_text())
    assert config["format"] == "docker export" and config["os_release"] == "Tiny"


def hostile_layers(kind, victim):
    """A layer beneath plants a link (harmless alone); the next entry would go through it."""
    if kind == "dotdot":
        return [layer([("../escape", "file", "out", 0o644)])]
    if kind == "abs-link":
        return [layer([("evil", "sym", str(victim), 0o777)]),
                layer([("evil/pwned", "file", "through", 0o644)])]
    return [layer([("d", "dir", None, 0o755), ("d/up", "sym", "../..", 0o777)]),
            layer([("d/up/pwned", "file", "x", 0o644)])]


@pytest.mark.parametrize("kind", ["dotdot", "abs-link", "climb"])
def test_hostile_entries_are_refused_and_nothing_is_made(tmp_path, store, kind):
    (tmp_path / "victim").mkdir()
    src = tmp_path / "hostile.tar"
    docker_save(src, hostile_layers(kind, tmp_path / "victim"))
    r = ck("rootfs", "import", str(src), "bad")
    assert r.returncode != 0 and "refused" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert os.listdir(store / "rootfs") == []  # no entry, and no hidden half-made one either
    assert not (tmp_path / "escape").exists() and not os.listdir(tmp_path / "victim")
    assert not (store / "pwned").exists() and not (tmp_path / "pwned").exists()


def test_hard_link_outside_is_refused(tmp_path, store):
    src = tmp_path / "hl.tar"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as t:
        info = tarfile.TarInfo("passwd")
        info.type, info.linkname = tarfile.LNKTYPE, "../../../etc/passwd"
        t.addfile(info)
    docker_save(src, [buf.getvalue()])
    r = ck("rootfs", "import", str(src), "hl")
    assert r.returncode != 0 and "refused the hard link" in r.stderr


def test_bad_input_is_one_line(tmp_path, store):
    (tmp_path / "notimage").mkdir()
    (tmp_path / "junk.tar").write_text("not a tar")
    for args, words in ((["/nonexistent.tar", "x"], "does not exist"),
                        ([str(tmp_path / "notimage"), "x"], "not an OCI image layout"),
                        ([str(tmp_path / "junk.tar"), "x"], "neither a directory nor a tar"),
                        ([str(tmp_path / "junk.tar"), "bad/name"], "invalid rootfs name")):
        r = ck("rootfs", "import", *args)
        assert r.returncode == 2 and words in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
