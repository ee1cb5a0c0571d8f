"""Docker's seccomp profile format: read it, then resolve it for one container.

A profile (moby/profiles `seccomp/default.json` is the reference) is a default
action and a list of rules. A rule may be conditional (includes/excludes on the
container's capabilities, the arch and the kernel). `resolve` keeps the rules that
apply, as moby's `seccomp/seccomp_linux.go` setupSeccomp does, then adds our policy
on top: no namespace may be made or entered.

Pure Python, no libseccomp: doctor and --print-plan can show a profile on a host
that lacks it. seccomp.load_profile checks the syscall names with libseccomp.
"""

import collections
import errno
import json
import re

from . import capabilities, syscalls
from .errors import ContainerError, usage

try:  # hashlib would load OpenSSL first (~2 ms on the container start path)
    from _sha256 import sha256
except ImportError:  # CPython 3.12 renamed it
    try:
        from _sha2 import sha256
    except ImportError:
        from hashlib import sha256

Profile = collections.namedtuple(
    "Profile", "name source digest default_action default_errno arch_map architectures rules")
Rule = collections.namedtuple("Rule", "names action errno args includes excludes")
Arg = collections.namedtuple("Arg", "index value value_two op")
Filter = collections.namedtuple("Filter", "caps arches min_kernel")
# What one container gets: default = (action, errno), architectures = SCMP_ARCH_* names.
Resolved = collections.namedtuple("Resolved", "default architectures rules")

ACTIONS = ("SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD",
           "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_TRAP", "SCMP_ACT_LOG", "SCMP_ACT_TRACE")
# Position + 1 is libseccomp's enum scmp_compare.
OPS = ("SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
       "SCMP_CMP_MASKED_EQ")
# runtime-spec's list; libseccomp may know fewer (2.5.4 has no LoongArch).
ARCHES = ("SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32", "SCMP_ARCH_ARM", "SCMP_ARCH_AARCH64",
          "SCMP_ARCH_MIPS", "SCMP_ARCH_MIPS64", "SCMP_ARCH_MIPS64N32", "SCMP_ARCH_MIPSEL",
          "SCMP_ARCH_MIPSEL64", "SCMP_ARCH_MIPSEL64N32", "SCMP_ARCH_PPC", "SCMP_ARCH_PPC64",
          "SCMP_ARCH_PPC64LE", "SCMP_ARCH_S390", "SCMP_ARCH_S390X", "SCMP_ARCH_PARISC",
          "SCMP_ARCH_PARISC64", "SCMP_ARCH_RISCV64", "SCMP_ARCH_LOONGARCH64", "SCMP_ARCH_M68K",
          "SCMP_ARCH_SH", "SCMP_ARCH_SHEB")
# os.uname().machine -> (the arch as includes/excludes name it, Go's GOARCH words; the filter's).
MACHINES = {"x86_64": ("amd64", "SCMP_ARCH_X86_64"), "i686": ("x86", "SCMP_ARCH_X86"),
            "i386": ("x86", "SCMP_ARCH_X86"), "aarch64": ("arm64", "SCMP_ARCH_AARCH64"),
            "armv7l": ("arm", "SCMP_ARCH_ARM"), "ppc64le": ("ppc64le", "SCMP_ARCH_PPC64LE"),
            "ppc64": ("ppc64", "SCMP_ARCH_PPC64"), "s390x": ("s390x", "SCMP_ARCH_S390X"),
            "riscv64": ("riscv64", "SCMP_ARCH_RISCV64"), "mips64": ("mips64", "SCMP_ARCH_MIPS64"),
            "loongarch64": ("loong64", "SCMP_ARCH_LOONGARCH64")}
# "x32" is not a GOARCH but Docker's own profile names it; "mipsel"... are moby's goToNative words.
FILTER_ARCHES = {a for a, _ in MACHINES.values()} | {
    "x32", "arm", "ppc", "s390", "mips", "mipsle", "mipsel", "mips64n32", "mipsel64", "mips3l64n32",
    "loongarch64"}

