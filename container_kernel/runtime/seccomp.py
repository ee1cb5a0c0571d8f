"""seccomp: the payload's last setup step, a BPF filter on every syscall it makes.

The filter is compiled by libseccomp (as runc, crun, podman and systemd do), never
assembled here: libseccomp knows each arch's syscall numbers and the ABI quirks
(x32's syscall bit, i386's socketcall). Compiling Docker's ~370 names takes ~10 ms,
so the exported program is cached; installing it is one prctl.

On x86_64 the filter also covers the i386 (int 0x80) and x32 ABIs, which Docker's
archMap lists as sub-architectures: a filter for x86_64 alone would let a 32-bit
call of a denied syscall through under its i386 number. A call from an ABI the
filter does not cover answers EPERM instead of killing the process.
"""

import collections
import ctypes
import errno
import functools
import os
import stat
import sys

from _sha256 import sha256  # hashlib would import OpenSSL: ~4 ms of a container's start

from . import syscalls as sc
from .errors import ContainerError, usage

DEFAULT_PROFILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "profiles",
                               "docker-default.json")
NOT_INSTALLED = ("libseccomp is not installed: apt-get install libseccomp2 "
                 "(or --security-opt seccomp=unconfined)")

# Action values from <seccomp.h>; ERRNO and TRACE carry a 16-bit return value.
_ACTIONS = {"SCMP_ACT_KILL": 0x00000000, "SCMP_ACT_KILL_PROCESS": 0x80000000,
            "SCMP_ACT_TRAP": 0x00030000, "SCMP_ACT_ERRNO": 0x00050000,
            "SCMP_ACT_TRACE": 0x7FF00000, "SCMP_ACT_LOG": 0x7FFC0000, "SCMP_ACT_ALLOW": 0x7FFF0000}
# enum scmp_filter_attr
_ATTR_ACT_BADARCH = 2
_ATTR_CTL_NNP = 3
_NR_SCMP_ERROR = -1  # a name libseccomp does not know; its pseudo-numbers (< -1) are known names
_PR_GET_SECCOMP = 21
_BPF_MAXINSNS = 4096
_CACHE_FORMAT = 2  # bump when compile_filter changes what it asks of libseccomp


class _ArgCmp(ctypes.Structure):  # struct scmp_arg_cmp
    _fields_ = [("arg", ctypes.c_uint), ("op", ctypes.c_int), ("datum_a", ctypes.c_uint64),
                ("datum_b", ctypes.c_uint64)]


class _Version(ctypes.Structure):  # struct scmp_version
    _fields_ = [("major", ctypes.c_uint), ("minor", ctypes.c_uint), ("micro", ctypes.c_uint)]


_CTX = ctypes.c_void_p
_PROTOTYPES = {
    "seccomp_version": (ctypes.POINTER(_Version), []),
    "seccomp_init": (_CTX, [ctypes.c_uint32]),
    "seccomp_release": (None, [_CTX]),
    "seccomp_attr_set": (ctypes.c_int, [_CTX, ctypes.c_int, ctypes.c_uint32]),
    "seccomp_arch_native": (ctypes.c_uint32, []),
    "seccomp_arch_resolve_name": (ctypes.c_uint32, [ctypes.c_char_p]),
    "seccomp_arch_add": (ctypes.c_int, [_CTX, ctypes.c_uint32]),
    "seccomp_syscall_resolve_name": (ctypes.c_int, [ctypes.c_char_p]),
    "seccomp_syscall_resolve_name_arch": (ctypes.c_int, [ctypes.c_uint32, ctypes.c_char_p]),
    "seccomp_rule_add_array": (ctypes.c_int, [_CTX, ctypes.c_uint32, ctypes.c_int, ctypes.c_uint,
                                              ctypes.POINTER(_ArgCmp)]),
    "seccomp_export_bpf": (ctypes.c_int, [_CTX, ctypes.c_int]),
}

def _parser():
    # The JSON parser (json, re: ~9 ms) is needed only on a cache miss or a user's profile.
    from . import seccomp_profile
    return seccomp_profile


