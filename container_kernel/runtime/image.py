"""`container-kernel rootfs import FILE.tar|DIR NAME`: a container image as a rootfs of the store.

Three shapes come in:
- `docker save`: a tar with manifest.json ([{"Config": ..., "Layers": [...]}]), each
  layer a tar inside it;
- an OCI image layout (image-spec image-layout.md): oci-layout, index.json and
  blobs/sha256/..., as a directory or a tar of one; index -> manifest -> config and
  layers, by digest (an index of platforms picks this host's);
- `docker export`: one flat tar of a container's filesystem, no config.
Layers are applied in manifest order by layers.py (whiteouts, entries kept inside).
The image config's Env, WorkingDir and Cmd (after its Entrypoint) become `run`'s
defaults (store.ImageDefaults). As a build does, the import fills a hidden entry
and renames it into place only when complete.
"""

import json
import os
import tarfile
import time

from . import layers, store
from .errors import ContainerError, usage

MOUNT_POINTS = (("proc", 0o555), ("sys", 0o555), ("dev", 0o755), ("tmp", 0o1777), ("run", 0o755))
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}


class Source:
    """An image to read from: a directory, or a tar of any of the three shapes."""

    def __init__(self, path):
        self.path = path
        self.tar = None if os.path.isdir(path) else _open_tar(path)
        self.names = None if self.tar is None else {_norm(m.name): m for m in self.tar.getmembers()}

    def has(self, name):
        if self.tar is None:
            return os.path.isfile(os.path.join(self.path, name))
        return name in self.names

    def open(self, name):
        """A file of the image (a blob, a layer): a binary file object."""
        if self.tar is None:
            _inside(self.path, name)
            return open(os.path.join(self.path, name), "rb")
        m = self.names.get(_norm(name))
        while m is not None and m.issym():  # docker save links identical layers to one blob
            m = self.names.get(_norm(os.path.normpath(os.path.join(os.path.dirname(m.name), m.linkname))))
        if m is None or not m.isreg():
            raise ContainerError(f"rootfs import: {self.path} has no file {name!r} that its manifest names")
        return self.tar.extractfile(m)

    def json(self, name):
        with self.open(name) as f:
            try:
                return json.load(f)
            except ValueError as e:
                raise ContainerError(f"rootfs import: {name} in {self.path} is not JSON: {e}") from None

    def close(self):
        if self.tar is not None:
            self.tar.close()


def _open_tar(path):
    try:
        return tarfile.open(path, "r:*")
    except (OSError, tarfile.TarError):
        raise usage(f"rootfs import: {path!r} is neither a directory nor a tar file: give a "
                    "`docker save` or `docker export` tarball, or an OCI image layout") from None


def _norm(name):
    return name[2:] if name.startswith("./") else name


def _inside(top, name):
    if layers.clean_name(name) != name.strip("/"):
        raise ContainerError(f"rootfs import: refused the blob path {name!r}")


def read(source):
    """(format, [layer names], image config dict) of a Source."""
    if source.has("manifest.json"):
        manifest = source.json("manifest.json")
        if not isinstance(manifest, list) or not manifest or "Layers" not in manifest[0]:
            raise ContainerError(f"rootfs import: {source.path}: manifest.json is not a docker save manifest")
        config = source.json(manifest[0]["Config"]) if manifest[0].get("Config") else {}
        return "docker save", list(manifest[0]["Layers"]), config
    if source.has("oci-layout") and source.has("index.json"):
        manifest = _oci_manifest(source, source.json("index.json"))
        config = source.json(_blob(manifest["config"]["digest"]))
        for layer in manifest.get("layers", ()):
            if "zstd" in layer.get("mediaType", ""):
                raise ContainerError("rootfs import: zstd-compressed layers are not supported: "
                                     "re-export the image with gzip or uncompressed layers")
        return "OCI layout", [_blob(l["digest"]) for l in manifest.get("layers", ())], config
    if source.tar is None:
        raise usage(f"rootfs import: {source.path!r} is a directory but not an OCI image layout "
                    "(no oci-layout and index.json): give a tarball or an OCI layout")
    return "docker export", [None], {}


