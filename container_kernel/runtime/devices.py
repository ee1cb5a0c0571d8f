"""The devices a container can open: a minimal /dev, and on cgroup v1 a devices cgroup to match.

The mount plan binds only these nodes into the container's /dev (a tmpfs), plus
its own devpts (runc's default devices, bwrap --dev). On cgroup v1 the devices
controller allows exactly them, read and write, and nothing may be created (no
"m"): tighter than Docker, which allows mknod of any node and relies on dropping
CAP_MKNOD. cgroup v2 has no devices files: the kernel takes a BPF program
instead (runc attaches one). We do not, for the reasons MINIMAL_DEV gives.
"""

# name in /dev -> (type, major, minor)
NODES = {"null": ("c", 1, 3), "zero": ("c", 1, 5), "full": ("c", 1, 7), "random": ("c", 1, 8),
         "urandom": ("c", 1, 9), "tty": ("c", 5, 0)}
PTYS = (("c", 5, 2), ("c", 136, "*"))  # devpts newinstance: its ptmx, and the ptys

V1_POLICY = ("devices cgroup (v1): only null, zero, full, random, urandom, tty, ptmx and the "
             "ptys, read and write; no device node can be made")
# Why no BPF device program on v2 (or without a cgroup) still leaves no other device to open.
MINIMAL_DEV = ("/dev is a tmpfs with only null, zero, full, random, urandom, tty and a private "
               "devpts, every other mount is nodev, and without CAP_MKNOD no device node can "
               "be made")


def v1_rules():
    """What to write to devices.deny, then to devices.allow, one write each."""
    allow = [f"{t} {major}:{minor} rw" for t, major, minor in list(NODES.values()) + list(PTYS)]
    return ["a"], allow


def policy(cgroup_version):
    """The devices policy in force, in words (%container_info, doctor)."""
    if cgroup_version == 1:
        return V1_POLICY
    why = ("on cgroup v2 it would be a BPF program" if cgroup_version == 2
           else "this container has no cgroup")
    return f"no devices cgroup ({why}): {MINIMAL_DEV}"