# CLONE_NEWNS|NEWCGROUP|NEWUTS|NEWIPC|NEWUSER|NEWPID|NEWNET = 0x7E020000, the mask of Docker's
# own clone rule. CLONE_NEWTIME (0x80) needs no bit: in clone(2) that byte is the exit signal.
CLONE_NEW = (syscalls.CLONE_NEWNS | syscalls.CLONE_NEWCGROUP | syscalls.CLONE_NEWUTS
             | syscalls.CLONE_NEWIPC | syscalls.CLONE_NEWUSER | syscalls.CLONE_NEWPID
             | syscalls.CLONE_NEWNET)
NAMESPACE_SYSCALLS = ("clone", "clone3", "setns", "unshare")
_ERRNO_ACTIONS = ("SCMP_ACT_ERRNO", "SCMP_ACT_TRACE")
_KINDS = {dict: "an object", list: "a list", str: "a string", int: "an integer"}


def parse(data, where, name, source):
    """Profile JSON bytes -> Profile. `where` starts every error ("--security-opt seccomp=F")."""
    try:
        doc = json.loads(data)
    except UnicodeDecodeError as e:
        raise usage(f"{where}: not UTF-8 JSON (byte {e.start})") from None
    except ValueError as e:
        raise usage(f"{where}: not JSON: {e.msg} at line {e.lineno} column {e.colno}") from None
    if not isinstance(doc, dict):
        raise usage(f"{where}: the profile must be a JSON object")
    for key in ("flags", "listenerPath", "listenerMetadata"):
        if doc.get(key):
            raise usage(f"{where}: {key} is not supported (seccomp notify and filter flags)")
    action = _action(doc.get("defaultAction"), "defaultAction", where)
    default_errno = _errno(action, doc.get("defaultErrnoRet"), "defaultErrnoRet", where)
    arch_map = tuple(_arch_entry(e, f"archMap[{i}]", where)
                     for i, e in enumerate(_typed(doc.get("archMap"), list, "archMap", where) or ()))
    architectures = _arches(doc.get("architectures"), "architectures", where)
    if arch_map and architectures:
        raise usage(f"{where}: both architectures and archMap are given: use one")
    rules = tuple(_rule(r, f"syscalls[{i}]", where)
                  for i, r in enumerate(_typed(doc.get("syscalls"), list, "syscalls", where) or ()))
    return Profile(name, source, sha256(data).hexdigest(), action, default_errno, arch_map,
                   architectures, rules)


def _typed(value, kind, what, where):
    if value is not None and (not isinstance(value, kind) or kind is int and isinstance(value, bool)):
        raise usage(f"{where}: {what} must be {_KINDS[kind]}, not {json.dumps(value)[:40]}")
    return value


def _strings(value, what, where):
    items = _typed(value, list, what, where) or ()
    for i, item in enumerate(items):
        _typed(item, str, f"{what}[{i}]", where)
    return tuple(items)


def _action(value, what, where):
    if value is None:
        raise usage(f"{where}: {what} is missing")
    if value == "SCMP_ACT_NOTIFY":
        raise usage(f"{where}: {what}: SCMP_ACT_NOTIFY is not supported (it needs a seccomp agent)")
    if value not in ACTIONS:
        raise usage(f"{where}: {what}: unknown action {value!r}: use one of {', '.join(ACTIONS)}")
    # libseccomp has one value for both: the thread is killed.
    return "SCMP_ACT_KILL" if value == "SCMP_ACT_KILL_THREAD" else value


def _errno(action, value, what, where):
    """As runc: ERRNO and TRACE without errnoRet answer EPERM."""
    _typed(value, int, what, where)
    if action not in _ERRNO_ACTIONS:
        if value is not None:
            raise usage(f"{where}: {what} is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE, not {action}")
        return None
    if value is None:
        return errno.EPERM
    if not 0 <= value <= 4095:  # MAX_ERRNO: the kernel returns anything above as a value
        raise usage(f"{where}: {what}: errno {value} is out of range 0..4095")
    return value


