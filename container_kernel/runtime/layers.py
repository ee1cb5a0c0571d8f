"""Applying one image layer (a tar) onto a tree: whiteouts, and entries that stay inside.

The OCI image-spec's layer.md says what a layer means:
- `.wh.NAME` deletes NAME (and all below it) from the layers beneath;
- `.wh..wh..opq` in a directory deletes everything the layers beneath put in it,
  and applies *before* this layer's other entries there, wherever it sits in the tar;
- every other entry is created as the tar says, with its owner, mode (setuid
  too), device numbers, and xattrs (file capabilities live in security.capability).

Python's tarfile `data` filter refuses setuid bits and device nodes, which a
distribution's rootfs needs, so the checks here are written out instead:
- no name may hold a `..` component: an entry names a path inside the tree;
- no entry is written through a symlink that is already in the tree when that link
  is absolute or climbs above the tree: the layer beneath could have planted
  `etc -> /etc` to make the next entry `etc/passwd` land on the host (CVE-2019-14271
  is docker cp's variant); a relative link that stays inside is followed, as
  usrmerge's `bin -> usr/bin` needs;
- the last component is never followed: an existing file or link is replaced;
- a hard link's target must name a file already inside the tree, checked the same way.
A refused entry stops the import with one line naming it.
"""

import os
import stat
from collections import namedtuple

from .errors import ContainerError

WHITEOUT = ".wh."
OPAQUE = ".wh..wh..opq"
MAX_LINKS = 40  # symlinks followed while resolving one name, as the kernel's ELOOP limit


class Escape(ContainerError):
    """An entry that would land outside the tree."""


class Plan(namedtuple("Plan", "opaque whiteouts entries")):
    """One layer, read: opaque dirs (cleared first), whited-out paths, then the entries
    to create, in the tar's order. Paths are clean relative names ("usr/bin/x")."""
    __slots__ = ()


def clean_name(name):
    """A tar member's name -> a relative path with no '.', '' or '..' parts; Escape for '..'."""
    parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise Escape(f"refused the entry {name!r}: '..' would leave the image's tree")
    return "/".join(parts)


def classify(names):
    """[(tar name, member)] -> Plan: what a layer does, before anything is touched."""
    opaque, whiteouts, entries = [], [], []
    for name, member in names:
        path = clean_name(name)
        if not path:
            continue  # the "./" entry: the tree's own root
        head, _, base = path.rpartition("/")
        if base == OPAQUE:
            opaque.append(head)
        elif base.startswith(WHITEOUT):
            target = base[len(WHITEOUT):]
            if not target or target in (".", ".."):
                raise Escape(f"refused the whiteout {name!r}: it names no file")
            whiteouts.append(f"{head}/{target}" if head else target)
        else:
            entries.append((path, member))
    return Plan(opaque, whiteouts, entries)


def resolve_parent(root, path):
    """The host path of path's parent dir inside root, following only symlinks that stay
    inside (relative, and not climbing above root). Missing dirs are returned as they
    would be created; Escape if a link leads out."""
    parts = path.split("/")[:-1]
    real, hops = [], 0
    while parts:
        part = parts.pop(0)
        here = os.path.join(root, *real, part)
        try:
            st = os.lstat(here)
        except FileNotFoundError:
            real.append(part)
            continue
        if not stat.S_ISLNK(st.st_mode):
            real.append(part)
            continue
        hops += 1
        target = os.readlink(here)
        if target.startswith("/") or hops > MAX_LINKS:
            raise Escape(f"refused the entry {path!r}: {'/'.join(real + [part])} is a symlink to "
                         f"{target!r}, which extraction will not follow (absolute, or a loop)")
        combined = real + [p for p in target.split("/") if p not in ("", ".")]
        stack = []
        for p in combined:
            if p == "..":
                if not stack:
                    raise Escape(f"refused the entry {path!r}: the symlink {'/'.join(real + [part])} "
                                 f"-> {target!r} climbs out of the image's tree")
                stack.pop()
            else:
                stack.append(p)
        # The link's own target may hold links again: walk it from the top.
        parts = stack + parts
        real = []
    return os.path.join(root, *real)


