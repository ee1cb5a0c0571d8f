"""What the kernel can see of its container: from inside for itself, and the host's view.

The kernel reads its own /proc (namespaces, ID maps, mounts, capabilities) with
the same pure readers the runtime uses (runtime/procfs.py). What only the host
knows (host PIDs, the host's namespaces, the cgroup's files) is the launcher's
info reply (protocol.Info). Without a launcher of ours, the kernel reads its own
cgroup, read-only, and says which container it might be in instead.
"""

import os
import socket
from collections import namedtuple

from .. import protocol
from ..runtime import cgroups, idmap, procfs
from ..runtime.errors import ContainerError
from ..runtime.namespaces import KINDS, inodes
from . import client

SECCOMP = {"0": "disabled", "1": "strict", "2": "filter"}  # /proc/PID/status Seccomp


class Link(namedtuple("Link", "name state")):
    """A network interface and its operstate ("up", "down", "unknown" for lo)."""
    __slots__ = ()


class Namespace(namedtuple("Namespace", "type inside host isolated what")):
    """One namespace kind: its inode here and on the host; isolated is None when the
    host's inode is unknown (no launcher answered)."""
    __slots__ = ()


class CgroupFacts(namedtuple("CgroupFacts", "version paths stats ceiling seen_from")):
    """version: 1 or 2; stats: a cgroups.stats.Stats; ceiling: a protocol.Ceiling, or
    None where there is no launcher (no ceiling)."""
    __slots__ = ()


class Facts(namedtuple("Facts", "kernel contained warning outer_container hostname pid ppid "
                       "namespaces uid_map gid_map users cwd mounts capabilities no_new_privs "
                       "seccomp links host host_error interfaces namespace_table cgroup "
                       "os_release", defaults=(None,))):
    """Everything %container_info shows. kernel: "container-kernel", "unconfined" or
    "other"; mounts: procfs.Mount records; host: the launcher's protocol.Info, or None
    (then host_error may say why)."""
    __slots__ = ()


# ---- containment: what this kernel is, from its environment ----------------------------------

def in_container():
    return os.environ.get("container") == "container-kernel"


def unconfined_reason():
    return os.environ.get(protocol.UNCONFINED_ENV)


def warning_banner():
    reason = unconfined_reason()
    if reason:
        return f"WARNING: this kernel is NOT contained: {reason}"
    if not in_container():
        return ("This kernel was not started by container-kernel: it is not contained by this "
                "project. %container_info shows what it can see.")
    return None


def outer_container():
    """Another container this kernel runs in, if it can tell: what runs Binder, say."""
    kind = os.environ.get("container")
    if kind and kind != "container-kernel":
        return f"{kind} ($container is set, the systemd convention)"
    for path, name in (("/.dockerenv", "Docker"), ("/run/.containerenv", "Podman")):
        if os.path.exists(path):
            return f"{name} ({path} exists)"
    text = procfs.read("/proc/1/cgroup") or ""
    for word in ("docker", "kubepods", "containerd", "libpod", "lxc"):
        if word in text:
            return f"{word} (named in /proc/1/cgroup)"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "a Kubernetes pod ($KUBERNETES_SERVICE_HOST is set)"
    return None


# ---- what the kernel reads for itself ---------------------------------------------------------

def interfaces():
    return [Link(name, (procfs.read(f"/sys/class/net/{name}/operstate") or "?").strip())
            for _, name in socket.if_nameindex()]


def users(uid_map, gid_map):
    """Who root inside is on the host, in words, then each map line (runtime/idmap.describe)."""
    root = next((outside - inside for inside, outside, n in uid_map if inside <= 0 < inside + n), None)
    head = [f"root inside is uid {root} on the host" if root is not None
            else "root inside is not mapped to any host uid (it is nobody there)"]
    return head + idmap.describe(uid_map, "uid") + idmap.describe(gid_map, "gid")


def mounts():
    """This mount namespace's [procfs.Mount] ([] if mountinfo cannot be read)."""
    try:
        return procfs.mountinfo()
    except OSError:
        return []


def own_stats():
    """The Stats of this process's own cgroup, read-only: for a kernel no launcher of
    ours watches over (Binder's Docker container has a memory limit, say). None if unreadable."""
    try:
        cg = cgroups.open_own()
        return cg.stats() if cg is not None else None
    except (OSError, ValueError, ContainerError):  # not ours to read, or a format we do not know
        return None


def namespace_table(inside, host_ns):
    return [Namespace(kind, ino, host_ns.get(kind), None if kind not in host_ns else ino != host_ns[kind],
                      KINDS[kind][1])
            for kind, ino in inside.items()]


def cgroup_facts(host):
    """The cgroup as the launcher sees it, else as this process reads its own; None if neither."""
    if host is not None and host.cgroup is not None:
        cg = host.cgroup
        return CgroupFacts(cg.version, cg.paths, cg.stats, host.ceiling, "the host")
    stats = own_stats()
    if stats is None:
        return None
    return CgroupFacts(stats.version, stats.paths, stats, None, "inside (read-only)")


def container_info():
    """Every fact %container_info shows, as a Facts record."""
    inside = inodes()
    uid_map, gid_map = procfs.id_map("self", "uid_map"), procfs.id_map("self", "gid_map")
    host = host_error = None
    if client.path():
        try:
            host = client.request("info")
        except protocol.ControlError as e:
            host_error = str(e)
    links = interfaces()
    return Facts(
        kernel=("unconfined" if unconfined_reason() else
                "container-kernel" if in_container() else "other"),
        contained=in_container() and not unconfined_reason(),
        warning=warning_banner(),
        outer_container=outer_container(),
        hostname=socket.gethostname(),
        pid=os.getpid(),
        ppid=os.getppid(),
        namespaces=inside,
        uid_map=uid_map,
        gid_map=gid_map,
        users=users(uid_map, gid_map),
        cwd=os.getcwd(),
        mounts=mounts(),
        capabilities=procfs.capability_names(procfs.status_field("CapEff")),
        no_new_privs=procfs.status_field("NoNewPrivs") == "1",
        seccomp=SECCOMP.get(procfs.status_field("Seccomp") or "", "unknown"),
        links=links,
        host=host,
        host_error=host_error,
        interfaces=[link.name for link in links],
        namespace_table=namespace_table(inside, (host and host.host_namespaces) or {}),
        cgroup=cgroup_facts(host),
        os_release=os_release(),
    )


def os_release(path="/etc/os-release"):
    """The distribution the kernel runs on, as its own /etc/os-release names it."""
    for line in (procfs.read(path) or "").splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return None


def to_json(facts):
    """A Facts -> plain JSON-ready data (%container_info --json). A mount is
    {target, fstype, source, ro}, as this view has always shown it."""
    data = protocol.to_wire(facts)
    data["mounts"] = [{"target": m.point, "fstype": m.fstype, "source": m.source, "ro": m.readonly}
                      for m in facts.mounts]
    return data
