"""What a cgroup's counters say, as typed records: the same shape on v1 and v2.

Both drivers' stats() return a Stats; None in a field means unlimited, or not
available on this host (memory.peak needs Linux 5.19 on v2, say). The records
are namedtuples (dataclasses cost ~10 ms to import on a container's start path);
as_dict() gives the JSON form the control socket sends, from_dict() reads it back.
"""

from collections import namedtuple


class Memory(namedtuple("Memory", "limit swap_limit usage peak oom_kills failcnt",
                        defaults=(None,) * 6)):
    """Bytes. swap_limit is memory+swap (docker's meaning) on both versions;
    failcnt: times a limit was hit (v1's failcnt, v2's memory.events max)."""
    __slots__ = ()


class Cpu(namedtuple("Cpu", "cpus usage_ns nr_periods nr_throttled throttled_ns",
                     defaults=(None,) * 5)):
    """cpus: the quota in CPUs (0.5 = half a CPU); times in nanoseconds."""
    __slots__ = ()


class Pids(namedtuple("Pids", "limit current events_max", defaults=(None,) * 3)):
    """events_max: forks refused because of the limit."""
    __slots__ = ()


class IORule(namedtuple("IORule", "major minor rbps wbps")):
    """One device's throttle in bytes per second (None: no limit that way)."""
    __slots__ = ()


class IO(namedtuple("IO", "limits read_bytes write_bytes", defaults=((), None, None))):
    __slots__ = ()


class Stats(namedtuple("Stats", "version paths memory cpu pids io")):
    """version: 1 or 2 (the one spelling); paths: {controller: directory}."""
    __slots__ = ()

    def as_dict(self):
        return {"version": self.version, "paths": dict(self.paths),
                "memory": self.memory._asdict(), "cpu": self.cpu._asdict(),
                "pids": self.pids._asdict(),
                "io": {"limits": [r._asdict() for r in self.io.limits],
                       "read_bytes": self.io.read_bytes, "write_bytes": self.io.write_bytes}}

    @classmethod
    def from_dict(cls, d):
        """The inverse of as_dict(); a field missing from d reads as None."""
        io = d.get("io") or {}
        return cls(d.get("version"), dict(d.get("paths") or {}),
                   _record(Memory, d.get("memory")), _record(Cpu, d.get("cpu")),
                   _record(Pids, d.get("pids")),
                   IO(tuple(_record(IORule, r) for r in io.get("limits") or ()),
                      io.get("read_bytes"), io.get("write_bytes")))


def _record(cls, d):
    d = d or {}
    return cls(*(d.get(f) for f in cls._fields))