def host_path(root, path):
    """Where path lands: its parent resolved inside root, its last component as is."""
    return os.path.join(resolve_parent(root, path), path.rsplit("/", 1)[-1])


def remove(path):
    """rm -rf one path, never following a symlink."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        for name in os.listdir(path):
            remove(os.path.join(path, name))
        os.rmdir(path)
    else:
        os.unlink(path)


def clear_dir(path):
    """An opaque dir: what the layers beneath put in it goes; the dir stays."""
    try:
        names = os.listdir(path) if os.path.isdir(path) and not os.path.islink(path) else []
    except FileNotFoundError:
        names = []
    for name in names:
        remove(os.path.join(path, name))


def apply(root, tar, plan, as_root=None):
    """Apply a classified layer (plan) from tar (an open tarfile) onto root.
    Returns {"skipped devices": n} when not root (mknod needs CAP_MKNOD)."""
    as_root = os.geteuid() == 0 if as_root is None else as_root
    for d in plan.opaque:
        clear_dir(host_path(root, d) if d else root)
    for w in plan.whiteouts:
        remove(host_path(root, w))
    dirs, skipped = [], 0
    for path, m in plan.entries:
        dest = host_path(root, path)
        os.makedirs(os.path.dirname(dest), 0o755, exist_ok=True)
        if m.isdir():
            if os.path.lexists(dest) and not (os.path.isdir(dest) and not os.path.islink(dest)):
                remove(dest)
            os.makedirs(dest, 0o700, exist_ok=True)
            dirs.append((dest, m))  # mode and times last: a 0555 dir must still take its files
            continue
        if os.path.lexists(dest):
            remove(dest)
        if m.isreg():
            src = tar.extractfile(m)
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            with os.fdopen(fd, "wb") as out:
                while chunk := src.read(1 << 20):
                    out.write(chunk)
        elif m.issym():
            os.symlink(m.linkname, dest)  # never followed here: only the container follows it
        elif m.islnk():
            src = host_path(root, _link_name(m.linkname, path))
            if not os.path.lexists(src) or os.path.isdir(src):
                raise Escape(f"refused the hard link {path!r} -> {m.linkname!r}: its target is not "
                             "a file already in the image's tree")
            os.link(src, dest, follow_symlinks=False)
            continue  # a hard link shares its target's inode: owner and mode are the target's
        elif m.ischr() or m.isblk() or m.isfifo():
            kind = stat.S_IFCHR if m.ischr() else stat.S_IFBLK if m.isblk() else stat.S_IFIFO
            if not as_root and kind != stat.S_IFIFO:
                skipped += 1
                continue
            os.mknod(dest, kind | 0o600, os.makedev(m.devmajor, m.devminor))
        else:
            continue  # GNU sparse, contiguous files and other rarities: skipped
        _metadata(dest, m, as_root)
    for dest, m in reversed(dirs):
        _metadata(dest, m, as_root)
    return {"skipped devices": skipped} if skipped else {}


def _link_name(linkname, path):
    try:
        return clean_name(linkname)
    except Escape:
        raise Escape(f"refused the hard link {path!r} -> {linkname!r}: its target leaves "
                     "the image's tree") from None


def _metadata(dest, m, as_root):
    """Owner first: chown clears setuid and setgid, so the mode comes after it."""
    link = m.issym()
    if as_root:
        os.lchown(dest, m.uid, m.gid)
    for key, value in (m.pax_headers or {}).items():
        if key.startswith("SCHILY.xattr.") and (as_root or key.startswith("SCHILY.xattr.user.")):
            try:
                os.setxattr(dest, key[len("SCHILY.xattr."):], value.encode("utf-8", "surrogateescape"),
                            follow_symlinks=False)
            except OSError:
                pass  # a filesystem without that namespace: the file is still right
    if not link:
        os.chmod(dest, m.mode & 0o7777)
    os.utime(dest, (m.mtime, m.mtime), follow_symlinks=False)
