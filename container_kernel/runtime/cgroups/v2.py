"""cgroup v2: one directory in the unified tree (runc's fs2/, youki's v2/).

A container is <base>/container-kernel/<id>. Its controller files exist only
if every ancestor listed the controller in cgroup.subtree_control, so create()
switches them on from base down to container-kernel first.
"""

import errno
import os

from ..errors import ContainerError, usage
from . import units
from .base import PARENT, Cgroup, _error, bad_limit
from .stats import IO, Cpu, Memory, Pids, Stats

CONTROLLERS = ("memory", "cpu", "pids", "io")
LEAF = "main"  # where a container's own processes go once it has child cgroups
MOVE_ROUNDS = 100  # a process may fork while we move its siblings: read cgroup.procs again


class V2Cgroup(Cgroup):
    version = 2

    def __init__(self, container_id, path, base):
        super().__init__(container_id)
        self.path = path
        self.base = base

    def paths(self):
        return {"unified": self.path}

    def _file(self, name):
        return os.path.join(self.path, name)

    def create(self, resources):
        parent = os.path.join(self.base, PARENT)
        self._enable(self.base)
        self._make(parent, exist_ok=True)
        self._enable(parent)
        self._create([self.path], resources)

    def child(self, name):
        return V2Cgroup(f"{self.id}/{name}", os.path.join(self.path, name), self.base)

    def _prepare_children(self):
        """Make room for child cgroups with controllers: move our processes into a leaf.

        The no-internal-processes rule: a non-root cgroup that hands controllers to
        its children (cgroup.subtree_control) may hold no process itself. So, at the
        first child, everything in <id> moves to <id>/main, then <id> enables its
        controllers. The limits of <id> still cover the whole subtree; destroy()
        removes main with the rest. (What systemd does for a delegated unit.)
        """
        enabled = (self._get(self._file("cgroup.subtree_control")) or "").split()
        available = (self._get(self._file("cgroup.controllers")) or "").split()
        if all(c in enabled for c in CONTROLLERS if c in available):
            return
        leaf = os.path.join(self.path, LEAF)
        self._make(leaf, exist_ok=True)
        for _ in range(MOVE_ROUNDS):
            pids = (self._get(self._file("cgroup.procs")) or "").split()
            if not pids:
                break
            for pid in pids:
                try:
                    self._write(os.path.join(leaf, "cgroup.procs"), pid)
                except ProcessLookupError:
                    pass  # it exited meanwhile
                except OSError as e:
                    raise _error(f"cannot move process {pid} to", leaf, e) from None
        self._enable(self.path)

    def _enable(self, d):
        available = self._get(os.path.join(d, "cgroup.controllers"))
        if available is None:
            raise ContainerError(f"cgroup: {d} is not a cgroup v2 directory (no cgroup.controllers)")
        enabled = (self._get(os.path.join(d, "cgroup.subtree_control")) or "").split()
        wanted = [c for c in CONTROLLERS if c in available.split() and c not in enabled]
        if wanted:
            self._set(os.path.join(d, "cgroup.subtree_control"), " ".join("+" + c for c in wanted), {
                errno.EBUSY: f"{d} has processes of its own, and cgroup v2 lets a cgroup hand "
                             "controllers to children only if it holds none (the no-internal-processes "
                             "rule; the root is exempt): move them into a child cgroup first"})

    def apply(self, r):
        if r.memory is not None:
            # Unlike v1, lowering memory.max below usage does not fail: the kernel
            # reclaims, and OOM-kills in the cgroup if it cannot.
            self._set(self._file("memory.max"), r.memory)
        if r.memory_swap is not None:
            self._set_swap(r.memory, r.memory_swap)
        if r.cpus is not None:
            self._set(self._file("cpu.max"), f"{units.cpus_to_quota(r.cpus)} {units.PERIOD_US}")
        if r.pids is not None:
            self._set(self._file("pids.max"), r.pids)
        devices = {}
        for key, limits in (("rbps", r.io_read_bps), ("wbps", r.io_write_bps)):
            for limit in limits:
                devices.setdefault((limit.major, limit.minor), []).append(f"{key}={limit.bps}")
        for (major, minor), pairs in devices.items():
            # Keys not written keep their value: "8:0 rbps=N" leaves wbps alone.
            self._set(self._file("io.max"), f"{major}:{minor} {' '.join(pairs)}")

    def _set_swap(self, memory, memory_swap):
        path = self._file("memory.swap.max")
        if not os.path.exists(path):
            return  # no swap accounting (CONFIG_MEMCG_SWAP off, or swapaccount=0): as v1
        if memory is None:
            memory = units.number(self._get(self._file("memory.max")))
        if memory is None and memory_swap != -1:
            raise usage("cgroup: a memory+swap limit needs a memory limit too")
        value = units.swap_v2(memory, memory_swap)
        if value != "max" and value < 0:
            raise usage(f"cgroup: memory+swap ({memory_swap}) is less than memory ({memory})")
        self._set(path, value)

    def reset(self, limit):
        if limit == "memory":
            self._set(self._file("memory.max"), "max")
            if os.path.exists(self._file("memory.swap.max")):
                self._set(self._file("memory.swap.max"), "max")
        elif limit == "cpu":
            self._set(self._file("cpu.max"), f"max {units.PERIOD_US}")
        elif limit == "pids":
            self._set(self._file("pids.max"), "max")
        elif limit == "io":
            for (major, minor), _ in units.nested(self._get(self._file("io.max"))):
                self._set(self._file("io.max"), f"{major}:{minor} rbps=max wbps=max")
        else:
            raise bad_limit(limit)

    def stats(self):
        get = lambda name: self._get(self._file(name))  # noqa: E731
        limit = units.number(get("memory.max"))
        swap = units.number(get("memory.swap.max"))
        events = units.keyed(get("memory.events"))
        quota, _, period = (get("cpu.max") or "").partition(" ")
        cpu = units.keyed(get("cpu.stat"))
        pids_events = units.keyed(get("pids.events"))
        io_max = units.nested(get("io.max"))
        io_stat = get("io.stat")
        devices = units.nested(io_stat)
        return Stats(
            version=2,
            paths=self.paths(),
            memory=Memory(
                limit=limit,
                # v2 limits swap alone; report docker's memory+swap total like v1 does.
                swap_limit=limit + swap if limit is not None and swap is not None else None,
                usage=units.number(get("memory.current")),
                peak=units.number(get("memory.peak")),  # Linux 5.19+
                oom_kills=events.get("oom_kill"),
                failcnt=events.get("max"),  # times usage hit memory.max: v1's failcnt
            ),
            cpu=Cpu(
                cpus=units.quota_to_cpus(units.number(quota or None), units.number(period or None)),
                usage_ns=_ns(cpu.get("usage_usec")),
                nr_periods=cpu.get("nr_periods"),
                nr_throttled=cpu.get("nr_throttled"),
                throttled_ns=_ns(cpu.get("throttled_usec")),
            ),
            pids=Pids(
                limit=units.number(get("pids.max")),
                current=units.number(get("pids.current")),
                events_max=pids_events.get("max"),
            ),
            io=IO(
                limits=units.io_limits(
                    {dev: v["rbps"] for dev, v in io_max if v.get("rbps") is not None},
                    {dev: v["wbps"] for dev, v in io_max if v.get("wbps") is not None}),
                read_bytes=sum(v.get("rbytes", 0) for _, v in devices) if io_stat is not None else None,
                write_bytes=sum(v.get("wbytes", 0) for _, v in devices) if io_stat is not None else None,
            ),
        )

    def oom_kills(self):
        return units.keyed(self._get(self._file("memory.events"))).get("oom_kill", 0)

    def kill(self):
        kill_file = self._file("cgroup.kill")
        if os.path.exists(kill_file):
            # Linux 5.14+: the kernel SIGKILLs every process inside, forks included.
            self._set(kill_file, 1)
        else:
            self._kill_loop()


def _ns(usec):
    return None if usec is None else usec * 1000
