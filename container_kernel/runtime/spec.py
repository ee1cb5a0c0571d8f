"""What a container is: a spec, validated once at the edge, then trusted.

Every user input (a CLI flag, a kernel.json argv, a magic's argument) goes
through one of the parse_* functions below, which either return a clean value
or raise a one-line ContainerError naming the bad value and what is allowed;
build() turns a set of options into a Spec, deciding every default in one place
(namespaces, rootless, home, capabilities, the swap default, the ids). Inner
code (mounts, cgroups, init) never re-checks strings. (The habit comes from
runc's libcontainer/specconv and configs/validate; nsjail keeps one config.proto.)

The records are immutable namedtuples rather than dataclasses: importing
`dataclasses` pulls in `inspect` and costs ~10 ms, a third of a container's
whole start budget. `spec._replace(...)` makes a changed copy.
"""

import os
from collections import namedtuple
from stat import S_ISBLK

from .errors import usage

# Namespace kinds, in the order they are listed everywhere (names as in /proc/<pid>/ns).
NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
NETWORK_MODES = ("none", "host")
MIN_MEMORY = 6 * 1024 * 1024  # docker refuses less than 6 MiB: the runtime itself needs some

# The limits, by the controller's name: the one vocabulary of the runtime, the control
# socket and the magics ("cpu", never "cpus"), with the Resources fields each one sets.
LIMITS = ("memory", "cpu", "pids", "io")
LIMIT_FIELDS = {"memory": ("memory", "memory_swap"), "cpu": ("cpus",), "pids": ("pids",),
                "io": ("io_read_bps", "io_write_bps")}

# Docker's units (go-units RAMInBytes): base 1024, case-insensitive, optional "b"/"ib".
_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


class Volume(namedtuple("Volume", "source target readonly")):
    """A host path bound into the container (`--volume SRC:DST[:ro]`)."""
    __slots__ = ()


class IOLimit(namedtuple("IOLimit", "device major minor bps")):
    """A throttle on one block device; bps is bytes per second."""
    __slots__ = ()


class Resources(namedtuple("Resources", "memory memory_swap cpus pids io_read_bps io_write_bps",
                           defaults=(None, None, None, None, (), ()))):
    """cgroup limits. None means "no limit". memory/memory_swap in bytes (-1: unlimited swap)."""
    __slots__ = ()

    def any(self):
        return any(v not in (None, ()) for v in self)

    def asked(self):
        """The LIMITS this asks for: ("memory", "pids"), say."""
        return tuple(name for name in LIMITS
                     if any(getattr(self, f) not in (None, ()) for f in LIMIT_FIELDS[name]))


class Process(namedtuple("Process", "args env cwd uid gid home rlimits",
                         defaults=((), "/", 0, 0, "/root", ()))):
    """The payload run as PID 2. env is a tuple of (name, value): built, never inherited.
    rlimits: ((RLIMIT_*, soft, hard), ...), the rootless fallback for cgroup limits."""
    __slots__ = ()


class Security(namedtuple("Security", "capabilities no_new_privs seccomp",
                          defaults=(None, False, None))):
    """What the payload may do as root inside, applied by init's process setup.
    capabilities: the names it keeps (None: capabilities.DEFAULT); no_new_privs:
    exec can gain no privilege (setuid bits ignored); seccomp: a compiled filter
    program, or None for none."""
    __slots__ = ()


class RootFS(namedtuple("RootFS", "kind path", defaults=(None,))):
    """What becomes /: kind "host" (read-only binds of the host's system dirs) or
    "dir" (a prepared tree at path, bound read-only)."""
    __slots__ = ()

    def __str__(self):
        return self.kind if self.kind == "host" else self.path


HOST_ROOTFS = RootFS("host")


class Spec(namedtuple("Spec", "id hostname rootfs namespaces network volumes resources process "
                      "security rootless run_base",
                      defaults=(None, HOST_ROOTFS, NAMESPACES[:6], "none", (), Resources(), None,
                                Security(), False, "/run/container-kernel"))):
    """A whole container."""
    __slots__ = ()

    @property
    def run_dir(self):
        return os.path.join(self.run_base, self.id)


def new_id():
    return os.urandom(6).hex()


# ---- parsers: text in, value out, or one line of error ------------------------------

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
    if text not in NETWORK_MODES:
        raise usage(f"{option}: invalid value {text!r}: use one of {', '.join(NETWORK_MODES)}")
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
    if text == "host":
        return HOST_ROOTFS
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


