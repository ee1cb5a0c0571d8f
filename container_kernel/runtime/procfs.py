"""Readers of /proc and /sys: the kernel's own account of a process, parsed in one place.

/proc/<pid>/status, .../mountinfo, .../uid_map, .../cgroup are text files the
kernel writes on each read; a process can vanish between two reads, so every
reader answers None (or nothing) rather than raising. The parsers take text, so
tests feed them fixtures. Pure: no module of the launcher, init or mounts here,
so the kernel inside the container reads its own /proc with the same code.
"""

from collections import namedtuple

# capabilities(7) numbers -> names, from <linux/capability.h> (index = number).
CAPABILITIES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore")


class Mount(namedtuple("Mount", "point root fstype source options super_options")):
    """One line of mountinfo: "ID PARENT MAJ:MIN ROOT POINT OPTS [optional...] - FSTYPE SOURCE SUPER".
    options and super_options are tuples ("rw", "nosuid"...); for a v1 cgroup the
    controllers of the hierarchy are among super_options ("rw,cpu,cpuacct")."""
    __slots__ = ()

    @property
    def readonly(self):
        return "ro" in self.options


def read(path):
    """The file's text, or None if it cannot be read (gone, hidden, not ours)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def status_field(field, pid="self"):
    """One field of /proc/<pid>/status ("CapEff", "NSpid", "Uid", ...), or None."""
    return status_fields(pid, (field,)).get(field)


def status_fields(pid, fields):
    """{field: value} of /proc/<pid>/status from one read (a process that exits between two
    reads is never half-seen); the fields it lacks are left out ({} if it is gone)."""
    out = {}
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        name, _, value = line.partition(":")
        if name in fields:
            out[name] = value.strip()
    return out


def children(pid):
    """The PIDs of pid's children (their host PIDs, seen from the host)."""
    text = read(f"/proc/{pid}/task/{pid}/children") if pid else None
    return [int(x) for x in (text or "").split()]


def nspid(pid):
    """A PID as seen here -> the PID the process has in its own (innermost) PID namespace."""
    values = (status_field("NSpid", pid) or "").split()
    return int(values[-1]) if values else None


def ppid(pid):
    values = (status_field("PPid", pid) or "").split()
    return int(values[0]) if values else None


def start_time(pid):
    """Field 22 of /proc/PID/stat, in clock ticks since boot: tells a process from a
    later one that reuses its PID. None if it is gone."""
    text = read(f"/proc/{pid}/stat")
    return text.rpartition(")")[2].split()[19] if text else None


def live_start_time(pid):
    """start_time, but None for a zombie too: it has exited, only its parent has not
    waited for it yet (a SIGKILLed Jupyter server, until its parent reaps it)."""
    fields = (read(f"/proc/{pid}/stat") or "").rpartition(")")[2].split()
    return fields[19] if len(fields) > 19 and fields[0] not in ("Z", "X") else None


def capability_names(mask):
    """A CapEff/CapBnd hex mask (or an int) -> capability names."""
    mask = int(mask or "0", 16) if isinstance(mask, str) or mask is None else mask
    return [CAPABILITIES[i] if i < len(CAPABILITIES) else f"cap_{i}"
            for i in range(64) if mask >> i & 1]


def unescape(field):
    """mountinfo writes space, tab, newline and backslash as octal escapes (\\040)."""
    if "\\" not in field:
        return field
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and field[i + 1:i + 4].isdigit():
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def parse_mountinfo(text):
    """mountinfo text -> [Mount], in the kernel's order (later mounts stack on earlier ones)."""
    mounts = []
    for line in (text or "").splitlines():
        left, sep, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if sep and len(fields) >= 6 and len(tail) >= 2:
            mounts.append(Mount(unescape(fields[4]), unescape(fields[3]), tail[0], tail[1],
                                tuple(fields[5].split(",")),
                                tuple(tail[2].split(",")) if len(tail) >= 3 else ()))
    return mounts


def mountinfo(path="/proc/self/mountinfo"):
    """[Mount] of a mount namespace; raises OSError if the file cannot be read."""
    with open(path) as f:
        return parse_mountinfo(f.read())


def parse_id_map(text):
    """uid_map/gid_map text -> [(inside, outside, count)]."""
    return [tuple(int(x) for x in line.split()) for line in (text or "").splitlines() if line.strip()]


def id_map(pid="self", name="uid_map"):
    """[(inside, outside, count)] as the kernel shows it to the reader ([] if unreadable)."""
    return parse_id_map(read(f"/proc/{pid}/{name}"))


def parse_cgroup_membership(text):
    """/proc/<pid>/cgroup text -> [(hierarchy id, (controllers...), path)]; v2 is "0::PATH"."""
    out = []
    for line in (text or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) == 3 and parts[0].isdigit():
            out.append((int(parts[0]), tuple(c for c in parts[1].split(",") if c), parts[2].strip()))
    return out


def cgroup_membership(pid="self"):
    return parse_cgroup_membership(read(f"/proc/{pid}/cgroup"))