def _arches(value, what, where):
    arches = _strings(value, what, where)
    for a in arches:
        if a not in ARCHES:
            raise usage(f"{where}: {what}: unknown architecture {a!r}: use a name such as "
                        "SCMP_ARCH_X86_64 or SCMP_ARCH_AARCH64")
    return arches


def _arch_entry(entry, what, where):
    _typed(entry, dict, what, where)
    arch = _arches([entry.get("architecture")], f"{what}.architecture", where)[0]
    return arch, _arches(entry.get("subArchitectures"), f"{what}.subArchitectures", where)


def _rule(rule, what, where):
    _typed(rule, dict, what, where)
    names = _strings(rule.get("names"), f"{what}.names", where)
    if rule.get("name") is not None:
        if names:
            raise usage(f"{where}: {what}: both name and names are given: use names")
        names = (_typed(rule["name"], str, f"{what}.name", where),)
    if not names:
        raise usage(f"{where}: {what} has no names")
    what = f"{what} ({names[0]})"
    action = _action(rule.get("action"), f"{what}.action", where)
    args = tuple(_arg(a, f"{what}.args[{i}]", where)
                 for i, a in enumerate(_typed(rule.get("args"), list, f"{what}.args", where) or ()))
    return Rule(names, action, _errno(action, rule.get("errnoRet"), f"{what}.errnoRet", where), args,
                _filter(rule.get("includes"), f"{what}.includes", where),
                _filter(rule.get("excludes"), f"{what}.excludes", where))


def _arg(arg, what, where):
    _typed(arg, dict, what, where)
    index = _typed(arg.get("index"), int, f"{what}.index", where)
    if index is None or not 0 <= index <= 5:
        raise usage(f"{where}: {what}.index must be 0..5 (a syscall has six arguments), not {index}")
    values = [_typed(arg.get(k), int, f"{what}.{k}", where) or 0 for k in ("value", "valueTwo")]
    for v in values:
        if not 0 <= v < 1 << 64:
            raise usage(f"{where}: {what}: value {v} is not a 64-bit unsigned integer")
    op = arg.get("op")
    if op not in OPS:
        raise usage(f"{where}: {what}: unknown op {op!r}: use one of {', '.join(OPS)}")
    return Arg(index, values[0], values[1], op)


def _filter(value, what, where):
    if not _typed(value, dict, what, where):
        return None
    caps = []
    for raw in _strings(value.get("caps"), f"{what}.caps", where):
        cap = raw.lower().removeprefix("cap_")
        if cap not in capabilities.NAMES:
            raise usage(f"{where}: {what}: unknown capability {raw!r}: "
                        "use a name such as CAP_SYS_ADMIN")
        caps.append(cap)
    arches = _strings(value.get("arches"), f"{what}.arches", where)
    for a in arches:
        if a not in FILTER_ARCHES:
            raise usage(f"{where}: {what}: unknown arch {a!r}: use Docker's words such as amd64, "
                        "x86, x32, arm64, s390x")
    return Filter(tuple(caps), arches, _min_kernel(value.get("minKernel"), f"{what}.minKernel", where))


def _min_kernel(value, what, where):
    """"5.8" -> (5, 8); as moby's KernelVersion, "" is no minimum and 0.0 is refused."""
    if not _typed(value, str, what, where):
        return None
    m = re.fullmatch(r"(\d{1,3})\.(\d{1,3})", value)
    version = m and (int(m[1]), int(m[2]))
    if not version or max(version) > 255 or version == (0, 0):
        raise usage(f"{where}: {what}: invalid kernel version {value!r}, expected \"<kernel>.<major>\"")
    return version


def kernel_version(release):
    """os.uname().release -> (kernel, major): "6.1.0-18-amd64" -> (6, 1), as moby's parseRelease."""
    m = re.match(r"(\d+)\.(\d+)", release)
    if not m:
        raise ContainerError(f"seccomp: cannot read the kernel version from {release!r}")
    return int(m[1]), int(m[2])


