"""Thin wrappers over the Linux system calls a container is made of.

Each wrapper is the syscall and nothing more: arguments as in the man page,
OSError(errno) on failure. Python's `os` has some of them in newer versions
(os.unshare arrived in 3.12); where it does, we use it. Every call that changes
the process or the mount table goes through this module, so the mount plan and
init's process setup are unit-tested against a recording fake of it
(tests/fakes/syscalls.py, after youki's TestHelperSyscall).
"""

import ctypes
import os

_libc = ctypes.CDLL(None, use_errno=True)

# clone(2)/unshare(2) flags, from <linux/sched.h>
CLONE_NEWNS = 0x00020000      # mount
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags, from <linux/mount.h>
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_NOATIME = 1024
MS_BIND = 4096
MS_MOVE = 8192
MS_REC = 16384
MS_PRIVATE = 1 << 18
MS_SLAVE = 1 << 19
MS_RELATIME = 1 << 21
MS_STRICTATIME = 1 << 24
MNT_DETACH = 2

# statvfs f_flag bits that are "locked" on a bind mount made in a user namespace:
# a read-only remount must repeat them or the kernel answers EPERM.
ST_FLAGS_TO_MS = {os.ST_RDONLY: MS_RDONLY, os.ST_NOSUID: MS_NOSUID, os.ST_NODEV: MS_NODEV,
                  os.ST_NOEXEC: MS_NOEXEC, os.ST_NOATIME: MS_NOATIME, os.ST_RELATIME: MS_RELATIME}

# prctl(2) options
PR_SET_PDEATHSIG = 1
PR_SET_NAME = 15
PR_SET_CHILD_SUBREAPER = 36
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
PR_GET_NO_NEW_PRIVS = 39
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
_LINUX_CAPABILITY_VERSION_3 = 0x20080522

# glibc has no pivot_root() wrapper: call it by number.
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "riscv64": 41, "ppc64le": 203, "s390x": 217}


def _check(result, what):
    if result == -1:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return result


def unshare(flags):
    if hasattr(os, "unshare"):
        return os.unshare(flags)
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd, nstype):
    """Join the namespace an fd of /proc/<pid>/ns/<kind> names."""
    if hasattr(os, "setns"):
        return os.setns(fd, nstype)
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def _b(s):
    return None if s is None else os.fsencode(s)


def mount(source, target, fstype=None, flags=0, data=None):
    _check(_libc.mount(_b(source), _b(target), _b(fstype), ctypes.c_ulong(flags), _b(data)),
           f"mount {target}")


def umount2(target, flags=0):
    _check(_libc.umount2(_b(target), ctypes.c_int(flags)), f"umount {target}")


def pivot_root(new_root, put_old):
    machine = os.uname().machine
    nr = _SYS_PIVOT_ROOT.get(machine)
    if nr is None:
        raise OSError(38, f"pivot_root: unknown syscall number on {machine}")
    _check(_libc.syscall(ctypes.c_long(nr), _b(new_root), _b(put_old)), "pivot_root")


def prctl(option, arg2=0, arg3=0):
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2), ctypes.c_ulong(arg3),
                              ctypes.c_ulong(0), ctypes.c_ulong(0)), "prctl")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def capset(effective, permitted, inheritable=0):
    """capset(2) of the calling thread, with 64-bit masks (two 32-bit words, version 3)."""
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    _check(_libc.capset(ctypes.byref(header), data), "capset")


def setrlimit(which, soft, hard):
    import resource
    resource.setrlimit(which, (soft, hard))


def set_ids(uid, gid, drop_groups):
    """Become uid/gid: groups first (while still allowed), then gid, then uid."""
    if drop_groups:
        os.setgroups([])
    os.setgid(gid)
    os.setuid(uid)


MAX_FD = 1 << 20


def closerange(low, high=MAX_FD):
    """Close fds low..high-1 (CPython uses close_range(2) where the kernel has it)."""
    os.closerange(low, high)


def chdir(path):
    os.chdir(path)


PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(ctypes.Structure):
    # struct sock_fprog: a BPF program is an array of 8-byte instructions.
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_load(program):
    """prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog): install a compiled filter
    (runtime/seccomp.py builds it with libseccomp) in the calling thread, for good.
    The kernel takes one only with no_new_privs set or CAP_SYS_ADMIN: else EACCES."""
    buf = ctypes.create_string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, ctypes.addressof(buf))
    if _libc.prctl(ctypes.c_int(PR_SET_SECCOMP), ctypes.c_ulong(SECCOMP_MODE_FILTER),
                   ctypes.byref(prog), ctypes.c_ulong(0), ctypes.c_ulong(0)) != 0:
        err = ctypes.get_errno()
        hint = " (set no_new_privs first)" if err == 13 else ""
        raise OSError(err, f"seccomp: loading the filter: {os.strerror(err)}{hint}")


def execvpe(args, env):
    os.execvpe(args[0], list(args), dict(env))


def set_name(name):
    """The process name shown by ps -o comm and /proc/PID/comm (15 bytes at most)."""
    _libc.prctl(PR_SET_NAME, ctypes.c_char_p(name.encode()[:15]), 0, 0, 0)


def sethostname(name):
    data = name.encode()
    _check(_libc.sethostname(data, ctypes.c_size_t(len(data))), "sethostname")


# inotify(7): the provisioner waits for a kernel's files without polling (kernel/dirwatch.py)
IN_NONBLOCK = os.O_NONBLOCK
IN_CLOEXEC = os.O_CLOEXEC
IN_CREATE = 0x100
IN_MOVED_TO = 0x80
IN_Q_OVERFLOW = 0x4000
IN_IGNORED = 0x8000


def inotify_init1(flags):
    return _check(_libc.inotify_init1(ctypes.c_int(flags)), "inotify_init1")


def inotify_add_watch(fd, path, mask):
    return _check(_libc.inotify_add_watch(fd, _b(path), ctypes.c_uint32(mask)), f"inotify_add_watch {path}")


def inotify_rm_watch(fd, wd):
    return _check(_libc.inotify_rm_watch(fd, wd), "inotify_rm_watch")
