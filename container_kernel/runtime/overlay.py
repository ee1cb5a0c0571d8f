"""A rootfs of the store as the lower layer of an overlayfs: the image stays pristine.

    lowerdir  <store>/rootfs/NAME/rootfs        read-only, shared by every container
    upperdir  <run dir>/upper                   per container: gone with its run dir
              or <store>/layers/LAYER/upper     --persist LAYER: kept across restarts
    workdir   beside the upper dir              overlayfs's scratch, same filesystem

The overlay is mounted by init inside the container's mount namespace (the
mount plan's "overlay" step), so the host never sees it and it cannot outlive
the container. overlayfs forbids two mounts sharing an upper dir (the kernel
says EBUSY, or corrupts on older ones), so a persistent layer has one writer at
a time: the launcher holds an flock(2) on its lock file while the container
lives; a second one is refused before anything is made. The lock dies with
whoever holds it, however it dies: there is no stale lock to clear.
Rootless (a user namespace owns the mount) needs "userxattr" (Linux >= 5.11), and a
lower layer owned by the user's own mapping (a rootless build). What the container
wrote keeps its subuid owners in the upper dir: unshare_rm.py removes it.
"""

import os
from collections import namedtuple

from .errors import ContainerError, usage

LAYER_MARKER = "container-kernel layer"


class Layer(namedtuple("Layer", "name path rootfs rootfs_path size holder")):
    """A --persist layer: the rootfs it belongs to (name and tree), its upper's size on
    disk, and who holds it now ("CONTAINER-ID (pid N)"), or None."""
    __slots__ = ()


def dirs(spec):
    """(upper, work) for an overlay rootfs."""
    if spec.rootfs.layer:
        from . import store
        top = store.layer_dir(spec.rootfs.layer)
    else:
        top = spec.run_dir
    return os.path.join(top, "upper"), os.path.join(top, "work")


def options(spec):
    """The overlay mount's data string; a path with ',' or ':' would split it wrongly."""
    upper, work = dirs(spec)
    for path in (spec.rootfs.path, upper, work):
        if "," in path or ":" in path:
            raise ContainerError(f"overlay: the path {path!r} holds ',' or ':', which overlayfs "
                                 "options cannot carry: set CK_STORE or XDG_DATA_HOME elsewhere")
    extra = ",userxattr" if spec.rootless else ""
    return f"lowerdir={spec.rootfs.path},upperdir={upper},workdir={work}{extra}"


ROOTLESS_KERNEL = (5, 11)  # overlayfs mountable in a user namespace, with "userxattr"


def check_rootless(rootfs, release=None, uid=None):
    """Refuse, with what to do, an overlay a user's container could not mount or write."""
    release = release or os.uname().release
    uid = os.geteuid() if uid is None else uid
    parts = release.split("-")[0].split(".")
    version = tuple(int(p) if p.isdigit() else 0 for p in (parts + ["0"])[:2])
    if version < ROOTLESS_KERNEL:
        import shutil
        fuse = ("fuse-overlayfs is installed, but container-kernel does not run it (its daemon "
                "would have to outlive pivot_root inside the container)" if shutil.which("fuse-overlayfs")
                else "fuse-overlayfs is not installed either")
        raise usage(f"--rootfs {rootfs.name}: a rootless overlay needs Linux >= 5.11 (overlayfs "
                    f"in a user namespace), this is {release}; {fuse}: run as root, or use "
                    f"--rootfs {rootfs.path} (read-only)")
    try:
        owner = os.stat(rootfs.path).st_uid
    except OSError as e:
        raise ContainerError(f"--rootfs {rootfs.name}: {rootfs.path}: {e.strerror}") from None
    if owner != uid:
        # Copy-up keeps a file's owner; one the user namespace does not map cannot be written.
        raise usage(f"--rootfs {rootfs.name}: its tree {rootfs.path} is owned by uid {owner}, "
                    f"not by you (uid {uid}): a rootless overlay can only copy up files of "
                    "your own ids; build it as this user (`container-kernel rootfs build` "
                    f"uses mmdebstrap --mode=unshare), or use --rootfs {rootfs.path} (read-only)")


