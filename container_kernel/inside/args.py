"""The magics' arguments: text in, a value out, or one line of UsageError.

The launcher checks every request again (and against the ceiling): it is the
authority. These parsers only turn a typo into a message before anything is sent,
with the same parsers the server uses (protocol.parse_limit, parse_rate).
"""

from IPython.core.error import UsageError

from .. import protocol
from ..runtime.errors import ContainerError

SET_USAGE = ("use: %cgroup_set memory 100M | memory max | cpu 0.5 | cpu max | pids 64 | pids max | "
             "io write 10M/s [DEVICE] | io read max [DEVICE]")
# %%sandbox's words -> controllers; cpus= as in `docker run --cpus`
SANDBOX_WORDS = {"memory": "memory", "cpu": "cpu", "cpus": "cpu", "pids": "pids"}


def flags(line, magic, allowed=("--json",)):
    """The set of flags on the line; anything else is refused."""
    args = line.split()
    for a in args:
        if a not in allowed:
            raise UsageError(f"{magic}: unknown argument {a!r}: use {' or '.join(allowed)} or nothing")
    return set(args)


def parse_cgroup_set(line):
    """'memory 100M' -> {"controller": "memory", "value": "100M"}: the set request's fields,
    checked, not yet applied."""
    args = line.split()
    if not args:
        raise UsageError(f"%cgroup_set: no controller given: {SET_USAGE}")
    controller = args[0].lower()
    try:
        if controller == "io":
            return _parse_io(args)
        if controller not in protocol.SETTABLE:
            raise UsageError(f"%cgroup_set: unknown controller {args[0]!r}: {SET_USAGE}")
        if len(args) != 2:
            raise UsageError(f"%cgroup_set: {controller} takes one value: {SET_USAGE}")
        protocol.parse_limit(controller, args[1])
        return {"controller": controller, "value": args[1]}
    except ContainerError as e:
        raise UsageError(f"%cgroup_set: {e}") from None


def _parse_io(args):
    if len(args) not in (3, 4):
        raise UsageError(f"%cgroup_set: io takes a direction, a rate and maybe a device: {SET_USAGE}")
    direction = args[1].lower()
    protocol.parse_rate(direction, args[2])
    req = {"controller": "io", "direction": direction, "value": args[2]}
    if len(args) == 4:
        device = args[3]
        major, _, minor = device.partition(":")
        if not (device.startswith("/") or major.isdigit() and minor.isdigit()):
            raise UsageError(f"%cgroup_set: io device {device!r}: use a path such as /dev/sda "
                             "or MAJ:MIN (default: the disk holding the notebook's directory)")
        req["device"] = device
    return req


def parse_sandbox(line):
    """'memory=50M cpu=0.5 pids=16' -> {"memory": 52428800, "cpu": 0.5, "pids": 16}."""
    limits = {}
    for arg in line.split():
        key, eq, value = arg.partition("=")
        controller = SANDBOX_WORDS.get(key.lower()) if eq else None
        if controller is None:
            raise UsageError(f"%%sandbox: invalid argument {arg!r}: use memory=SIZE, cpu=CPUS and/or "
                             "pids=N, e.g. %%sandbox memory=50M cpu=0.5 pids=16")
        if controller in limits:
            raise UsageError(f"%%sandbox: {key} given twice")
        try:
            parsed = protocol.parse_limit(controller, value)
        except ContainerError as e:
            raise UsageError(f"%%sandbox: {e}") from None
        if parsed is None:
            raise UsageError(f"%%sandbox: {key}={value!r}: a sandbox takes a number, not max "
                             "(leave it out to keep the container's limit)")
        limits[controller] = parsed
    return limits


def parse_interval(line):
    """%container_monitor's optional refresh interval in seconds (default 1)."""
    text = line.strip()
    if not text:
        return 1.0
    try:
        interval = float(text)
        if not 0.2 <= interval <= 60:  # also refuses nan and inf
            raise ValueError
    except ValueError:
        raise UsageError(f"%container_monitor: invalid interval {text!r}: use a number of seconds "
                         "from 0.2 to 60, or nothing (1 s)") from None
    return interval


def split(line, magic):
    """Shell words (shlex), or one line of UsageError for an unclosed quote."""
    import shlex
    try:
        return shlex.split(line)
    except ValueError as e:
        raise UsageError(f"{magic}: {e}") from None


def pop_option(words, option, kind, magic, default=None):
    """Remove `option VALUE` (before any "--") from words; its value as kind."""
    end = words.index("--") if "--" in words else len(words)
    if option not in words[:end]:
        return default
    i = words.index(option)
    if i + 1 >= end:
        raise UsageError(f"{magic}: {option} needs a value")
    text = words[i + 1]
    del words[i:i + 2]
    try:
        return kind(text)
    except ValueError:
        raise UsageError(f"{magic}: {option} {text!r}: give a whole number") from None
