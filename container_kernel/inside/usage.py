"""The kernel's usage_reply (jupyter-resource-usage's kernel panel) with the container's numbers.

ipykernel answers a usage_request on the control channel with /proc/meminfo and
the CPU count, which inside a container are the host's: 24 GiB of RAM for a
kernel limited to 512 MiB. This handler keeps the reply's shape, so the panel
needs no change, but fills it from the container's cgroup as the launcher reads
it: memory used and available against the limit, CPUs as the quota, CPU percent
against the quota; the active and inactive pages the panel also shows come from
the memory.stat of the container's own cgroup, as its cgroup namespace shows it.
Rootless without a cgroup, the memory limit is the RLIMIT_AS fallback, and the
reply says so.
"""

import math
import os
import resource
import socket
import time

from .. import protocol
from . import client

MEMORY_STAT = ("/sys/fs/cgroup/memory.stat", "/sys/fs/cgroup/memory/memory.stat")  # v2, v1


class Usage:
    """A control handler for one kernel; register() installs it."""

    def __init__(self, kernel):
        self.kernel = kernel
        self.last_cpu = None  # (monotonic ns, cgroup CPU ns) of the previous reply

    async def handle(self, stream, ident, parent):
        self.kernel.session.send(stream, "usage_reply", self.reply(), parent, ident)

    def reply(self):
        import psutil
        content = {"hostname": socket.gethostname(), "pid": os.getpid()}
        me = psutil.Process()
        procs = {p.pid: self.kernel.processes.get(p.pid, p)
                 for p in [me, *me.children(recursive=True)]}
        self.kernel.processes = procs  # ipykernel keeps them so cpu_percent has a baseline
        metric = self.kernel.get_process_metric_value
        content["kernel_cpu"] = sum(metric(p, "cpu_percent", None) or 0 for p in procs.values())
        content["kernel_memory"] = sum(metric(p, "memory_full_info", "pss") or 0 for p in procs.values())
        try:
            stats = client.request("stats")
        except protocol.ControlError as e:
            content["container"] = {"error": str(e)}
            return content
        cg = stats.stats
        limit = cg.memory.limit if cg else None
        used = cg.memory.usage if cg else content["kernel_memory"]
        how = (stats.enforced or {}).get("memory")
        if limit is None and how and how.startswith("RLIMIT_AS"):
            soft = resource.getrlimit(resource.RLIMIT_AS)[0]
            limit = None if soft == resource.RLIM_INFINITY else soft
        total = limit or psutil.virtual_memory().total
        free = max(total - (used or 0), 0)
        content["host_virtual_memory"] = {"total": total, "available": free, "used": used,
                                          "free": free, "percent": round(100 * (used or 0) / total, 1)}
        lru = lru_pages() if cg else None  # without a cgroup of its own, the stat is not its own
        if lru:  # the panel shows these two (as 0 when missing); psutil's Linux reply has them
            content["host_virtual_memory"].update(active=lru[0], inactive=lru[1])
        cpus = cg.cpu.cpus if cg else None
        content["cpu_count"] = math.ceil(cpus) if cpus else os.cpu_count()
        percent = self._cpu_percent(cg, cpus)
        if percent is not None:
            content["host_cpu_percent"] = percent
        content["container"] = {"memory_limit": limit, "memory_usage": used, "cpus": cpus,
                                "pids": cg.pids.current if cg else None,
                                "memory_enforced_by": how, "seen_from": "the host, by the launcher"}
        return content

    def _cpu_percent(self, cg, cpus):
        """The container's CPU use since the previous reply, as a percent of its quota."""
        if not cg or cg.cpu.usage_ns is None:
            return None
        now, used = time.monotonic_ns(), cg.cpu.usage_ns
        last, self.last_cpu = self.last_cpu, (now, used)
        if last is None or now <= last[0]:
            return None
        share = cpus or os.cpu_count() or 1
        return round(100 * (used - last[1]) / (now - last[0]) / share, 1)


def lru_pages():
    """(active, inactive) bytes of the container's memory, from the memory.stat at the root
    of its cgroup namespace (its own cgroup), or None where there is none."""
    for path in MEMORY_STAT:
        try:
            with open(path) as f:
                stat = dict(line.split()[:2] for line in f if " " in line)
        except OSError:
            continue
        # v1 counts this cgroup alone in active_anon and the subtree (%sandbox's children
        # too) in total_active_anon; v2's counters are the subtree already.
        pre = "total_" if "total_active_anon" in stat else ""
        pages = {lru: sum(int(stat.get(f"{pre}{lru}_{kind}", 0)) for kind in ("anon", "file"))
                 for lru in ("active", "inactive")}
        return pages["active"], pages["inactive"]
    return None


def register(ip):
    """Answer usage requests with the container's numbers, in a container kernel only."""
    kernel = getattr(ip, "kernel", None)  # None in a terminal IPython
    if client.path() and kernel is not None and "usage_request" in kernel.control_handlers:
        kernel.control_handlers["usage_request"] = Usage(kernel).handle
