"""The container's filesystem: an ordered list of mount steps, then pivot_root.

plan() turns a spec into a list of Steps without touching anything, so the list
can be printed, tested and shown in a notebook (`container-kernel run
--print-plan`). apply() runs it inside the new mount namespace, in init.
(The habit comes from bubblewrap: its SetupOp list, run by setup_newroot().)

Every target is a path as the container will see it; apply() prefixes the new
root until the final pivot_root step moves it to /.
"""

import os
import stat
import sys
from collections import namedtuple

from . import devices, egress, overlay, procfs
from . import syscalls as sc
from .errors import ContainerError, usage
from .paths import under

# Step kinds, in the words of mount(8) and bwrap(1):
#   private   make the whole tree private: nothing propagates back to the host
#   tmpfs     a fresh tmpfs                    bind       a read-write bind of a host path
#   ro-bind   a read-only bind                 proc/sysfs/devpts/mqueue/cgroup  a fresh kernel fs
#   dir       mkdir -p                         file       write a file (text made at plan time)
#   symlink   ln -s                            dev        bind one host device node
#   mask      hide a path: a file under /dev/null, a directory under an empty read-only tmpfs
#   ro-path   make a path read-only (nosuid, nodev, noexec too) where it is
#   remount-ro  make an existing mount read-only   pivot-root  enter the new root, detach the old
# Every bind but a device node's is nosuid and nodev: nothing in the container gains
# privileges from a file, nor opens a device through a node it finds in a bound tree.
Step = namedtuple("Step", "kind target source options", defaults=(None, None))

NOSUID_NODEV = sc.MS_NOSUID | sc.MS_NODEV
NOSUID_NODEV_NOEXEC = NOSUID_NODEV | sc.MS_NOEXEC

# /dev: the same minimal set as runc's default devices and bwrap --dev (devices.py).
DEVICES = tuple(devices.NODES)
DEV_LINKS = {"fd": "/proc/self/fd", "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2", "ptmx": "pts/ptmx", "core": "/proc/kcore"}
# Host dirs the "host" rootfs is made of (dirs are bound read-only, usrmerge links copied).
SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
# /etc entries copied into the container's /etc: nothing secret (no shadow, no ssh keys).
ETC_COPY = ("nsswitch.conf", "resolv.conf", "ld.so.cache", "localtime", "os-release",
            "debian_version", "mime.types", "protocols", "services")
ETC_BIND = ("ssl/certs", "alternatives", "fonts", "ca-certificates")


def plan(spec, root, cgroup_mounts=()):
    """The whole list of steps for spec, with root the host dir that becomes /.

    cgroup_mounts: [(dir name under /sys/fs/cgroup, fstype, options)] as on the host,
    so the container sees its own cgroup (through its cgroup namespace), read-only.
    """
    steps = [Step("private", "/")]
    if spec.rootfs.kind == "host":
        steps += _host_rootfs(spec, root)
    else:
        steps += _dir_rootfs(spec, root)
    steps += _kernel_filesystems(spec, cgroup_mounts)
    steps += _scratch(spec)
    if spec.rootfs.kind == "host":  # after the scratch tmpfs: a venv may live under /tmp or /run
        steps += _python(spec)
    for v in spec.volumes:
        if spec.rootfs.kind == "dir" and not os.path.exists(spec.rootfs.path + v.target):
            raise usage(f"--volume: {v.target!r} does not exist in the rootfs {spec.rootfs.path!r}, "
                        "which is read-only: choose a target that exists there")
        steps += _parents(v.target) + [Step("ro-bind" if v.readonly else "bind", v.target, v.source)]
    # Last, over everything else (a volume too), as runc does: the masks and read-only paths.
    steps += [Step("mask", p) for p in spec.security.masked_paths]
    steps += [Step("ro-path", p) for p in spec.security.readonly_paths]
    # An overlay rootfs stays writable: its writes go to the upper layer, never the image.
    steps += [Step("remount-ro", "/")] if spec.rootfs.kind != "overlay" else []
    return egress.resolv_steps(spec, steps) + [Step("pivot-root", "/", root)]  # slirp's DNS


def _host_rootfs(spec, root):
    """An empty tmpfs with read-only binds of the host's system dirs and Python."""
    steps = [Step("tmpfs", "/", "rootfs", "mode=0755,size=16m")]
    for d in SYSTEM_DIRS:
        if os.path.islink(d):
            steps.append(Step("symlink", d, os.readlink(d)))
        elif os.path.isdir(d):
            steps.append(Step("dir", d))
            steps.append(Step("ro-bind", d, d))
    steps += _etc(spec)
    return steps


