"""A kernelspec's package layer: what %pip installs, kept across restarts, outside the image.

    <store>/packages/NAME/config.json   made_by "container-kernel layer", kind "packages"
    <store>/packages/NAME/lock, holder  one writer at a time (the layers' flock, overlay.py)
    <store>/packages/NAME/prefix/       pip's --prefix: lib/pythonX.Y/site-packages, bin

It is the store's other kind of layer (the --persist upper layers are overlay.py's),
with the same marker, lock and holder files, read by the same functions, so `rootfs
layers` and `packages ls` tell the same story. The store is root's
/var/lib/container-kernel or a user's $XDG_DATA_HOME/container-kernel (store.base()).

The kernel gets prefix/ read-only at MOUNT (its extension adds the site dirs at the
end of sys.path: the kernel's own stack is never shadowed); a build sibling gets it
read-write, and only it writes there: what a package's build step runs is untrusted.
The host reads the tree only with lstat (sizes) and removes it whole.
"""

import os
from collections import namedtuple

from .errors import ContainerError, usage

MOUNT = "/run/container-kernel/packages"  # in the container: /run is a tmpfs in every rootfs kind
KIND = "packages"
MIN_FREE = 16 << 20  # bytes: below this a layer is full for an install


class PackageLayer(namedtuple("PackageLayer", "name path prefix size holder")):
    """A kernelspec's layer: its dir, pip's prefix in it, bytes on disk, who writes it now."""
    __slots__ = ()


def top():
    from . import store
    return os.path.join(store.base(), "packages")


def layer_dir(kernelspec):
    from . import store
    return os.path.join(top(), store.parse_name(kernelspec, "kernelspec name"))


def prefix_of(path):
    return os.path.join(path, "prefix")


def ensure(kernelspec):
    """The layer's dir, made if new (0700: only its owner reads what was installed)."""
    from . import overlay, store
    path = layer_dir(kernelspec)
    config = overlay._layer_config(path)
    if config is not None:
        if config.get("kind") != KIND:
            raise ContainerError(f"{path} is a layer of container-kernel, but not a package layer")
        return path
    if os.path.exists(path):
        raise ContainerError(f"{path} exists and is not a package layer of container-kernel: "
                             "move it away")
    os.makedirs(top(), 0o755, exist_ok=True)
    tmp = os.path.join(top(), f"{store.NEW}{kernelspec}-{os.getpid()}")
    os.mkdir(tmp, 0o711)  # traversable: root inside a user namespace reads prefix/
    os.mkdir(prefix_of(tmp), 0o755)
    import json
    with open(os.path.join(tmp, "config.json"), "w") as f:
        json.dump({"made_by": overlay.LAYER_MARKER, "kind": KIND, "kernelspec": kernelspec}, f)
    try:
        os.rename(tmp, path)
    except OSError:  # another kernel of this kernelspec made it first: use theirs
        store.remove_tree(tmp)
    return path


def of_spec(spec):
    """The host dir of the layer a container has bound at MOUNT, or None."""
    for v in spec.volumes:
        if v.target == MOUNT:
            return os.path.dirname(v.source)
    return None


def lock(path, holder):
    """Take the layer's one writer's flock; returns its fd (close it to release). One line
    naming who holds it if someone does."""
    from . import overlay
    fd = overlay.lock_layer(path, holder)
    if fd is None:
        raise ContainerError(f"the package layer {path} is in use by "
                             f"{overlay._holder(path) or 'another kernel'}: one writer at a time; "
                             "wait until its %pip ends")
    return fd


def check_writable(path):
    """Before a build: the prefix takes writes and has room, or one line says why not."""
    prefix = prefix_of(path)
    try:
        st = os.statvfs(prefix)
    except OSError as e:
        raise ContainerError(f"the package layer {prefix}: {e.strerror}") from None
    if not os.access(prefix, os.W_OK) or st.f_flag & os.ST_RDONLY:
        raise ContainerError(f"the package layer {prefix} is not writable (read-only, or not "
                             "yours): nothing was installed; `container-kernel packages ls` shows it")
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE:
        from .parse import human_bytes
        raise ContainerError(f"the package layer {prefix} is full ({human_bytes(free)} free, an "
                             f"install needs {human_bytes(MIN_FREE)}): nothing was installed; "
                             "`container-kernel packages reset KERNEL` empties it")


def layers():
    from . import overlay, store
    try:
        names = sorted(n for n in os.listdir(top()) if not n.startswith(store.NEW))
    except OSError:
        return []
    out = []
    for name in names:
        path = os.path.join(top(), name)
        config = overlay._layer_config(path)
        if config is not None and config.get("kind") == KIND:
            out.append(view(path, name))
    return out


def view(path, name=None):
    from . import overlay, store
    prefix = prefix_of(path)
    size = store.tree_size(prefix) if os.path.isdir(prefix) else 0
    return PackageLayer(name or os.path.basename(path), path, prefix, size, overlay._holder(path))


def find(kernelspec, what):
    path = layer_dir(kernelspec)
    from . import overlay
    config = overlay._layer_config(path)
    if config is None or config.get("kind") != KIND:
        names = ", ".join(x.name for x in layers()) or "none yet"
        raise usage(f"packages {what}: no package layer for the kernelspec {kernelspec!r} in "
                    f"{top()} (have: {names})")
    return path


def remove(kernelspec, keep=False):
    """rm: the whole layer; keep (reset): a new empty prefix in its place. Refused while a
    %pip writes it; a kernel running on it keeps what it imported already."""
    from . import store
    path = find(kernelspec, "reset" if keep else "rm")
    fd = lock(path, f"container-kernel packages {'reset' if keep else 'rm'} (pid {os.getpid()})")
    try:
        hidden = os.path.join(top(), f"{store.NEW}rm-{kernelspec}-{os.getpid()}")
        if keep:
            os.rename(prefix_of(path), hidden)
            os.mkdir(prefix_of(path), 0o755)
        else:
            os.rename(path, hidden)
    finally:
        os.close(fd)
    store.remove_tree(hidden)
