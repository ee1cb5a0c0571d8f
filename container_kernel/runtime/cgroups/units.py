"""Units and file formats of cgroupfs, in one place.

The spec speaks docker (bytes, a number of CPUs, memory+swap as one total);
the kernel speaks per-file dialects ("max", -1, microseconds, "MAJ:MIN k=v").
Every conversion between the two lives here, as runc keeps them in
cgroups/utils.go and fs2/, so both drivers agree on what a value means.
"""

from .stats import IORule

PERIOD_US = 100000   # the CFS period docker uses (100 ms); a CPU limit is a quota per period
MIN_QUOTA_US = 1000  # the kernel refuses a CFS quota under 1 ms (EINVAL)

# v1 shows "no limit" as the page counter's maximum in bytes: 9223372036854771712
# with 4 KiB pages, 9223372036854710272 with 64 KiB. Anything this big is unlimited.
V1_UNLIMITED = 1 << 62


def cpus_to_quota(cpus, period=PERIOD_US):
    return max(MIN_QUOTA_US, round(cpus * period))


def quota_to_cpus(quota, period):
    """None for no quota (v1 -1, v2 "max")."""
    if quota is None or quota < 0 or not period:
        return None
    return quota / period


def number(text):
    """An integer file (memory.current, pids.current...); None if absent or "max"."""
    if text is None or text == "max":
        return None
    return int(text)


def v1_limit(text):
    """A v1 byte limit: None when absent or unlimited (-1 reads back as ~2**63)."""
    value = number(text)
    return None if value is None or value < 0 or value >= V1_UNLIMITED else value


def swap_v2(memory, memory_swap):
    """Docker's memory+swap total -> v2 memory.swap.max, which counts swap alone."""
    if memory_swap == -1:
        return "max"
    return memory_swap - memory


def keyed(text):
    """Flat-keyed files ("oom_kill 3" lines: memory.events, cpu.stat, pids.events,
    memory.oom_control) -> {key: int}; {} when the file is absent."""
    out = {}
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        try:
            out[key] = int(value)
        except ValueError:
            pass
    return out


def nested(text):
    """Nested-keyed v2 files ("8:0 rbps=1048576 wbps=max", io.max and io.stat)
    -> [((major, minor), {key: int|None})], "max" read as None."""
    out = []
    for line in (text or "").splitlines():
        if not line.strip():
            continue
        dev, *pairs = line.split()
        major, _, minor = dev.partition(":")
        values = {}
        for pair in pairs:
            key, _, value = pair.partition("=")
            values[key] = None if value == "max" else int(value)
        out.append(((int(major), int(minor)), values))
    return out


def v1_throttle(text):
    """blkio.throttle.*_bps_device ("8:0 1048576" lines) -> {(major, minor): bps}."""
    out = {}
    for line in (text or "").split("\n"):
        dev, _, bps = line.strip().partition(" ")
        if not bps:
            continue
        major, _, minor = dev.partition(":")
        out[int(major), int(minor)] = int(bps)
    return out


def v1_io_bytes(text):
    """blkio.throttle.io_service_bytes -> (read, write) summed over devices.

    Lines are "8:0 Read 4096", "8:0 Write 0", ... with a last "Total N" over
    all operations, which is skipped since it mixes reads and writes.
    """
    read = write = 0
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) == 3:
            if fields[1] == "Read":
                read += int(fields[2])
            elif fields[1] == "Write":
                write += int(fields[2])
    return read, write


def io_limits(read_bps, write_bps):
    """Two {(major, minor): bps|None} maps -> Stats.io.limits: IORules sorted by device."""
    return tuple(IORule(dev[0], dev[1], read_bps.get(dev), write_bps.get(dev))
                 for dev in sorted(set(read_bps) | set(write_bps)))