def take(spec):
    """--persist: make the layer if new, check it is this rootfs's, lock it. Returns the
    lock's fd (keep it while the container lives), or None without a layer."""
    if spec.rootfs.kind != "overlay" or not spec.rootfs.layer:
        return None
    from . import store
    name, path = spec.rootfs.layer, store.layer_dir(spec.rootfs.layer)
    config = _layer_config(path)
    lower = os.path.realpath(spec.rootfs.path)
    if config is None:
        if os.path.exists(path):
            raise ContainerError(f"--persist: {path} exists and is not a layer of container-kernel: "
                                 "choose another name")
        _make_layer(path, spec.rootfs.name, lower)
    elif config.get("rootfs_path") != lower:
        raise ContainerError(f"--persist: the layer {name!r} belongs to the rootfs "
                             f"{config.get('rootfs')!r} ({config.get('rootfs_path')}), not to "
                             f"{spec.rootfs.name!r}: use another layer name")
    fd = lock_layer(path, f"{spec.id} (pid {os.getpid()})")
    if fd is None:
        raise ContainerError(f"--persist: the layer {name!r} is in use by {_holder(path) or 'another container'}: "
                             "one writer at a time; stop that kernel, or use another layer name")
    return fd


def lock_layer(path, holder):
    """A layer's one-writer flock, for --persist and package layers alike: its fd (close it
    to release), with `holder` written for _holder to name; None if someone holds it."""
    import fcntl
    fd = os.open(os.path.join(path, "lock"), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    with open(os.path.join(path, "holder"), "w") as f:
        f.write(holder + "\n")
    return fd


def release(fd):
    if fd is not None:
        os.close(fd)  # the flock goes with the last fd of its open file


def prepare(spec):
    """The upper and work dirs (in the run dir, or the layer's), before init mounts them."""
    if spec.rootfs.kind != "overlay":
        return
    for d in dirs(spec):
        os.makedirs(d, 0o755, exist_ok=True)


def _make_layer(path, rootfs_name, lower):
    from . import store
    os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
    tmp = os.path.join(os.path.dirname(path), f"{store.NEW}{os.path.basename(path)}-{os.getpid()}")
    os.mkdir(tmp, 0o700)  # only its owner reads what the container wrote
    for d in ("upper", "work"):
        os.mkdir(os.path.join(tmp, d), 0o755)
    _write_json(os.path.join(tmp, "config.json"),
                {"made_by": LAYER_MARKER, "rootfs": rootfs_name, "rootfs_path": lower})
    try:
        os.rename(tmp, path)
    except OSError:  # another start made it first: use theirs
        store.remove_tree(tmp)


def _write_json(path, value):
    import json
    with open(path, "w") as f:
        json.dump(value, f, indent=1)


def _layer_config(path):
    import json
    try:
        with open(os.path.join(path, "config.json")) as f:
            config = json.load(f)
    except (OSError, ValueError):
        return None
    return config if isinstance(config, dict) and config.get("made_by") == LAYER_MARKER else None


def _holder(path):
    """Who holds the layer's lock, or None if no one does (we probe with a shared lock)."""
    import fcntl
    try:
        fd = os.open(os.path.join(path, "lock"), os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return None
    except BlockingIOError:
        try:
            with open(os.path.join(path, "holder")) as f:
                return f.read().strip() or "a container"
        except OSError:
            return "a container"
    finally:
        os.close(fd)


def layers():
    from . import store
    top = os.path.join(store.base(), "layers")
    try:
        names = sorted(n for n in os.listdir(top) if not n.startswith(store.NEW))
    except OSError:
        return []
    out = []
    for name in names:
        path = os.path.join(top, name)
        config = _layer_config(path)
        if config is not None:
            out.append(Layer(name, path, config.get("rootfs"), config.get("rootfs_path"),
                             store.tree_size(os.path.join(path, "upper")), _holder(path)))
    return out


def remove_layer(name):
    from . import store
    path = store.layer_dir(name)
    if _layer_config(path) is None:
        raise ContainerError(f"rootfs rm --layer: no layer named {name!r} in "
                             f"{os.path.dirname(path)} (`container-kernel rootfs layers` lists them)")
    holder = _holder(path)
    if holder:
        raise ContainerError(f"rootfs rm --layer: the layer {name!r} is in use by {holder}: stop it first")
    hidden = os.path.join(os.path.dirname(path), f"{store.NEW}rm-{name}")
    os.rename(path, hidden)
    store.remove_tree(hidden)


def view(spec):
    """What %container_info shows of an overlay rootfs: protocol.RootfsView's fields."""
    if spec.rootfs.kind != "overlay":
        return None
    from . import store
    upper, _ = dirs(spec)
    return {"name": spec.rootfs.name, "lower": spec.rootfs.path, "upper": upper,
            "persist": spec.rootfs.layer, "upper_size": store.tree_size(upper)}