def _python(spec):
    """The interpreter that runs us, its venv and (for an editable install) our own
    package, read-only at the same paths, so the same `python` works inside."""
    steps = []
    for path in _python_dirs():
        if not any(under(path, d) for d in SYSTEM_DIRS):
            steps += [Step("dir", path), Step("ro-bind", path, path)]
    return steps


def _python_dirs():
    dirs = []
    for p in (sys.base_prefix, sys.base_exec_prefix, sys.prefix, sys.exec_prefix):
        p = os.path.realpath(p)
        if not any(under(p, d) for d in dirs):
            dirs = [d for d in dirs if not under(d, p)] + [p]
    # An editable install imports us from the checkout: bind our package dir alone,
    # not the checkout around it, so nothing else of it is visible.
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    if not any(under(package, d) for d in dirs):
        dirs.append(package)
    return dirs


def _etc(spec):
    uid = spec.process.uid
    steps = [Step("dir", "/etc")]
    home = spec.process.home
    users = {0: "root", 65534: "nobody"}
    passwd = "".join(f"{name}:x:{u}:{u if u != 65534 else 65534}:{name}:"
                     f"{home if u == uid else ('/root' if u == 0 else '/nonexistent')}:"
                     f"{'/bin/bash' if u in (0, uid) else '/usr/sbin/nologin'}\n"
                     for u, name in sorted({**users, uid: users.get(uid, 'user')}.items()))
    groups = {0: "root", 5: "tty", 65534: "nogroup"}
    group = "".join(f"{name}:x:{g}:\n" for g, name in sorted(
        {**groups, spec.process.gid: groups.get(spec.process.gid, "user")}.items()))
    steps += [Step("file", "/etc/passwd", passwd), Step("file", "/etc/group", group),
              Step("file", "/etc/hostname", spec.hostname + "\n"),
              Step("file", "/etc/hosts", _hosts(spec.hostname))]
    for name in ETC_COPY:
        src = "/etc/" + name
        if os.path.islink(src):
            steps.append(Step("symlink", src, os.readlink(src)))
        elif os.path.isfile(src):
            steps.append(Step("copy", src, src))
    for name in ETC_BIND + tuple(sorted(n for n in _listdir("/etc") if n.startswith("python3"))):
        src = "/etc/" + name
        if os.path.isdir(src) and not os.path.islink(src):
            steps += [Step("dir", src), Step("ro-bind", src, src)]
    return steps


def _hosts(hostname):
    return (f"127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
            f"127.0.1.1\t{hostname}\n")


def _dir_rootfs(spec, root):
    """A prepared tree (e.g. debootstrap --variant=minbase), bound read-only; or one of
    ours, as the lower layer of an overlay (overlay.py)."""
    tree = spec.rootfs.path
    missing = [d for d in ("/proc", "/dev", "/sys", "/tmp") if not os.path.isdir(tree + d)]
    if missing:
        raise usage(f"--rootfs: {tree!r} lacks the mount points {', '.join(missing)}: "
                    "is it a root filesystem?")
    steps = [Step("overlay", "/", tree, overlay.options(spec)) if spec.rootfs.kind == "overlay"
             else Step("rbind", "/", tree)]
    # Like docker, the container's own hostname and hosts are bound over the image's files.
    for name, text in (("hostname", spec.hostname + "\n"), ("hosts", _hosts(spec.hostname))):
        if os.path.isfile(f"{tree}/etc/{name}"):
            steps.append(Step("file-over", f"/etc/{name}", text))
    return steps


def _kernel_filesystems(spec, cgroup_mounts):
    steps = [Step("dir", "/proc"), Step("proc", "/proc"),
             Step("dir", "/dev"), Step("tmpfs", "/dev", "dev", "mode=0755,size=64k")]
    steps += [Step("dev", "/dev/" + d, "/dev/" + d) for d in DEVICES if os.path.exists("/dev/" + d)]
    steps += [Step("dir", "/dev/pts"), Step("devpts", "/dev/pts"),
              Step("dir", "/dev/shm"), Step("tmpfs", "/dev/shm", "shm", "mode=1777,size=64m"),
              Step("dir", "/dev/mqueue"), Step("mqueue", "/dev/mqueue")]
    steps += [Step("symlink", "/dev/" + name, target) for name, target in DEV_LINKS.items()]
    steps += [Step("dir", "/sys"), Step("sysfs", "/sys")]
    if cgroup_mounts:
        steps.append(Step("dir", "/sys/fs/cgroup"))
        if len(cgroup_mounts) == 1 and cgroup_mounts[0][1] == "cgroup2":
            steps.append(Step("cgroup", "/sys/fs/cgroup", "cgroup2", None))
        else:  # v1: a tmpfs of mount points, one read-only hierarchy each, as docker shows it
            steps.append(Step("tmpfs", "/sys/fs/cgroup", "cgroup", "mode=0755,size=16k"))
            for name, fstype, options in cgroup_mounts:
                steps += [Step("dir", "/sys/fs/cgroup/" + name),
                          Step("cgroup", "/sys/fs/cgroup/" + name, fstype, options)]
            steps.append(Step("remount-ro", "/sys/fs/cgroup"))
    return steps


