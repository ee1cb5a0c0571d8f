"""Text in, value out, or one line of error: every value a user types.

Docker's units (sizes base 1024, CPUs, byte rates), block devices, volumes,
hostnames, a rootfs, environment entries, ids. Each parser either returns a clean
value or raises a one-line usage error naming the bad value and what is allowed;
spec.build() calls them with the option's name. Volume, IOLimit and RootFS are
the values some of them return.
"""

import os
from collections import namedtuple
from stat import S_ISBLK

from .errors import usage

NETWORK_MODES = ("none", "host", "egress", "container:ID", "private:NAME")
MIN_MEMORY = 6 * 1024 * 1024  # docker refuses less than 6 MiB: the runtime itself needs some

# Docker's units (go-units RAMInBytes): base 1024, case-insensitive, optional "b"/"ib".
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class Volume(namedtuple("Volume", "source target readonly")):
    """A host path bound into the container (`--volume SRC:DST[:ro]`)."""
    __slots__ = ()


class IOLimit(namedtuple("IOLimit", "device major minor bps")):
    """A throttle on one block device; bps is bytes per second."""
    __slots__ = ()


class RootFS(namedtuple("RootFS", "kind path name layer defaults", defaults=(None,) * 4)):
    """What becomes /: kind "host" (read-only binds of the host's system dirs), "dir" (a
    prepared tree at path, bound read-only) or "overlay" (a rootfs of ours, store.py: path
    is its tree, the overlay's lower layer; name its name; layer the --persist upper
    layer's name, or None for a per-container one; defaults an image's store.ImageDefaults)."""
    __slots__ = ()

    def __str__(self):
        return {"host": "host", "overlay": self.name}.get(self.kind, self.path)


HOST_ROOTFS = RootFS("host")


def parse_size(text, option="--memory", minimum=0):
    """Docker's RAMInBytes: "100M", "1.5g", "512MiB", "1024" (bytes)."""
    s = str(text).strip()
    i = 0
    while i < len(s) and (s[i].isdigit() or s[i] == "."):
        i += 1
    number, unit = s[:i], s[i:].strip().lower()
    if unit.endswith("ib"):
        unit = unit[:-2]
    elif unit.endswith("b"):
        unit = unit[:-1]
    try:
        if not number or not number.isascii() or unit not in _UNITS:
            raise ValueError
        value = int(float(number) * _UNITS[unit])
    except (ValueError, OverflowError):
        raise usage(f"{option}: invalid size {text!r}: use a number with an optional unit "
                    f"b, k, m, g or t (base 1024), e.g. 100M or 1.5g") from None
    if value < minimum:
        raise usage(f"{option}: {text!r} is too small: the minimum is {human_bytes(minimum)}")
    return value


def parse_memory(text, option="--memory"):
    return parse_size(text, option, MIN_MEMORY)


def parse_memory_swap(text, memory, option="--memory-swap"):
    """Docker's --memory-swap: the memory+swap total; -1 is unlimited swap."""
    if str(text).strip() == "-1":
        return -1
    value = parse_size(text, option, MIN_MEMORY)
    if memory is None:
        raise usage(f"{option}: needs --memory as well")
    if value < memory:
        raise usage(f"{option}: {text!r} is less than --memory ({human_bytes(memory)}): "
                    "it is the total of memory and swap")
    return value


def parse_cpus(text, option="--cpus"):
    """A number of CPUs, like docker: 0.01 up to the number of CPUs here."""
    ncpu = os.cpu_count() or 1
    try:
        value = float(str(text).strip())
        if not (0.01 <= value <= ncpu):
            raise ValueError
    except ValueError:
        raise usage(f"{option}: invalid value {text!r}: use a number of CPUs from 0.01 to {ncpu}") from None
    return value


def parse_pids(text, option="--pids"):
    try:
        value = int(str(text).strip())
        if value < 2:
            raise ValueError
    except ValueError:
        raise usage(f"{option}: invalid value {text!r}: use a whole number of processes, "
                    "at least 2 (the container's init and its command)") from None
    return value


def parse_rate(text, option):
    """A byte rate: "10M", "10M/s", "512k"."""
    s = str(text).strip()
    if s.lower().endswith("/s"):
        s = s[:-2]
    value = parse_size(s, option)
    if value <= 0:
        raise usage(f"{option}: rate {text!r} must be more than 0")
    return value


def block_device(text, option):
    """A block device as /dev/PATH or MAJ:MIN, resolved to the whole disk.

    Throttling (blkio v1, io.max v2) applies to whole disks, so a partition is
    mapped to the disk that holds it, as the kernel would account it anyway.
    """
    text = str(text).strip()
    try:
        if text.startswith("/"):
            st = os.stat(text)
            if not S_ISBLK(st.st_mode):
                raise ValueError
            major, minor = os.major(st.st_rdev), os.minor(st.st_rdev)
        else:
            a, b = text.split(":")
            major, minor = int(a), int(b)
            if major < 0 or minor < 0:
                raise ValueError
    except (OSError, ValueError):
        raise usage(f"{option}: {text!r} is not a block device: use a path such as /dev/sda "
                    "or MAJ:MIN (see lsblk)") from None
    sys_dev = f"/sys/dev/block/{major}:{minor}"
    if not os.path.exists(sys_dev):
        raise usage(f"{option}: no block device {major}:{minor} on this host (see lsblk)")
    if os.path.exists(sys_dev + "/partition"):
        with open(os.path.realpath(sys_dev) + "/../dev") as f:
            major, minor = (int(x) for x in f.read().split(":"))
    return major, minor


