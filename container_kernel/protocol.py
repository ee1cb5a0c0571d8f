"""The control socket's one vocabulary, shared by both sides of the container boundary.

The kernel runs inside the container, where /sys/fs/cgroup is read-only and the
host's /proc is out of sight. The launcher stays outside: it owns the cgroup and
knows the host's PIDs and namespaces. So the magics and widgets (inside/client.py)
ask the launcher (kernel/control.py) over a unix socket in the kernel's socket
dir, bound into the container at the same path; its path reaches the kernel as
$CK_CONTROL:

    kernel (inside)  --- {"op": "set", "controller": "memory", "value": "100M"}\\n --->  launcher (host)
                     <-- {"ok": true, "controller": "memory", "limit": 104857600, ...}\\n ---

One JSON request line, one JSON reply line, one request per connection. A reply
is {"ok": true, ...fields of the op's record} or {"error": "one line a user can
act on"}. Requests are typed here (REQUESTS) and checked field by field before
any handler sees them: what the container sends is hostile input.

    op           request fields                    reply record
    info         -                                 Info
    stats        -                                 StatsReply
    set          controller, value[, direction,    SetReply
                 device]
    ps           -                                 PsReply
    sandbox      pid, memory, cpu, pids            SandboxReply   (a child cgroup, the fork moved in)
    sandbox_end  name                              SandboxEnd     (its final counters, then removed)
    run          argv[, seconds]                   SiblingReply   (a demo container started)
    run_poll     name[, out, err]                  SiblingReply   (its output past those offsets)
    run_kill     name                              SiblingReply
    pip          argv[, seconds]                   SiblingReply   (%pip's build sibling, kernel/packages.py)

The ceiling is the kernelspec's limits: the server refuses anything above it,
whoever asks. Limits are named by the controller everywhere (spec.LIMITS).
"""

import json
from collections import namedtuple

from .runtime import spec as S
from .runtime.cgroups.stats import Stats
from .runtime.errors import ContainerError
from .runtime.limits import RLIMIT_AS_ENV  # noqa: F401  (read inside, set by the launcher)

# The environment the launcher gives the kernel: the only channel besides the socket.
CONTROL_ENV = "CK_CONTROL"             # the control socket's path
PREVIOUS_EXIT_ENV = "CK_PREVIOUS_EXIT"  # why the previous kernel died, shown at the first cell
UNCONFINED_ENV = "CK_UNCONFINED"        # degraded mode: why this kernel is NOT contained
PACKAGES_ENV = "CK_PACKAGES"            # where the package layer is bound (read-only), if any
READY_ENV = "CK_READY_FILE"             # a file the extension creates once loaded: the kernel is
                                        # ready (the provisioner waits for it: kernel/provisioner.py)

MAX_LINE = 64 * 1024   # a request is a few hundred bytes: anything longer is refused
MAX_REPLY = 16 << 20   # a reply (ps of many processes) may be long, but not without end
TIMEOUT = 5.0          # seconds a client may take to send its line, and again to take its reply
CLIENT_TIMEOUT = 30.0  # a sandbox_end may wait for the killed processes to exit
MAX_FIELD = 256        # characters of any string field of a request
MAX_ARGS = 128         # words of a list field (a sibling's `run` argv)
MAX_ARG = 8192         # characters of each of them (a `python -c` script, say)

CONTROLLERS = S.LIMITS  # memory, cpu, pids, io
SETTABLE = ("memory", "cpu", "pids")  # by value; io by direction and device
IO_DIRECTIONS = ("read", "write")

# op -> {field: type}; "pid" is an int, everything else a short string.
REQUESTS = {
    "info": {}, "stats": {}, "ps": {},
    "set": {"controller": str, "value": str, "direction": str, "device": str},
    "sandbox": {"pid": int, "memory": str, "cpu": str, "pids": str},
    "sandbox_end": {"name": str},
    "run": {"argv": list, "seconds": int},  # seconds: its time limit
    "run_poll": {"name": str, "out": int, "err": int},
    "run_kill": {"name": str},
    "pip": {"argv": list, "seconds": int},  # argv: "install"|"uninstall" and pip's arguments
}


class ControlError(Exception):
    """A one-line error from the control socket (or from reaching it)."""


# ---- limits: parsed the same on both sides (the server is the authority) -----------------

def parse_limit(controller, text):
    """A limit's text -> its value; "max" -> None (back to the ceiling, or unlimited)."""
    text = str(text).strip()
    if controller not in SETTABLE:
        raise ContainerError(f"unknown controller {str(controller)[:40]!r}: use one of "
                             f"{', '.join(CONTROLLERS)}")
    if text.lower() == "max":
        return None
    parser = {"memory": S.parse_memory, "cpu": S.parse_cpus, "pids": S.parse_pids}[controller]
    return parser(text, controller)