@functools.cache
def _lib():
    """libseccomp, loaded the first time a filter is needed, not at import."""
    try:
        lib = ctypes.CDLL("libseccomp.so.2")
    except OSError:
        raise ContainerError(NOT_INSTALLED) from None
    for name, (restype, argtypes) in _PROTOTYPES.items():
        fn = getattr(lib, name)
        fn.restype, fn.argtypes = restype, argtypes
    return lib


def version():
    v = _lib().seccomp_version().contents
    return f"{v.major}.{v.minor}.{v.micro}"


def available():
    """None if a filter can be built and loaded here, else why not (for doctor)."""
    try:
        _lib()
    except ContainerError as e:
        return str(e)
    if ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_SECCOMP, 0, 0, 0, 0) < 0:
        return "the kernel has no seccomp (CONFIG_SECCOMP)"
    return None


def load_profile(path=None, option="--security-opt"):
    """The profile in a Docker seccomp JSON file; None is Docker's default, shipped here."""
    return parse_profile(read_profile(path, option), path, option)


def read_profile(path=None, option="--security-opt"):
    try:
        with open(path or DEFAULT_PROFILE, "rb") as f:
            return f.read()
    except OSError as e:
        raise usage(f"{option} seccomp={path or 'default'}: cannot read it: {e.strerror}") from None


def parse_profile(data, path=None, option="--security-opt"):
    """A profile's bytes -> Profile.

    A user's file is checked here, once: one-line usage error for what does not parse or
    names a syscall libseccomp knows on no arch of the profile. The shipped file is
    checked by the tests instead, so that the start path need not load libseccomp."""
    where = f"{option} seccomp={path or 'default'}"
    if path is None:
        return _parser().parse(data, where, "docker-default", DEFAULT_PROFILE)
    name = os.path.basename(path).rsplit(".json", 1)[0]
    profile = _parser().parse(data, where, name, os.path.abspath(path))
    _check_names(profile, where)
    return profile


def _check_names(profile, where):
    lib = _lib()
    arches = {a for a, subs in profile.arch_map for a in (a, *subs)} | set(profile.architectures)
    tokens = [t for t in (lib.seccomp_arch_resolve_name(_arch_word(a)) for a in sorted(arches)) if t]
    docker = None
    for i, rule in enumerate(profile.rules):
        for name in rule.names:
            b = name.encode()
            if lib.seccomp_syscall_resolve_name(b) != _NR_SCMP_ERROR or any(
                    lib.seccomp_syscall_resolve_name_arch(t, b) != _NR_SCMP_ERROR for t in tokens):
                continue
            # Docker names syscalls newer than this libseccomp (mseal, listmount...): a copy of
            # its profile must load, and those calls fall to the default action, as in runc.
            docker = docker or {n for r in load_profile().rules for n in r.names}
            if name not in docker:
                raise usage(f"{where}: syscalls[{i}]: unknown syscall {name!r} (libseccomp "
                            f"{version()} knows no such name on any arch of the profile)")


def _arch_word(scmp_arch):
    """SCMP_ARCH_X86_64 -> b"x86_64", the word seccomp_arch_resolve_name takes."""
    return scmp_arch[len("SCMP_ARCH_"):].lower().encode()


def _action(action, ret):
    return _ACTIONS[action] | (ret or 0) & 0xFFFF


def _ok(rc, what):
    if rc < 0:
        raise ContainerError(f"seccomp: {what}: {os.strerror(-rc)}")
    return rc


def compile_filter(profile, caps, deny_namespaces=True):
    """The BPF program (sock_filter array, 8 bytes per instruction) libseccomp compiles for a
    container keeping `caps` on this host's arch and kernel."""
    lib = _lib()
    uname = os.uname()
    res = _parser().resolve(profile, caps, uname.machine, uname.release, deny_namespaces)
    ctx = lib.seccomp_init(_action(*res.default))
    if not ctx:
        raise ContainerError("seccomp: seccomp_init failed (out of memory?)")
    try:
        # The runtime sets no_new_privs itself, as its own step; the filter must not.
        _ok(lib.seccomp_attr_set(ctx, _ATTR_CTL_NNP, 0), "turning off no_new_privs")
        _ok(lib.seccomp_attr_set(ctx, _ATTR_ACT_BADARCH, _action("SCMP_ACT_ERRNO", errno.EPERM)),
            "setting the bad-arch action")
        # No SCMP_FLTATR_CTL_OPTIMIZE=2 (binary tree): since Linux 5.11 the kernel skips the
        # filter for syscalls it always allows, so the tree only made the program 25% longer
        # and the compile 50% slower, for no gain measured on getpid.
        native = lib.seccomp_arch_native()  # seccomp_init put it in already
        for arch in res.architectures:
            token = lib.seccomp_arch_resolve_name(_arch_word(arch))
            if not token:
                raise ContainerError(f"seccomp: libseccomp {version()} does not know {arch}")
            if token != native:
                _ok(lib.seccomp_arch_add(ctx, token), f"adding {arch}")
        for rule in res.rules:
            _add(lib, ctx, rule)
        return _export(lib, ctx)
    finally:
        lib.seccomp_release(ctx)