def resolve(profile, caps, machine, release, deny_namespaces):
    """The rules that apply to a container keeping `caps` (capabilities.NAMES words) on this
    machine (os.uname().machine) and kernel (os.uname().release)."""
    if machine not in MACHINES:
        raise ContainerError(f"seccomp: no filter for machine {machine!r}")
    arch, scmp_arch = MACHINES[machine]
    kernel = kernel_version(release)
    default = (profile.default_action, profile.default_errno)
    rules = [r._replace(includes=None, excludes=None) for r in profile.rules
             if _applies(r, caps, arch, kernel)]
    if deny_namespaces:
        rules = _no_namespaces(rules, default, arch)
    # libseccomp refuses a rule whose action is the default one (runc skips them too).
    rules = tuple(r for r in rules if (r.action, r.errno) != default)
    if profile.architectures:
        listed = profile.architectures
    else:  # Docker adds only the native arch's archMap entry.
        listed = next((sub for a, sub in profile.arch_map if a == scmp_arch), ())
    # libseccomp filters the native arch whatever the profile lists.
    return Resolved(default, (scmp_arch,) + tuple(a for a in listed if a != scmp_arch), rules)


def _applies(rule, caps, arch, kernel):
    """moby's setupSeccomp: excludes drop a rule if any condition holds, includes keep it
    only if all do; caps are compared with the kept (bounding) set."""
    ex, inc = rule.excludes, rule.includes
    excluded = ex and (arch in ex.arches or any(c in caps for c in ex.caps)
                       or ex.min_kernel and kernel >= ex.min_kernel)
    included = not inc or not (inc.arches and arch not in inc.arches
                               or any(c not in caps for c in inc.caps)
                               or inc.min_kernel and kernel < inc.min_kernel)
    return bool(included and not excluded)


def _no_namespaces(rules, default, arch):
    """Beyond Docker: whatever the capabilities, unshare and setns answer EPERM, and so does
    clone with a CLONE_NEW* flag; clone3 answers ENOSYS, so that glibc falls back to clone,
    whose flags a filter can see (clone3's are behind a pointer); so does socketcall."""
    out = []
    for r in rules:
        names = tuple(n for n in r.names if n not in NAMESPACE_SYSCALLS)
        if names:
            out.append(r._replace(names=names))
    index = 1 if arch in ("s390", "s390x") else 0  # s390's clone takes the stack first
    out.append(Rule(("clone",), "SCMP_ACT_ALLOW", None, (Arg(index, CLONE_NEW, 0, "SCMP_CMP_MASKED_EQ"),),
                    None, None))
    out.append(Rule(("clone3",), "SCMP_ACT_ERRNO", errno.ENOSYS, (), None, None))
    # i386's socketcall multiplexes socket(), connect()... with their arguments behind a
    # pointer: Docker's argument filters on socket() (no AF_ALG, AF_VSOCK) do not see
    # through it (moby reverted blocking it, leaving it to AppArmor, which we do not have).
    # ENOSYS: glibc has called the direct syscalls since Linux 4.3.
    out = [r._replace(names=tuple(n for n in r.names if n != "socketcall")) for r in out]
    out = [r for r in out if r.names]
    out.append(Rule(("socketcall",), "SCMP_ACT_ERRNO", errno.ENOSYS, (), None, None))
    if default != ("SCMP_ACT_ERRNO", errno.EPERM):  # then the default does not deny them for us
        out.append(Rule(("setns", "unshare"), "SCMP_ACT_ERRNO", errno.EPERM, (), None, None))
        bits = [1 << i for i in range(32) if CLONE_NEW >> i & 1]
        out += [Rule(("clone",), "SCMP_ACT_ERRNO", errno.EPERM,
                     (Arg(index, bit, bit, "SCMP_CMP_MASKED_EQ"),), None, None) for bit in bits]
    return out
