"""What this host allows (`container-kernel doctor`) and what runs on it (`ps`).

doctor answers by trying, not by guessing: each capability is exercised in a
throw-away child process (unshare, a tmpfs, pivot_root) that exits at once. How
each limit would be enforced is limits.py's rule, the same the launcher follows.
The CLI prints what these return.
"""

import json
import os
import sys
from collections import namedtuple

from . import cgroups, devices, idmap, limits, procfs, rundir, seccomp, security
from . import syscalls as sc
from .spec import default_run_base


class HostFacts(namedtuple("HostFacts", "root uid python kernel cgroup_version cgroup_hybrid "
                             "cgroup_controllers max_user_namespaces unprivileged_userns_clone "
                             "apparmor_restrict_userns userns_error namespaces_error "
                             "pivot_root_error overlayfs in_container newuidmap seccomp_error")):
    """What doctor found; each *_error is None when the thing worked, else why not."""
    __slots__ = ()


class Feature(namedtuple("Feature", "feature on why")):
    """One line of doctor's "Here container-kernel will:" list."""
    __slots__ = ()


def _try_in_child(fn):
    """Run fn() in a fork; return None if it worked, else the error text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            fn()
            os._exit(0)
        except BaseException as e:
            os.write(w, (os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)).encode())
            os._exit(1)
    os.close(w)
    err = os.read(r, 4096).decode()
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return None if status == 0 else (err or "failed")


def _pivot_root_works():
    uid, gid = os.geteuid(), os.getegid()
    sc.unshare(sc.CLONE_NEWNS | (0 if uid == 0 else sc.CLONE_NEWUSER))
    if uid != 0:  # unmapped, no file can be created (mkdir: EOVERFLOW): be root inside
        idmap.write_maps("self", idmap.single(0, uid), idmap.single(0, gid))
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("tmpfs", "/tmp", "tmpfs", 0, "size=64k")
    os.mkdir("/tmp/old")
    sc.pivot_root("/tmp", "/tmp/old")


def _read(path):
    text = procfs.read(path)
    return None if text is None else text.strip()


def probe_host():
    """HostFacts, each one tried rather than assumed."""
    version = cgroups.detect() if os.path.isdir(cgroups.ROOT) else None
    return HostFacts(**{
        "root": os.geteuid() == 0,
        "uid": os.geteuid(),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "cgroup_version": version,
        "cgroup_hybrid": version == 1 and os.path.isdir("/sys/fs/cgroup/unified"),
        "cgroup_controllers": sorted(cgroups.available_controllers(version)) if version else [],
        "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
        "unprivileged_userns_clone": _read("/proc/sys/kernel/unprivileged_userns_clone"),
        "apparmor_restrict_userns": _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        "userns_error": _try_in_child(lambda: sc.unshare(sc.CLONE_NEWUSER)),
        "namespaces_error": _try_in_child(lambda: sc.unshare(
            sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET | sc.CLONE_NEWPID
            | sc.CLONE_NEWCGROUP | (0 if os.geteuid() == 0 else sc.CLONE_NEWUSER))),
        "pivot_root_error": _try_in_child(_pivot_root_works),
        "overlayfs": "overlay" in (_read("/proc/filesystems") or ""),
        "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
                        or _read("/proc/1/comm") not in ("systemd", "init", None),
        "newuidmap": any(os.access(os.path.join(d, "newuidmap"), os.X_OK)
                         for d in os.environ.get("PATH", "/usr/bin").split(":")),
        "seccomp_error": seccomp.available(),
    })


def features(f, host=None):
    """What container-kernel will do here: [Feature]."""
    can_ns = f.namespaces_error is None
    out = [Feature("containers (PID, mount, UTS, IPC, net, cgroup namespaces)", can_ns,
                   f.namespaces_error or ("as root" if f.root else "in a user namespace")),
           Feature("pivot_root into the container's rootfs", f.pivot_root_error is None,
                   f.pivot_root_error or "works")]
    host = host or limits.host_cgroups(not f.root)
    for limit, what in (("memory", "memory limit (--memory)"), ("cpu", "CPU quota (--cpus)"),
                        ("pids", "process limit (--pids)"), ("io", "I/O limits (--io-*-bps)")):
        out.append(Feature(what, *limits.capability(limit, host)))
    userns = f.userns_error is None
    why = f.userns_error or "allowed"
    if not userns:
        if f.apparmor_restrict_userns == "1":
            why += ("; AppArmor restricts unprivileged user namespaces: "
                    "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
        elif f.unprivileged_userns_clone == "0":
            why += "; enable with: sysctl -w kernel.unprivileged_userns_clone=1"
        elif f.max_user_namespaces == "0":
            why += "; enable with: sysctl -w user.max_user_namespaces=15000"
    out.append(Feature("user namespaces (rootless containers)", userns, why))
    out.append(Feature("seccomp (Docker's default profile, and no namespaces inside)",
                       f.seccomp_error is None,
                       f.seccomp_error or f"libseccomp {seccomp.version()}"))
    out.append(Feature("no_new_privs", True, "on (--security-opt no-new-privileges=false to opt out)"))
    out.append(Feature("masked and read-only /proc and /sys paths", True,
                       f"Docker's lists: {len(security.MASKED_PATHS)} masked, "
                       f"{len(security.READONLY_PATHS)} read-only, /proc/sys among them"))
    version = (host.version if not host.rootless else 2 if host.delegated else None)
    out.append(Feature("only the minimal /dev (devices)", True, devices.policy(version)))
    return out


def containers(run_base=None):
    """The state of every running container of this user, with live cgroup figures."""
    run_base = run_base or default_run_base(os.geteuid() != 0)
    out = []
    for name in sorted(os.listdir(run_base)) if os.path.isdir(run_base) else []:
        try:
            with open(os.path.join(run_base, name, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        if not rundir.owner_alive(os.path.join(run_base, name)):
            continue  # stale: its launcher is gone (the next start collects it)
        state["started"] = os.stat(os.path.join(run_base, name, "state.json")).st_mtime
        if state.get("cgroup_version") in (1, 2):
            state["stats"] = cgroups.open_cgroup(state["id"], state["cgroup_version"]).stats().as_dict()
        out.append(state)
    return out


def containment_problem():
    """Why this process could not create a container here, or None. Cheap: no fork.

    (doctor tries for real; this is the quick check a kernel provisioner can afford.)"""
    if not os.path.exists("/proc/self/ns/pid"):
        return "this kernel has no namespaces (not Linux?)"
    if os.geteuid() == 0:
        if os.path.exists("/.dockerenv") and not _can_admin():
            return "running as root inside a container without CAP_SYS_ADMIN"
        return None
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0)"
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "user namespaces are disabled (user.max_user_namespaces=0)"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return ("AppArmor restricts unprivileged user namespaces "
                "(kernel.apparmor_restrict_unprivileged_userns=1)")
    return None


def _can_admin():
    return "sys_admin" in procfs.capability_names(procfs.status_field("CapEff"))