def _add(lib, ctx, rule):
    args = (_ArgCmp * max(len(rule.args), 1))(
        *[(a.index, _parser().OPS.index(a.op) + 1, a.value, a.value_two) for a in rule.args])
    action = _action(rule.action, rule.errno)
    for name in rule.names:
        nr = lib.seccomp_syscall_resolve_name(name.encode())
        if nr == _NR_SCMP_ERROR:
            continue  # newer than this libseccomp: the default action answers it, as in runc
        # Not the _exact variant: libseccomp adds the rule to each arch of the filter under
        # that arch's number, and skips an arch that lacks the syscall.
        _ok(lib.seccomp_rule_add_array(ctx, action, nr, len(rule.args), args),
            f"adding the {rule.action} rule for {name}")


def _export(lib, ctx):
    fd = os.memfd_create("seccomp-bpf", os.MFD_CLOEXEC)
    try:
        _ok(lib.seccomp_export_bpf(ctx, fd), "exporting the program")
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    finally:
        os.close(fd)
    program = b"".join(chunks)
    if not _sane(program):
        raise ContainerError(f"seccomp: libseccomp exported an unusable program "
                             f"({len(program)} bytes, at most {_BPF_MAXINSNS} instructions)")
    return program


def _sane(program):
    """What a program libseccomp exported looks like: whole instructions, at most BPF_MAXINSNS,
    first loading seccomp_data.arch (BPF_LD|BPF_W|BPF_ABS, k=4), last a BPF_RET."""
    n = len(program)
    return (0 < n <= 8 * _BPF_MAXINSNS and n % 8 == 0 and program[:2] == b"\x20\x00"
            and program[4:8] == b"\x04\x00\x00\x00" and program[n - 8] & 0x07 == 0x06)


def install(program):
    """Load a program from compile_filter into the calling thread, for good: what it forks
    and execs inherits the filter.

    The kernel takes a filter only from a thread that has no_new_privs set (prctl
    PR_SET_NO_NEW_PRIVS) or CAP_SYS_ADMIN in its user namespace, else EACCES. This sets
    nothing else: no_new_privs is the runtime's own step. Other threads keep no filter,
    so call it in the single-threaded payload, last before exec. Raises OSError."""
    if not _sane(program):
        raise ContainerError(f"seccomp: not a program from compile_filter ({len(program)} bytes)")
    sc.seccomp_load(program)


load_bpf = install  # it loads what libseccomp exported: no libseccomp needed at that point


def cache_dir(rootless):
    """Where compiled programs are kept: /var/cache/container-kernel/seccomp for root, the
    user's cache dir (XDG_CACHE_HOME) when rootless. Entries are 0600 and checked on read."""
    if not rootless:
        return "/var/cache/container-kernel/seccomp"
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        import pwd
        try:
            base = os.path.join(os.environ.get("HOME") or pwd.getpwuid(os.geteuid()).pw_dir, ".cache")
        except KeyError:
            return None  # a user with no home: compile at each start (~10 ms)
    return os.path.join(base, "container-kernel", "seccomp")