def _scratch(spec):
    home = spec.process.home
    steps = [Step("dir", "/tmp"), Step("tmpfs", "/tmp", "tmp", "mode=1777")]
    for path, kind in (("/run", "run"), (home, "home")):
        # A prepared rootfs is read-only: only mount where it has the mount point.
        if kind == "home" and spec.rootfs.kind == "overlay":  # home is the layer's: pip --user persists
            steps.append(Step("dir", path))
        elif spec.rootfs.kind == "host" or os.path.isdir(spec.rootfs.path + path):
            mode = "mode=0755" if kind == "run" else \
                f"mode=0700,uid={spec.process.uid},gid={spec.process.gid}"
            steps += [Step("dir", path), Step("tmpfs", path, kind, mode)]
    return steps


def _parents(target):
    return [Step("dir", os.path.dirname(target))] if os.path.dirname(target) != "/" else []


def _listdir(path):
    try:
        return os.listdir(path)
    except OSError:
        return []


def host_cgroup_mounts(mountinfo="/proc/self/mountinfo"):
    """[(name, fstype, options)] for the cgroup filesystems under /sys/fs/cgroup."""
    found = []
    for m in procfs.mountinfo(mountinfo):
        if m.fstype not in ("cgroup", "cgroup2") or not under(m.point, "/sys/fs/cgroup"):
            continue
        if m.point == "/sys/fs/cgroup":
            return [("", m.fstype, None)]
        opts = [o for o in m.super_options if o not in ("rw", "ro")]
        found.append((m.point[len("/sys/fs/cgroup/"):], m.fstype, ",".join(opts) or None))
    return found


def describe(steps):
    """The plan as lines of text: what a learner reads before anything is mounted."""
    lines = []
    for s in steps:
        src = "" if s.source is None or s.kind in ("file", "file-over") else f" <- {s.source}"
        opt = f" ({s.options})" if s.options and s.kind not in ("file", "file-over") else ""
        lines.append(f"{s.kind:10} {s.target}{src}{opt}")
    return "\n".join(lines)


# ---- apply: runs in the container's init, in its new mount namespace ----------------------

def apply(steps, root):
    for step in steps:
        try:
            _APPLY[step.kind](root, step)
        except OSError as e:
            raise ContainerError(f"mount step '{step.kind} {step.target}' failed: "
                                 f"{os.strerror(e.errno) if e.errno else e}") from None


def _at(root, target):
    return root if target == "/" else root + target


def _private(root, step):
    # systemd makes / shared; without this our mounts would propagate back to the host.
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)


def _tmpfs(root, step):
    sc.mount(step.source, _at(root, step.target), "tmpfs", NOSUID_NODEV, step.options)


def _dir(root, step):
    os.makedirs(_at(root, step.target), 0o755, exist_ok=True)


def _bind(root, step, readonly=False, device=False):
    target = _at(root, step.target)
    if not os.path.isdir(step.source):
        if not os.path.exists(target):
            os.makedirs(os.path.dirname(target), exist_ok=True)
            open(target, "a").close()
    else:
        os.makedirs(target, exist_ok=True)
    sc.mount(step.source, target, None, sc.MS_BIND)
    # A bind keeps its source's flags until remounted: one remount makes it nosuid and nodev,
    # and read-only if asked. A device node's bind keeps dev (its point is to be opened) and
    # is always read-only: the node is the host's inode, and root inside keeps CAP_CHOWN and
    # CAP_FOWNER, so a writable bind would let it chmod the host's /dev/null. Reading and
    # writing the device itself are untouched by a read-only mount.
    extra = (sc.MS_NOSUID | sc.MS_NOEXEC | sc.MS_RDONLY) if device else NOSUID_NODEV
    _remount(target, step.source, extra | (sc.MS_RDONLY if readonly else 0))


def _remount(target, source=None, flags=sc.MS_RDONLY):
    # In a user namespace nosuid/nodev/noexec of the source mount are locked:
    # the remount must repeat them (as bwrap and runc do).
    locked = 0
    f_flag = os.statvfs(source or target).f_flag
    for st, ms in sc.ST_FLAGS_TO_MS.items():
        if f_flag & st:
            locked |= ms
    sc.mount(None, target, None, sc.MS_REMOUNT | sc.MS_BIND | flags | locked)


