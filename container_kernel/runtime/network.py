"""The container's network: a new network namespace holds only `lo`, and it starts down.

Bringing lo up is one ioctl (what `ip link set lo up` ends in), done with the
raw _socket module: importing pyroute2 (netlink) costs ~200 ms, ten containers'
worth of start time; it is for configured links (veth pairs, addresses, routes).
"""

import fcntl
import struct

SIOCGIFFLAGS = 0x8913
SIOCSIFFLAGS = 0x8914
IFF_UP = 0x1


def loopback_up():
    import _socket
    s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
    try:
        ifreq = struct.pack("16sh", b"lo", 0)
        flags = struct.unpack("16sh", fcntl.ioctl(s.fileno(), SIOCGIFFLAGS, ifreq))[1]
        fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sh", b"lo", flags | IFF_UP))
    finally:
        s.close()


# ---- joining another container's network namespace ------------------------------------------

def join(spec):
    """The network namespace a container joins instead of making its own, as an open fd of
    /proc/<its init>/ns/net (for the intermediate stage's setns), or None.

    container:ID joins that running container's. private:NAME joins any running container
    started with the same private:NAME, or (the first of them) gets a new one: the
    namespace lives as long as one member does, with no file of its own to clean up.
    Callers hold lock(spec) from here until the new member's state is written, so two
    first members cannot start side by side with a namespace each."""
    kind, _, name = spec.network.partition(":")
    if kind not in ("container", "private"):
        return None
    if spec.rootless:
        from .errors import usage
        raise usage(f"--network {spec.network}: a rootless container cannot join another's "
                    "network namespace (its user namespace owns it): use none or host")
    from . import rundir
    import os
    if kind == "container":
        pid = rundir.init_pid(spec.run_base, name)
        if pid is None:
            from .errors import usage
            raise usage(f"--network container:{name}: no running container {name!r} of ours "
                        "(see container-kernel ps)")
        pids = [pid]
    else:
        pids = rundir.members(spec.run_base, spec.network)
    for pid in pids:
        try:
            return os.open(f"/proc/{pid}/ns/net", os.O_RDONLY | os.O_CLOEXEC)
        except OSError:  # it ended since we looked: another member, or a namespace of our own
            continue
    if kind == "container":
        from .errors import ContainerError
        raise ContainerError(f"--network container:{name}: it ended as we joined it")
    return None  # the first of private:NAME: a namespace of its own (spec.namespaces has "net")


def lock(spec):
    """An exclusive flock on the run base for a private: network's start, or None; close it
    once the container's state is written."""
    if not spec.network.startswith("private:"):
        return None
    import os
    fd = os.open(spec.run_base, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    fcntl.flock(fd, fcntl.LOCK_EX)
    return fd
