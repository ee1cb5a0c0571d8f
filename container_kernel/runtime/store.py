"""Where named root filesystems and their persistent upper layers live.

    <store>/rootfs/NAME/config.json   what made it (ours: the marker), its config key, facts
    <store>/rootfs/NAME/rootfs/       the tree, the overlay's lower layer, never written
    <store>/layers/NAME/              a `--persist NAME` upper layer (overlay.py)

The store is /var/lib/container-kernel for root, $XDG_DATA_HOME/container-kernel
(~/.local/share) for a user; $CK_STORE names another (the tests' tmp store). A
DIR given to `rootfs build` has the same shape as a NAME's entry, so either is
"ours" exactly when its config.json says so; nothing else is ever removed.
"""

import os
from collections import namedtuple

from .errors import ContainerError, usage

MARKER = "container-kernel rootfs"  # config.json's "made_by": what makes a dir ours
NEW = ".new-"  # an entry being made: renamed into place complete, or removed


def base(rootless=None):
    rootless = os.geteuid() != 0 if rootless is None else rootless
    if os.environ.get("CK_STORE"):
        return os.path.abspath(os.environ["CK_STORE"])
    if not rootless:
        return "/var/lib/container-kernel"
    data = os.environ.get("XDG_DATA_HOME") or os.path.expanduser("~/.local/share")
    return os.path.join(data, "container-kernel")


def parse_name(text, what="rootfs name"):
    """A store name: letters, digits, '.', '_', '-'; no '/', so it never leaves the store."""
    ok = (text and len(text) <= 64 and text.isascii() and text[0].isalnum()
          and all(c.isalnum() or c in "._-" for c in text))
    if not ok:
        raise usage(f"invalid {what} {text!r}: use letters, digits, '.', '_' and '-' "
                    "(a path with a '/' names a directory)")
    return text


def is_path(text):
    return "/" in text or text in (".", "..")


def rootfs_dir(name):
    return os.path.join(base(), "rootfs", name)


def layer_dir(name):
    return os.path.join(base(), "layers", name)


class Entry(namedtuple("Entry", "name path tree config")):
    """A rootfs of ours: path holds config.json and the tree (the overlay's lower layer)."""
    __slots__ = ()

    @property
    def key(self):
        return self.config.get("key")

    def defaults(self):
        """An imported image's Env, WorkingDir and Cmd, as `run`'s defaults (None: none)."""
        image = self.config.get("image") or {}
        env = tuple(tuple(e.split("=", 1)) for e in image.get("env") or () if "=" in e)
        if not (env or image.get("workdir") or image.get("cmd")):
            return None
        return ImageDefaults(env, image.get("workdir") or None, tuple(image.get("cmd") or ()))


class ImageDefaults(namedtuple("ImageDefaults", "env workdir cmd")):
    """env: ((name, value), ...); workdir: a path or None; cmd: the argv, or ()."""
    __slots__ = ()


def read_config(path):
    """path's config.json if it is ours, else None."""
    import json  # not at the top: json imports re, and this module is on run's start path
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("made_by") == MARKER else None


def entry(path, name=None):
    config = read_config(path)
    if config is None:
        return None
    return Entry(name or config.get("name") or os.path.basename(path), path,
                 os.path.join(path, "rootfs"), config)


def find(text, option="--rootfs"):
    """NAME (in the store) or DIR (ours) -> Entry; None for a DIR that is not ours."""
    if is_path(text):
        return entry(os.path.abspath(text))
    parse_name(text)
    found = entry(rootfs_dir(text), text)
    if found is None:
        names = ", ".join(e.name for e in entries()) or "none yet: container-kernel rootfs build NAME"
        raise usage(f"{option}: no rootfs named {text!r} in {os.path.join(base(), 'rootfs')} "
                    f"(have: {names}); use host, a NAME, or a directory")
    return found


def entries():
    top = os.path.join(base(), "rootfs")
    try:
        names = sorted(os.listdir(top))
    except OSError:
        return []
    return [e for e in (entry(os.path.join(top, n), n) for n in names if not n.startswith(NEW))
            if e is not None]


def write_config(path, config):
    import json
    tmp = os.path.join(path, "config.json.tmp")
    with open(tmp, "w") as f:
        json.dump(dict(config, made_by=MARKER), f, indent=1, sort_keys=True)
        f.write("\n")
    os.rename(tmp, os.path.join(path, "config.json"))


def tree_size(path):
    """Bytes a tree takes on disk, each inode once (hard links), not crossing mounts."""
    total, seen = 0, set()
    dev = os.lstat(path).st_dev
    for top, dirs, files in os.walk(path):
        for name in dirs + files:
            try:
                st = os.lstat(os.path.join(top, name))
            except OSError:
                continue
            if st.st_dev != dev or (st.st_ino in seen):
                continue
            seen.add(st.st_ino)
            total += st.st_blocks * 512
        dirs[:] = [d for d in dirs if os.lstat(os.path.join(top, d)).st_dev == dev]
    return total


def remove(path):
    """rm -r of an entry of ours, first under a hidden name so no half-removed entry is
    ever listed."""
    if read_config(path) is None and not os.path.basename(path).startswith(NEW):
        raise ContainerError(f"{path} is not a rootfs of container-kernel (no config.json of ours): "
                             "not removing it")
    hidden = os.path.join(os.path.dirname(path), NEW + "rm-" + os.path.basename(path))
    os.rename(path, hidden)
    remove_tree(hidden)


def remove_tree(path):
    """rm -r that refuses a tree with a mount inside (a build's /proc, a bind): it would
    delete through it. A build runs in a mount namespace of its own, so there should be none."""
    import shutil
    from . import procfs
    inside = [m.point for m in procfs.mountinfo() if m.point == path or m.point.startswith(path + "/")]
    if inside:
        raise ContainerError(f"not removing {path}: {inside[0]} is mounted inside it; umount it first")
    try:
        shutil.rmtree(path, ignore_errors=not os.path.exists(path))
    except PermissionError:  # a user's tree with files of its subuids (a rootless layer or build)
        if os.geteuid() == 0:
            raise
        from . import unshare_rm
        unshare_rm.remove([path])