def parse_io_limit(text, option):
    """`--io-write-bps DEV:RATE`, DEV being /dev/sda or 8:0 (docker: --device-write-bps)."""
    dev, sep, rate = str(text).rpartition(":")
    if not sep or not dev:
        raise usage(f"{option}: invalid value {text!r}: use DEVICE:RATE, e.g. /dev/sda:10M or 8:0:10M")
    major, minor = block_device(dev, option)
    return IOLimit(dev, major, minor, parse_rate(rate, option))


def parse_volume(text, option="--volume"):
    parts = str(text).split(":")
    readonly = False
    if len(parts) == 3 and parts[2] in ("ro", "rw"):
        readonly = parts.pop() == "ro"
    if len(parts) != 2 or not parts[0].startswith("/") or not parts[1].startswith("/"):
        raise usage(f"{option}: invalid value {text!r}: use /HOST/PATH:/CONTAINER/PATH[:ro]")
    source, target = os.path.abspath(parts[0]), os.path.normpath(parts[1])
    if not os.path.exists(source):
        raise usage(f"{option}: {source!r} does not exist on the host")
    if target == "/" or ".." in target.split("/"):
        raise usage(f"{option}: target {parts[1]!r} must be an absolute path below /")
    return Volume(source, target, readonly)


def parse_network(text, option="--network"):
    """none | host | egress (user-mode NAT out, the host unreachable: egress.py) |
    container:ID (join a running container's network namespace, as
    docker's) | private:NAME (join the containers started with the same NAME, or be
    the first of them: a network of their own, which the host cannot reach)."""
    kind, colon, name = str(text).partition(":")
    if text in ("none", "host", "egress") or (colon and kind in ("container", "private") and name):
        if colon:
            parse_id(name, f"{option} {kind}:")
        return text
    raise usage(f"{option}: invalid value {text!r}: use one of {', '.join(NETWORK_MODES)}")


def parse_userns(text, option="--userns"):
    """host (root stays root on the host) or auto (root inside is an unprivileged ID range
    outside: root's /etc/subuid range, or idmap.REMAP_DEFAULT)."""
    if text not in ("host", "auto"):
        raise usage(f"{option}: invalid value {text!r}: use host or auto")
    return text


def parse_hostname(text, option="--hostname"):
    # RFC 1123 labels: what sethostname accepts and resolvers agree with.
    labels = str(text).split(".")
    ok = 0 < len(text) <= 64 and all(
        0 < len(l) <= 63 and l.isascii() and l.replace("-", "").isalnum()
        and not l.startswith("-") and not l.endswith("-") for l in labels)
    if not ok:
        raise usage(f"{option}: invalid hostname {text!r}: use letters, digits, '-' and '.', "
                    "at most 64 characters")
    return text


def parse_rootfs(text, option="--rootfs"):
    """host, a NAME of the store, a DIR of ours (both: an overlay), or any other tree."""
    if text == "host":
        return HOST_ROOTFS
    from . import store
    if not store.is_path(text) and (os.path.isdir(store.rootfs_dir(text)) or not os.path.isdir(text)):
        entry = store.find(text, option)
    else:
        entry = store.entry(os.path.abspath(text)) if os.path.isdir(text) else None
    if entry is not None:
        return RootFS("overlay", entry.tree, entry.name, None, entry.defaults())
    path = os.path.abspath(text)
    if not os.path.isdir(path):
        raise usage(f"{option}: {text!r} is not a directory: use 'host' or a prepared root "
                    "filesystem directory (e.g. one made by debootstrap)")
    return RootFS("dir", path)


def parse_env(text, option="--env"):
    name, sep, value = str(text).partition("=")
    if not name or not (name.replace("_", "a").isalnum() and name.isascii()) or name[0].isdigit():
        raise usage(f"{option}: invalid value {text!r}: use NAME=VALUE")
    if not sep:  # docker: -e NAME passes the host's value
        value = os.environ.get(name)
        if value is None:
            raise usage(f"{option}: {name} is not set on the host; use NAME=VALUE")
    return name, value

def parse_id(text, option="--name"):
    if not (text and text.isascii() and text.replace("-", "").replace("_", "").isalnum()
            and len(text) <= 64):
        raise usage(f"{option}: invalid id {text!r}: use letters, digits, '-' and '_'")
    return text


def parse_workdir(text, option="--workdir"):
    if not str(text).startswith("/"):
        raise usage(f"{option}: {text!r} must be an absolute path")
    return os.path.normpath(text)


def parse_capabilities(text, option):
    from . import capabilities
    return capabilities.parse([text], option)


def human_bytes(n):
    """1048576 -> "1 MiB"; the form used in every message and view."""
    if n is None or n < 0:
        return "unlimited"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if n == int(n) else f"{n:.1f} {unit}"
        n /= 1024