def _blob(digest):
    algo, _, hexpart = str(digest).partition(":")
    if algo not in ("sha256", "sha512") or not hexpart.isalnum():
        raise ContainerError(f"rootfs import: invalid digest {digest!r}")
    return f"blobs/{algo}/{hexpart}"


def _oci_manifest(source, index, depth=0):
    """index.json -> an image manifest: this host's platform when the index lists several."""
    manifests = index.get("manifests") or []
    if not manifests or depth > 4:
        raise ContainerError(f"rootfs import: {source.path}: the OCI index lists no image manifest")
    arch = ARCH.get(os.uname().machine, os.uname().machine)
    chosen = next((m for m in manifests if (m.get("platform") or {}).get("architecture") == arch),
                  manifests[0])
    doc = source.json(_blob(chosen["digest"]))
    if "manifests" in doc:  # a nested index (an image of several platforms)
        return _oci_manifest(source, doc, depth + 1)
    return doc


def defaults(config):
    c = config.get("config") or config.get("container_config") or {}
    cmd = list(c.get("Entrypoint") or []) + list(c.get("Cmd") or [])
    return {"env": list(c.get("Env") or []), "workdir": c.get("WorkingDir") or None, "cmd": cmd}


def import_image(path, name):
    name = store.parse_name(name)
    if not os.path.exists(path):
        raise usage(f"rootfs import: {path!r} does not exist: give a tarball or an OCI layout directory")
    target = store.rootfs_dir(name)
    if os.path.lexists(target):
        raise usage(f"rootfs import: a rootfs named {name!r} exists ({target}): "
                    "`container-kernel rootfs rm` it first, or choose another name")
    source = Source(os.path.abspath(path))
    try:
        kind, names, config = read(source)
        os.makedirs(os.path.dirname(target), 0o755, exist_ok=True)
        work = os.path.join(os.path.dirname(target), f"{store.NEW}{name}-{os.getpid()}")
        os.mkdir(work, 0o755)
        try:
            start = time.monotonic()
            tree = os.path.join(work, "rootfs")
            os.mkdir(tree, 0o755)
            notes = {}
            for i, layer in enumerate(names):
                print(f"[{time.monotonic() - start:5.0f}s] layer {i + 1}/{len(names)}"
                      f"{': ' + layer if layer else ''}", flush=True)
                notes.update(_apply_layer(source, layer, tree))
            for d, mode in MOUNT_POINTS:  # a scratch image may lack them; mounts need them
                if not os.path.lexists(os.path.join(tree, d)):
                    os.mkdir(os.path.join(tree, d))
                    os.chmod(os.path.join(tree, d), mode)
            from .rootfs_build import os_release
            store.write_config(work, {"name": name, "kind": "import", "format": kind,
                                      "source": os.path.abspath(path), "layers": names,
                                      "image": defaults(config), "built": time.time(),
                                      "seconds": round(time.monotonic() - start, 1),
                                      "size": store.tree_size(tree), "os_release": os_release(tree),
                                      **notes})
            os.rename(work, target)
        except BaseException:
            store.remove(work)
            raise
    finally:
        source.close()
    return store.entry(target, name)


def _apply_layer(source, layer, tree):
    if layer is None:  # docker export: the tarball is the one layer
        tar = source.tar
        return layers.apply(tree, tar, layers.classify((m.name, m) for m in tar.getmembers()))
    with source.open(layer) as f:
        try:
            tar = tarfile.open(fileobj=f, mode="r:*")
        except tarfile.TarError as e:
            raise ContainerError(f"rootfs import: the layer {layer} is not a tar: {e}") from None
        with tar:
            return layers.apply(tree, tar, layers.classify((m.name, m) for m in tar.getmembers()))