def parse_rate(direction, text):
    """An io rate ("10M/s", "512k"); "max" -> None (lift the limit)."""
    if direction not in IO_DIRECTIONS:
        raise ContainerError(f"io: unknown direction {str(direction)[:40]!r}: use read or write")
    text = str(text).strip()
    return None if text.lower() == "max" else S.parse_rate(text, f"io {direction}")


def show(controller, value):
    """A limit's value in words: "100 MiB", "0.5 CPUs", "64", "10 MiB/s", "unlimited"."""
    if value is None:
        return "unlimited"
    if controller in ("memory", "io"):
        return S.human_bytes(value) + ("/s" if controller == "io" else "")
    if controller == "cpu":
        return f"{value:g} CPU" + ("" if value == 1 else "s")
    return str(value)


# ---- records ---------------------------------------------------------------------------------
# namedtuples; NESTED names the fields that hold records ((Cls,) for a list of them).

class Ceiling(namedtuple("Ceiling", "memory cpu pids", defaults=(None, None, None))):
    """The kernelspec's limits (bytes, CPUs, processes); None: no ceiling."""
    __slots__ = ()

    @classmethod
    def of(cls, resources):
        return cls(resources.memory, resources.cpus, resources.pids)


class CgroupView(namedtuple("CgroupView", "version paths stats")):
    __slots__ = ()
    NESTED = {"stats": Stats}


class InitChild(namedtuple("InitChild", "host_pid pid")):
    __slots__ = ()


class SecurityView(namedtuple("SecurityView", "seccomp no_new_privs masked_paths readonly_paths "
                              "devices")):
    """The hardening profile as the launcher applied it. seccomp: one line (profile, rules,
    architectures) or "unconfined"; devices: the devices policy in words."""
    __slots__ = ()


class RootfsView(namedtuple("RootfsView", "name lower upper persist upper_size")):
    """An overlay rootfs (runtime/overlay.py): its name, the lower (image) and upper dirs on
    the host, the --persist layer's name (None: per-container), the upper's bytes on disk."""
    __slots__ = ()


class PackagesView(namedtuple("PackagesView", "kernelspec path mount size holder")):
    """The kernelspec's package layer (runtime/package_layer.py): its prefix on the host, where
    the kernel has it (read-only), its bytes on disk, who writes it now (a %pip), or None."""
    __slots__ = ()


class Info(namedtuple("Info", "id host_hostname launcher_pid init_pid kernel_pid init_children "
                      "host_namespaces container_namespaces namespaces cgroup ceiling uid_map "
                      "gid_map rootfs network rootless workspace enforced mapping security "
                      "image packages", defaults=(None, None, None))):
    """The host's side of %container_info. enforced: {limit: how}; uid_map/gid_map: the
    kernel's maps as the host reads them (text); cgroup: None without one (rootless)."""
    __slots__ = ()
    NESTED = {"init_children": (InitChild,), "cgroup": CgroupView, "ceiling": Ceiling,
              "security": SecurityView, "image": RootfsView, "packages": PackagesView}


class StatsReply(namedtuple("StatsReply", "stats ceiling enforced")):
    __slots__ = ()
    NESTED = {"stats": Stats, "ceiling": Ceiling}


class SetReply(namedtuple("SetReply", "controller limit text ceiling paths direction device "
                          "device_of", defaults=(None, None, None, None, None))):
    """The limit in force after a set, read back from the cgroup's own file. For io:
    direction, the device throttled (MAJ:MIN) and what chose it (a path, or the workspace)."""
    __slots__ = ()


class Proc(namedtuple("Proc", "host_pid pid ppid user uids rss status cpu_s cmdline cgroup")):
    """One process of the container as the host sees it; cgroup: relative to the
    container's ("/", "/main", "/sandbox-1")."""
    __slots__ = ()


class PsReply(namedtuple("PsReply", "processes")):
    __slots__ = ()
    NESTED = {"processes": (Proc,)}


class SandboxReply(namedtuple("SandboxReply", "name host_pid paths limits")):
    __slots__ = ()
    NESTED = {"limits": Ceiling}


class SandboxEnd(namedtuple("SandboxEnd", "name stats killed_left removed")):
    __slots__ = ()
    NESTED = {"stats": Stats}


