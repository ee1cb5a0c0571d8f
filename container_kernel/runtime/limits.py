"""How each limit is enforced on this host: one plan, for the launcher, doctor and --print-plan.

As root a limit is a cgroup (v1 or v2). Rootless, it is a cgroup only in a
subtree delegated to the user (cgroup v2, systemd's user@UID.service); elsewhere
the container still runs and falls back to what works without cgroups:
RLIMIT_AS for memory (a MemoryError, not an OOM kill), RLIMIT_NPROC for
processes, nothing for CPU and I/O. What is not enforced is said, never claimed.
"""

import os
from collections import namedtuple

from . import cgroups
from .errors import ContainerError
from .spec import LIMITS, human_bytes

# The rootless kernel sets its own RLIMIT_AS once started (inside/extension.py):
# ipykernel maps ~800 MB of address space before it runs any code.
RLIMIT_AS_ENV = "CK_RLIMIT_AS_ABOVE_START"
# A controller's name in each version, where it differs from the limit's.
CONTROLLER = {1: {"io": "blkio"}, 2: {}}
# What stands in for a cgroup when there is none, and what a user sees when it bites.
FALLBACKS = {"memory": "RLIMIT_AS per process: allocations fail with MemoryError, no OOM kill",
             "pids": "RLIMIT_NPROC: fork fails with EAGAIN"}


class HostCgroups(namedtuple("HostCgroups", "rootless version controllers delegated why_not")):
    """What this host offers a container's limits. delegated: a v2 subtree the user
    owns (rootless), or None with why_not saying why there is none."""
    __slots__ = ()


class Plan(namedtuple("Plan", "cgroup_version cgroup_base enforced rlimits env warnings")):
    """cgroup_version: 1, 2 or None (no cgroup); cgroup_base: the delegated v2 dir or None;
    enforced: {limit: how}, for every asked limit; rlimits and env: for the payload;
    warnings: lines for stderr (a limit asked for and not enforced)."""
    __slots__ = ()


def host_cgroups(rootless=None):
    """Read this host's cgroup facts (no fork, no write)."""
    rootless = os.geteuid() != 0 if rootless is None else rootless
    version = cgroups.detect() if os.path.isdir(cgroups.ROOT) else None
    delegated, why_not = cgroups.delegated_base() if rootless else (None, None)
    controllers = tuple(cgroups.available_controllers(version)) if version else ()
    return HostCgroups(rootless, version, controllers, delegated, why_not)


def capability(limit, host):
    """(on, how) of one limit on this host: the rule both plan() and doctor follow."""
    if not host.rootless:
        controller = CONTROLLER.get(host.version, {}).get(limit, limit)
        on = host.version is not None and controller in host.controllers
        return on, (f"cgroup v{host.version} controller {controller!r} "
                    + ("present" if on else "missing") if host.version else "no cgroup filesystem")
    if host.delegated:
        return True, f"cgroup v2, delegated subtree {host.delegated}"
    if limit in FALLBACKS:
        return True, f"fallback, {FALLBACKS[limit]} (no cgroup: {host.why_not})"
    return False, f"not enforced rootless without a delegated cgroup v2 subtree ({host.why_not})"


def plan(spec, host=None, memory_above_start=False):
    """The Plan for spec's resources here.

    memory_above_start: a kernel's rootless memory limit is an RLIMIT_AS the payload
    sets itself once started (RLIMIT_AS_ENV), rather than one set at exec."""
    res = spec.resources
    asked = res.asked()
    host = host or host_cgroups(spec.rootless)
    if not spec.rootless:
        if host.version is None and asked:
            raise ContainerError("cgroup limits were asked for but this host has no cgroup "
                                 "filesystem at /sys/fs/cgroup (see: container-kernel doctor)")
        return Plan(host.version, None, {k: f"cgroup v{host.version}" for k in asked}, (), (), ())
    if host.delegated:
        return Plan(2, host.delegated, {k: "cgroup v2 (delegated)" for k in asked}, (), (), ())
    import resource
    enforced, rlimits, env = {}, [], []
    if res.memory is not None and memory_above_start:
        env.append((RLIMIT_AS_ENV, str(res.memory)))
        enforced["memory"] = (f"RLIMIT_AS: {human_bytes(res.memory)} of address space above "
                              "the kernel's start, per process (MemoryError, no OOM kill)")
    elif res.memory is not None:
        rlimits.append((resource.RLIMIT_AS, res.memory, res.memory))
        enforced["memory"] = (f"RLIMIT_AS of {human_bytes(res.memory)} per process "
                              "(allocations fail with MemoryError, no OOM kill)")
    if res.pids is not None:
        rlimits.append((resource.RLIMIT_NPROC, res.pids, res.pids))
        enforced["pids"] = f"RLIMIT_NPROC of {res.pids} (threads count too; fork fails with EAGAIN)"
    warnings = []
    for limit in asked:
        if limit not in enforced:
            enforced[limit] = "NOT enforced"
            warnings.append(f"the {limit} limit is not enforced: {host.why_not}")
    return Plan(None, None, enforced, tuple(rlimits), tuple(env), tuple(warnings))


def describe(p):
    """The plan as lines of text (--print-plan, doctor)."""
    where = ("no cgroup" if p.cgroup_version is None else
             f"cgroup v{p.cgroup_version}" + (f" under {p.cgroup_base}" if p.cgroup_base else ""))
    lines = [f"limits: {where}"]
    lines += [f"  {limit}: {p.enforced[limit]}" for limit in LIMITS if limit in p.enforced]
    return "\n".join(lines)