def cached_filter(path, caps, deny_namespaces, cache_dir):
    """The program for the profile file at path (None: the shipped docker-default), from
    cache_dir when an entry for these inputs is there: a hit parses no JSON.

    An entry starts with its whole key, compared on read (so no two inputs share one):
    the profile's bytes (hashed), the kept caps, our policy, the kernel release (minKernel
    rules), the machine, the libseccomp file, and this module's and the parser's own
    files, so that a change of the resolution code is a new key."""
    data = read_profile(path)
    key = _cache_key(data, caps, deny_namespaces)
    entry = cache_dir and os.path.join(cache_dir, sha256(key).hexdigest()[:32] + ".bpf")
    program = entry and _read_cached(entry, key)
    if program is None:
        program = compile_filter(parse_profile(data, path), caps, deny_namespaces)
        if entry:
            try:
                _write_atomic(entry, key + program)
            except OSError:  # a cache we cannot write (a read-only home) costs time, not the start
                pass
    return program


def _cache_key(data, caps, deny_namespaces):
    uname = os.uname()
    here = os.path.dirname(os.path.abspath(__file__))
    code = [_identity(os.path.join(here, name)) for name in ("seccomp.py", "seccomp_profile.py")]
    key = repr((_CACHE_FORMAT, sha256(data).hexdigest(), sorted(set(caps)), bool(deny_namespaces),
                uname.release, uname.machine, _library_file(), code))
    return key.encode() + b"\n"


def _identity(path):
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (path, st.st_ino, st.st_size, st.st_mtime_ns)


def _library_file():
    """libseccomp's file, found without loading it: a distro fix keeps the version, not the
    file. None when it is not in the usual places (a miss then loads it, or says it is missing)."""
    multiarch = getattr(sys.implementation, "_multiarch", "")
    for d in (f"/usr/lib/{multiarch}", f"/lib/{multiarch}", "/usr/lib64", "/lib64", "/usr/lib"):
        found = _identity(os.path.realpath(os.path.join(d, "libseccomp.so.2")))
        if found:
            return found
    return None


def _read_cached(path, key):
    """The cached program, or None to rebuild: missing, unreadable, not ours, another key's
    or not sane."""
    try:  # O_NONBLOCK: a FIFO put there must not hang the launcher
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    with open(fd, "rb") as f:
        st = os.fstat(fd)
        # Whoever can write a cache entry chooses the container's filter.
        if not stat.S_ISREG(st.st_mode) or st.st_uid != os.geteuid() or st.st_mode & 0o077:
            return None
        data = f.read(len(key) + 8 * _BPF_MAXINSNS + 1)
    if not data.startswith(key):
        return None
    program = data[len(key):]
    return program if _sane(program) else None


def _write_atomic(path, program):
    """tmp + fsync + rename: a reader sees a whole entry or none."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    for attempt in (1, 2):
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC,
                         0o600)
            break
        except FileExistsError:  # left by a dead process with our pid
            if attempt == 2:
                raise
            os.unlink(tmp)
    try:
        with open(fd, "wb") as f:
            f.write(program)
            f.flush()
            os.fsync(fd)
        os.rename(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def describe(profile, caps, deny_namespaces):
    """What the filter is, for %container_info and doctor; str() gives the one-line summary.

    rules counts syscall rules (one per name) after resolution; unknown lists the names
    libseccomp here cannot compile, which the default action answers (None if libseccomp
    cannot be loaded)."""
    uname = os.uname()
    res = _parser().resolve(profile, caps, uname.machine, uname.release, deny_namespaces)
    names = sorted({n for r in res.rules for n in r.names})
    try:
        lib = _lib()
        unknown = tuple(n for n in names
                        if lib.seccomp_syscall_resolve_name(n.encode()) == _NR_SCMP_ERROR)
    except ContainerError:
        unknown = None
    action, ret = res.default
    default = f"{action}({errno.errorcode.get(ret, ret)})" if ret is not None else action
    arches = tuple(a[len("SCMP_ARCH_"):].lower() for a in res.architectures)
    return Description(profile.name, profile.source, default, sum(len(r.names) for r in res.rules),
                        arches, bool(deny_namespaces), unknown)


class Description(collections.namedtuple(
        "Description", "name source default_action rules architectures deny_namespaces unknown")):
    __slots__ = ()

    def __str__(self):
        policy = " + no namespaces, no socketcall" if self.deny_namespaces else ""
        return (f"seccomp: filter, {self.name}{policy}, {self.rules} rules, "
                f"default {self.default_action}, {' '.join(self.architectures)}")