# field -> its parser; fields are what build() takes, whatever front end named the option.
PARSERS = {"memory": parse_memory, "cpus": parse_cpus, "pids": parse_pids,
           "io_read_bps": parse_io_limit, "io_write_bps": parse_io_limit,
           "network": parse_network, "rootfs": parse_rootfs, "hostname": parse_hostname,
           "volumes": parse_volume, "env": parse_env, "cwd": parse_workdir,
           "cap_add": parse_capabilities, "cap_drop": parse_capabilities, "id": parse_id}
REPEATED = ("io_read_bps", "io_write_bps", "volumes", "env", "cap_add", "cap_drop")


def parse_options(options):
    """{field: (option, text)} (a list of them for REPEATED fields) -> {field: value}.

    memory_swap is parsed against memory (docker's rule: it is the total of both)."""
    values = {}
    for field, given in options.items():
        if field == "memory_swap":
            continue
        if field in REPEATED:
            values[field] = [PARSERS[field](text, option) for option, text in given]
        else:
            values[field] = PARSERS[field](given[1], given[0])
    if "memory_swap" in options:
        option, text = options["memory_swap"]
        values["memory_swap"] = parse_memory_swap(text, values.get("memory"), option)
    return values


def build(options, command, volumes=(), env=(), cwd=None, cid=None, keep_id=False):
    """The Spec for these options ({field: (option, text)}, see parse_options) and command.

    The kernel launcher adds its volumes, env, cwd and container id. Every default
    is decided here, once: the namespaces (no net namespace with --network host; a
    user namespace when not root), home, capabilities, and memory+swap = memory
    (docker's default would be 2x memory: the same value means swap is no escape).
    """
    v = parse_options(options)
    memory = v.get("memory")
    cid = cid or v.get("id") or new_id()
    hostname = v.get("hostname") or cid[:12]
    rootless = os.geteuid() != 0
    network = v.get("network", "none")
    namespaces = [k for k in NAMESPACES[:6] if not (k == "net" and network == "host")]
    if rootless:
        namespaces.append("user")
    uid = gid = 0
    if keep_id:
        if not rootless:
            raise usage("--user keeps a user's own uid in a rootless container; as root, "
                        "run container-kernel as that user instead")
        uid, gid = os.geteuid(), os.getegid()
    home = "/root" if uid == 0 else "/home/user"
    from . import capabilities
    caps = capabilities.kept([n for names in v.get("cap_add", ()) for n in names],
                             [n for names in v.get("cap_drop", ()) for n in names])
    process = Process(tuple(command), default_env(hostname, home, list(v.get("env", ())) + list(env)),
                      cwd or v.get("cwd", "/"), uid, gid, home)
    return Spec(
        id=cid, hostname=hostname, rootfs=v.get("rootfs", HOST_ROOTFS),
        namespaces=tuple(namespaces), network=network,
        volumes=tuple(v.get("volumes", ())) + tuple(volumes),
        resources=Resources(memory, v.get("memory_swap", memory), v.get("cpus"), v.get("pids"),
                            tuple(v.get("io_read_bps", ())), tuple(v.get("io_write_bps", ()))),
        process=process, security=Security(caps), rootless=rootless,
        run_base=default_run_base(rootless))


def human_bytes(n):
    """1048576 -> "1 MiB"; the form used in every message and view."""
    if n is None or n < 0:
        return "unlimited"
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if n == int(n) else f"{n:.1f} {unit}"
        n /= 1024


def default_run_base(rootless):
    """Where run dirs live: /run/container-kernel for root, $XDG_RUNTIME_DIR/... for a user."""
    if not rootless:
        return "/run/container-kernel"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/container-kernel-{os.geteuid()}"
    return os.path.join(base, "container-kernel")


def default_env(hostname, home, extra=(), path=None):
    """The payload's environment, built from nothing: no host variable passes unless named.

    Like docker: PATH, HOSTNAME, HOME (+ TERM when the host has one), and
    container=container-kernel (the systemd convention for "you are in a container").
    The Python that runs the launcher comes first on PATH, so `python3` inside is
    the same interpreter (and venv) as outside.
    """
    import sys
    bindir = os.path.dirname(sys.executable)
    env = {"PATH": path or (bindir + ":" + DEFAULT_PATH if bindir not in DEFAULT_PATH.split(":")
                            else DEFAULT_PATH),
           "HOSTNAME": hostname, "HOME": home, "LANG": "C.UTF-8", "container": "container-kernel"}
    if os.environ.get("TERM"):
        env["TERM"] = os.environ["TERM"]
    env.update(extra)
    return tuple(env.items())