def _remount_ro(target, source=None):
    _remount(target, source, sc.MS_RDONLY | NOSUID_NODEV)


def _mask(root, step):
    """runc's maskPath: a file under /dev/null, a directory under an empty read-only tmpfs."""
    target = _at(root, step.target)
    try:
        st = os.lstat(target)
    except FileNotFoundError:
        return  # not on this kernel (timer_stats, say): nothing to hide
    if stat.S_ISDIR(st.st_mode):
        sc.mount("tmpfs", target, "tmpfs", sc.MS_RDONLY | NOSUID_NODEV_NOEXEC, "size=0,mode=0555")
        return
    null = os.stat("/dev/null")  # the host's, before pivot_root: a char device 1:3, or no mask
    if not stat.S_ISCHR(null.st_mode) or null.st_rdev != os.makedev(1, 3):
        raise ContainerError("/dev/null is not the null device (char 1:3): refusing to mask with it")
    sc.mount("/dev/null", target, None, sc.MS_BIND)
    _remount(target, "/dev/null", sc.MS_RDONLY | sc.MS_NOSUID | sc.MS_NOEXEC)  # as a device bind


def _readonly_path(root, step):
    target = _at(root, step.target)
    if not os.path.exists(target):
        return
    sc.mount(target, target, None, sc.MS_BIND | sc.MS_REC)
    _remount(target, None, sc.MS_RDONLY | NOSUID_NODEV_NOEXEC)


def _remount_ro_step(root, step):
    target = _at(root, step.target)
    _remount_ro(target)


def _file(root, step, over=False):
    path = _at(root, step.target)
    if over:  # the rootfs is read-only: write the file beside it and bind it on top
        tmp = os.path.join(os.path.dirname(root), os.path.basename(step.target))
        with open(tmp, "w") as f:
            f.write(step.source)
        sc.mount(tmp, path, None, sc.MS_BIND)
        _remount_ro(path)
        return
    with open(path, "w") as f:
        f.write(step.source)


def _copy(root, step):
    with open(step.source, "rb") as src, open(_at(root, step.target), "wb") as dst:
        dst.write(src.read())


def _symlink(root, step):
    os.symlink(step.source, _at(root, step.target))


def _proc(root, step):
    # A fresh procfs: it shows the PID namespace of the process that mounts it (init).
    sc.mount("proc", _at(root, step.target), "proc", NOSUID_NODEV_NOEXEC)


def _sysfs(root, step):
    target = _at(root, step.target)
    try:  # sysfs shows the mounting net namespace's devices; needs to own that netns
        sc.mount("sysfs", target, "sysfs", NOSUID_NODEV_NOEXEC | sc.MS_RDONLY)
    except OSError:  # rootless runc: bind the host's /sys read-only instead
        sc.mount("/sys", target, None, sc.MS_BIND | sc.MS_REC)
        _remount_ro(target, "/sys")


def _devpts(root, step):
    sc.mount("devpts", _at(root, step.target), "devpts", sc.MS_NOSUID | sc.MS_NOEXEC,
             "newinstance,ptmxmode=0666,mode=0620")


def _mqueue(root, step):
    sc.mount("mqueue", _at(root, step.target), "mqueue", NOSUID_NODEV_NOEXEC)


def _cgroup(root, step):
    sc.mount("cgroup", _at(root, step.target), step.source,
             NOSUID_NODEV_NOEXEC | sc.MS_RDONLY, step.options)


def _rbind(root, step):
    # Read-only at once: the steps after it must not write into the user's tree.
    sc.mount(step.source, root, None, sc.MS_BIND | sc.MS_REC)
    _remount_ro(root, step.source)


def _pivot_root(root, step):
    # pivot_root(".", ".") stacks the old root under the new one; detaching it
    # leaves nothing of the host's tree reachable (runc does the same).
    sc.chdir(root)
    sc.pivot_root(".", ".")
    sc.umount2(".", sc.MNT_DETACH)
    sc.chdir("/")


_APPLY = {
    "private": _private, "tmpfs": _tmpfs, "dir": _dir, "symlink": _symlink, "copy": _copy,
    "bind": _bind, "ro-bind": lambda r, s: _bind(r, s, readonly=True),
    "overlay": lambda r, s: sc.mount("overlay", r, "overlay", NOSUID_NODEV, s.options),
    "dev": lambda r, s: _bind(r, s, device=True), "rbind": _rbind, "file": _file,
    "file-over": lambda r, s: _file(r, s, over=True),
    "proc": _proc, "sysfs": _sysfs, "devpts": _devpts, "mqueue": _mqueue, "cgroup": _cgroup,
    "mask": _mask, "ro-path": _readonly_path,
    "remount-ro": _remount_ro_step, "pivot-root": _pivot_root,
}