class SiblingProc(namedtuple("SiblingProc", "host_pid pid host_uid name")):
    """One process of a sibling as the host sees it: its PID outside and inside, the uid
    that owns it outside (not 0 under --userns auto), its name."""
    __slots__ = ()


class SiblingReply(namedtuple("SiblingReply", "name state exit_code stdout stderr out err "
                              "truncated timed_out init_pid processes namespaces "
                              "kernel_namespaces cgroup uid_map hostname")):
    """A demo container: state "running" or "exited" (exit_code), its output past the
    offsets asked (out and err: the offsets to ask next), and what the host sees of it:
    init's host PID, its processes now, its namespaces' inodes (read before its command
    ran) beside the kernel's, its cgroup dirs, its uid_map. (No field is named "error":
    that key is a refusal's.)"""
    __slots__ = ()
    NESTED = {"processes": (SiblingProc,)}


REPLIES = {"info": Info, "stats": StatsReply, "set": SetReply, "ps": PsReply,
           "sandbox": SandboxReply, "sandbox_end": SandboxEnd, "run": SiblingReply,
           "run_poll": SiblingReply, "run_kill": SiblingReply, "pip": SiblingReply}


def to_wire(value):
    """A record (nested records, lists, dicts) -> plain JSON-ready data."""
    if hasattr(value, "_asdict"):
        return {k: to_wire(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [to_wire(v) for v in value]
    if isinstance(value, dict):
        return {k: to_wire(v) for k, v in value.items()}
    return value


def from_wire(cls, data):
    """Plain data -> a record of cls; a missing field reads as None."""
    if cls is Stats:
        return Stats.from_dict(data)
    if not isinstance(data, dict):
        raise ControlError(f"the launcher sent {type(data).__name__} where a {cls.__name__} belongs")
    nested = getattr(cls, "NESTED", {})
    values = {}
    for f in cls._fields:
        v = data.get(f)
        kind = nested.get(f)
        if v is not None and isinstance(kind, tuple):
            v = tuple(from_wire(kind[0], x) for x in v)
        elif v is not None and kind is not None:
            v = from_wire(kind, v)
        values[f] = v
    return cls(**values)


# ---- lines on the wire ----------------------------------------------------------------------

def read_line(sock, limit):
    """Bytes up to a newline (or EOF) from a socket; ValueError past limit bytes."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError(f"a line longer than {limit} bytes")
    return bytes(data)


def encode_request(op, **fields):
    return json.dumps(dict(fields, op=op)).encode() + b"\n"


def decode_request(data):
    """A request line -> (op, {field: value}), every field checked; ControlError otherwise."""
    try:
        req = json.loads(data)
    except (ValueError, RecursionError):
        raise ControlError(f"bad request: not a JSON line ({bytes(data[:60])!r})") from None
    if not isinstance(req, dict) or not isinstance(req.get("op"), str):
        raise ControlError('bad request: send a JSON object with "op", e.g. {"op": "info"}')
    op = req.pop("op")
    if op not in REQUESTS:
        raise ControlError(f"unknown op {op[:40]!r}: use one of {', '.join(sorted(REQUESTS))}")
    fields = REQUESTS[op]
    for name, value in req.items():
        kind = fields.get(name)
        if kind is None:
            raise ControlError(f"{op}: unknown field {str(name)[:40]!r}"
                               + (f": use {', '.join(fields)}" if fields else ": it takes none"))
        if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
            raise ControlError(f"{op}: {name} must be a whole number, not {str(value)[:40]!r}")
        if kind is str and not (isinstance(value, str) and len(value) <= MAX_FIELD):
            raise ControlError(f"{op}: {name} must be a string of at most {MAX_FIELD} characters")
        if kind is list and not (isinstance(value, list) and len(value) <= MAX_ARGS and all(
                isinstance(v, str) and len(v) <= MAX_ARG and "\0" not in v for v in value)):
            raise ControlError(f"{op}: {name} must be a list of at most {MAX_ARGS} strings of at "
                               f"most {MAX_ARG} characters each")
    return op, req


def encode_reply(record):
    return json.dumps(dict(to_wire(record), ok=True)).encode() + b"\n"


def encode_error(message):
    return json.dumps({"error": str(message).replace("\n", " ")}).encode() + b"\n"


def decode_reply(op, data):
    """A reply line -> the op's record; the error it carries as ControlError."""
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"the launcher sent a reply that is not JSON: {bytes(data[:80])!r}") from None
    if not isinstance(reply, dict) or "error" in reply:
        raise ControlError(str(reply.get("error") if isinstance(reply, dict) else reply))
    return from_wire(REPLIES[op], reply)
