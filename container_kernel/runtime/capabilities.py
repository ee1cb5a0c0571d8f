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

from . import syscalls as sc
from .errors import usage
from .procfs import CAPABILITIES as NAMES  # index = the capability's number

DEFAULT = ("chown", "dac_override", "fsetid", "fowner", "net_raw", "setgid", "setuid", "setfcap",
           "setpcap", "net_bind_service", "sys_chroot", "kill", "audit_write")


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
    """Docker's rule: the default set, plus --cap-add, less --cap-drop; and --cap-drop ALL
    starts from none, so `--cap-drop ALL --cap-add CHOWN` keeps CHOWN alone (moby's
    TweakCapabilities)."""
    if set(NAMES) <= set(drop):
        return tuple(n for n in NAMES if n in add)
    return tuple(n for n in NAMES if (n in DEFAULT or n in add) and n not in drop)


def last_cap():
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return len(NAMES) - 1


def restrict(keep):
    """In the payload, before exec: keep only these capabilities, now and after exec."""
    numbers = {NAMES.index(n) for n in keep}
    for cap in range(last_cap() + 1):
        if cap not in numbers:
            sc.prctl(sc.PR_CAPBSET_DROP, cap)
    sc.prctl(sc.PR_CAP_AMBIENT, sc.PR_CAP_AMBIENT_CLEAR_ALL)
    mask = sum(1 << n for n in numbers)
    # Inheritable stays empty, as in Docker since CVE-2022-24769.
    sc.capset(mask, mask, 0)
