"""Linux capabilities: the pieces of root, and the ones a container keeps.

Root in the host's user namespace with every capability could remount the
read-only /sys/fs/cgroup and lift its own limits (CAP_SYS_ADMIN), make a device
node for the host's disk (CAP_MKNOD), load modules... So the payload keeps only
Docker's default set, less CAP_MKNOD (Docker keeps it because its devices cgroup
forbids the nodes; we have no devices cgroup yet). `--cap-add`/`--cap-drop` move
from there, as in `docker run`.

Dropping is two steps: the bounding set (what exec can ever give back, prctl
PR_CAPBSET_DROP) and then the process's own sets (capset), before exec.
"""

import ctypes
import os

from .errors import usage

# Index = the capability's number in <linux/capability.h>.
NAMES = (
    "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid",
    "setpcap", "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw",
    "ipc_lock", "ipc_owner", "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct",
    "sys_admin", "sys_boot", "sys_nice", "sys_resource", "sys_time", "sys_tty_config", "mknod",
    "lease", "audit_write", "audit_control", "setfcap", "mac_override", "mac_admin", "syslog",
    "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf", "checkpoint_restore")
DEFAULT = ("chown", "dac_override", "fsetid", "fowner", "net_raw", "setgid", "setuid", "setfcap",
           "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write")

PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def parse(names, option):
    """"SYS_ADMIN", "cap_net_admin", "ALL" -> canonical names; one-line error otherwise."""
    out = []
    for raw in names:
        name = raw.strip().lower()
        name = name[4:] if name.startswith("cap_") else name
        if name == "all":
            out += NAMES
        elif name in NAMES:
            out.append(name)
        else:
            raise usage(f"{option}: unknown capability {raw!r}: use a name such as SYS_ADMIN, "
                        "NET_ADMIN or ALL (see capabilities(7))")
    return out


def kept(add=(), drop=()):
    """Docker's rule: the default set, plus --cap-add, less --cap-drop."""
    return tuple(n for n in NAMES if (n in DEFAULT or n in add) and n not in drop)


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def restrict(keep):
    """In the payload, before exec: keep only these capabilities, now and after exec."""
    libc = ctypes.CDLL(None, use_errno=True)
    numbers = {NAMES.index(n) for n in keep}
    for cap in range(last_cap() + 1):
        if cap not in numbers and libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"dropping capability {cap}: {os.strerror(err)}")
    libc.prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    mask = sum(1 << n for n in numbers)
    data = (_Data * 2)()
    for i in range(2):
        word = (mask >> (32 * i)) & 0xFFFFFFFF
        # Inheritable stays empty, as in Docker since CVE-2022-24769.
        data[i].effective = data[i].permitted = word
    header = _Header(_LINUX_CAPABILITY_VERSION_3, 0)
    if libc.capset(ctypes.byref(header), data) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"capset: {os.strerror(err)}")


def names_of(mask):
    """A CapEff hex mask -> capability names."""
    mask = int(mask, 16) if isinstance(mask, str) else mask
    return [NAMES[i] if i < len(NAMES) else f"cap_{i}" for i in range(64) if mask >> i & 1]
