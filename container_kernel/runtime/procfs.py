"""Small readers of /proc and /sys: the kernel's own account of a process.

/proc/<pid>/status, .../task/<pid>/children, /proc/sys/... are text files the
kernel writes on each read; a process can vanish between two reads, so every
reader answers None (or nothing) rather than raising.
"""


def read(path):
    """The file's text, or None if it cannot be read (gone, hidden, not ours)."""
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return None


def status_field(field, pid="self"):
    """One field of /proc/<pid>/status ("CapEff", "NSpid", "Uid", ...), or None."""
    for line in (read(f"/proc/{pid}/status") or "").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def children(pid):
    """The PIDs of pid's children (their host PIDs, seen from the host)."""
    text = read(f"/proc/{pid}/task/{pid}/children") if pid else None
    return [int(x) for x in (text or "").split()]
