"""cgroup v1: one directory per controller hierarchy (runc's fs/, youki's v1/).

A container is <mount>/container-kernel/<id> in each of the memory, cpu,
cpuacct, pids, blkio and devices hierarchies, wherever mountinfo says they are;
when cpu and cpuacct are comounted, both names map to the same directory.
"""

import errno
import os

from .. import devices
from ..errors import usage
from . import units
from .base import Cgroup, bad_limit
from .stats import IO, Cpu, Memory, Pids, Stats

LIMIT = "memory.limit_in_bytes"
MEMSW = "memory.memsw.limit_in_bytes"
BPS_FILES = (("io_read_bps", "blkio.throttle.read_bps_device"),
             ("io_write_bps", "blkio.throttle.write_bps_device"))


class V1Cgroup(Cgroup):
    version = 1

    def __init__(self, container_id, paths):
        super().__init__(container_id)
        self._paths = dict(paths)

    def paths(self):
        return dict(self._paths)

    def _file(self, controller, name):
        d = self._paths.get(controller)
        return None if d is None else os.path.join(d, name)

    def _need(self, controller, name):
        path = self._file(controller, name)
        if path is None:
            raise usage(f"cgroup: cannot set {name}: no cgroup v1 {controller} hierarchy is mounted "
                        "on this host")
        return path

    def create(self, resources):
        self._create(self._dirs(), resources)
        if "devices" in self._paths:  # the minimal /dev only (devices.py), before anything runs
            deny, allow = devices.v1_rules()
            try:
                for rule in deny:
                    self._set(self._file("devices", "devices.deny"), rule)
                for rule in allow:
                    self._set(self._file("devices", "devices.allow"), rule)
            except BaseException:
                self.destroy()
                raise

    def child(self, name):
        # v1 has no no-internal-processes rule: a child is one more dir in each hierarchy.
        return V1Cgroup(f"{self.id}/{name}", {c: os.path.join(p, name) for c, p in self._paths.items()})

    def apply(self, r):
        if r.memory is not None or r.memory_swap is not None:
            self._set_memory(r.memory, r.memory_swap)
        if r.cpus is not None:
            self._set(self._need("cpu", "cpu.cfs_period_us"), units.PERIOD_US)
            self._set(self._need("cpu", "cpu.cfs_quota_us"), units.cpus_to_quota(r.cpus))
        if r.pids is not None:
            self._set(self._need("pids", "pids.max"), r.pids)
        for field, name in BPS_FILES:
            for limit in getattr(r, field):
                # One rule per write, "MAJ:MIN BYTES"; the kernel keeps the others.
                self._set(self._need("blkio", name), f"{limit.major}:{limit.minor} {limit.bps}")

    def _set_memory(self, memory, swap):
        limit = self._need("memory", LIMIT)
        memsw = self._file("memory", MEMSW)
        hints = {errno.EBUSY: "usage is above it and the kernel could not reclaim enough",
                 errno.EINVAL: f"{LIMIT} may not exceed {MEMSW}, nor be negative"}
        if swap is None or not os.path.exists(memsw):
            # Swap unchanged, or no memsw file (swap accounting off, swapaccount=0):
            # the limit alone, which the kernel still keeps <= memsw.
            if memory is not None:
                self._set(limit, memory, hints)
            return
        if memory is None:
            self._set(memsw, swap, hints)
            return
        # The kernel refuses limit > memsw at every single write, so the order
        # depends on the direction (runc's setMemoryAndSwap): raising, memsw first;
        # lowering, limit first.
        current = units.v1_limit(self._get(limit))  # None: unlimited
        if swap == -1 or (current is not None and current < swap):
            order = ((memsw, swap), (limit, memory))
        else:
            order = ((limit, memory), (memsw, swap))
        for path, value in order:
            self._set(path, value, hints)

    def reset(self, limit):
        if limit == "memory":
            self._set_memory(-1, -1)
        elif limit == "cpu":
            self._set(self._need("cpu", "cpu.cfs_quota_us"), -1)
        elif limit == "pids":
            self._set(self._need("pids", "pids.max"), "max")
        elif limit == "io":
            for _, name in BPS_FILES:
                path = self._need("blkio", name)
                for major, minor in units.v1_throttle(self._get(path)):
                    self._set(path, f"{major}:{minor} 0")  # 0 removes the rule
        else:
            raise bad_limit(limit)

    def stats(self):
        def get(controller, name):
            return self._get(self._file(controller, name))

        oom = units.keyed(get("memory", "memory.oom_control"))
        cpu = units.keyed(get("cpu", "cpu.stat"))
        quota = units.number(get("cpu", "cpu.cfs_quota_us"))
        pids_events = units.keyed(get("pids", "pids.events"))
        reads = units.v1_throttle(get("blkio", BPS_FILES[0][1]))
        writes = units.v1_throttle(get("blkio", BPS_FILES[1][1]))
        io_bytes = get("blkio", "blkio.throttle.io_service_bytes")
        read_bytes, write_bytes = units.v1_io_bytes(io_bytes) if io_bytes is not None else (None, None)
        # A charge is checked against memsw first, then the limit, and a failure counts
        # on the one that refused it: with memsw == limit (no swap) every hit lands on
        # memsw.failcnt and memory.failcnt stays 0. The sum is "times a limit was hit".
        failcnt = units.number(get("memory", "memory.failcnt"))
        if failcnt is not None:
            failcnt += units.number(get("memory", "memory.memsw.failcnt")) or 0
        return Stats(
            version=1,
            paths=self.paths(),
            memory=Memory(
                limit=units.v1_limit(get("memory", LIMIT)),
                swap_limit=units.v1_limit(get("memory", MEMSW)),  # already memory+swap
                usage=units.number(get("memory", "memory.usage_in_bytes")),
                peak=units.number(get("memory", "memory.max_usage_in_bytes")),
                oom_kills=oom.get("oom_kill"),
                failcnt=failcnt,
            ),
            cpu=Cpu(
                cpus=units.quota_to_cpus(quota, units.number(get("cpu", "cpu.cfs_period_us"))),
                usage_ns=units.number(get("cpuacct", "cpuacct.usage")),
                nr_periods=cpu.get("nr_periods"),
                nr_throttled=cpu.get("nr_throttled"),
                throttled_ns=cpu.get("throttled_time"),  # v1 counts it in ns already
            ),
            pids=Pids(
                limit=units.number(get("pids", "pids.max")),
                current=units.number(get("pids", "pids.current")),
                events_max=pids_events.get("max"),
            ),
            io=IO(
                limits=units.io_limits(reads, writes),
                read_bytes=read_bytes,
                write_bytes=write_bytes,
            ),
        )

    def oom_kills(self):
        # "oom_kill N" in memory.oom_control since Linux 4.13.
        return units.keyed(self._get(self._file("memory", "memory.oom_control"))).get("oom_kill", 0)

    def kill(self):
        self._kill_loop()
