"""seccomp: Docker's profile read and resolved, the cache, then real filters in forked children.

The children set no_new_privs, install the filter and report what each probe syscall
answered; a control child without a filter shows the answers come from the filter.
"""
import copy
import ctypes
import errno
import json
import mmap
import os
import signal
import threading

import pytest

from container_kernel.runtime import capabilities, seccomp, seccomp_profile, syscalls
from container_kernel.runtime.errors import ContainerError

UNAVAILABLE = seccomp.available()
requires_libseccomp = pytest.mark.skipif(UNAVAILABLE is not None, reason=f"seccomp: {UNAVAILABLE}")
requires_root = pytest.mark.skipif(
    os.geteuid() != 0, reason="needs root (else the kernel itself refuses mount and setns with EPERM)")
CAPS = capabilities.DEFAULT  # Docker's default set less mknod
with open(seccomp.DEFAULT_PROFILE) as _f:
    DOCKER = json.load(_f)


def resolve(caps=CAPS, deny=True, machine="x86_64", release="6.1.0-18-amd64", profile=None):
    return seccomp_profile.resolve(profile or seccomp.load_profile(), caps, machine, release, deny)


def rules_for(resolved, name):
    """{(action, errno, args)} of the rules naming `name`."""
    return {(r.action, r.errno, r.args) for r in resolved.rules if name in r.names}


def unconditional_allow(resolved, name):
    return ("SCMP_ACT_ALLOW", None, ()) in rules_for(resolved, name)


# ---- parsing --------------------------------------------------------------------------------

def test_the_shipped_profile_parses():
    p = seccomp.load_profile()
    assert (p.name, p.default_action, p.default_errno) == ("docker-default", "SCMP_ACT_ERRNO", 1)
    assert p.arch_map[0] == ("SCMP_ARCH_X86_64", ("SCMP_ARCH_X86", "SCMP_ARCH_X32"))
    assert len(p.rules) == len(DOCKER["syscalls"])
    clone3 = [r for r in p.rules if r.names == ("clone3",)]
    assert clone3[0].errno == errno.ENOSYS and clone3[0].excludes.caps == ("sys_admin",)
    with pytest.raises(AttributeError):
        p.name = "other"  # a record, not a bag


@requires_libseccomp
def test_the_shipped_profile_passes_the_user_profile_checks():
    # The shipped file skips the name check on the start path; this is where it is made.
    p = seccomp.load_profile(seccomp.DEFAULT_PROFILE)
    assert p.name == "docker-default" and p.digest == seccomp.load_profile().digest


def bad(tmp_path, doc):
    path = tmp_path / "p.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    with pytest.raises(ContainerError) as e:
        seccomp.load_profile(str(path))
    message = str(e.value)
    assert e.value.exit_code == 2 and "\n" not in message, message
    assert message.startswith(f"--security-opt seccomp={path}: "), message
    return message


def edited(**changes):
    doc = copy.deepcopy(DOCKER)
    for rule, fields in changes.items():
        doc["syscalls"][int(rule[1:])].update(fields)
    return doc


def test_not_json_names_the_file_and_the_position(tmp_path):
    assert "line 2 column 1" in bad(tmp_path, '{"defaultAction": "SCMP_ACT_ERRNO",\n')
    assert "line 1 column 2" in bad(tmp_path, "{defaultAction}")
    assert "must be a JSON object" in bad(tmp_path, "[]")


def test_missing_file(tmp_path):
    with pytest.raises(ContainerError) as e:
        seccomp.load_profile(str(tmp_path / "nope.json"), option="--seccomp")
    assert e.value.exit_code == 2
    assert str(e.value) == (f"--seccomp seccomp={tmp_path}/nope.json: cannot read it: "
                            "No such file or directory")


@pytest.mark.parametrize("doc,words", [
    ({"defaultAction": "SCMP_ACT_DENY"}, "defaultAction: unknown action 'SCMP_ACT_DENY'"),
    ({}, "defaultAction is missing"),
    (edited(r2={"action": "SCMP_ACT_NOPE"}), "syscalls[2] (socket).action: unknown action 'SCMP_ACT_NOPE'"),
    (edited(r2={"action": "SCMP_ACT_NOTIFY"}), "SCMP_ACT_NOTIFY is not supported"),
    (edited(r2={"args": [{"index": 0, "value": 38, "op": "SCMP_CMP_SORTA"}]}), "unknown op 'SCMP_CMP_SORTA'"),
    (edited(r2={"args": [{"index": 6, "value": 38, "op": "SCMP_CMP_LT"}]}), "index must be 0..5"),
    (edited(r2={"args": [{"index": 0, "value": -1, "op": "SCMP_CMP_LT"}]}), "value -1 is not"),
    (edited(r2={"args": [{"index": "0", "op": "SCMP_CMP_LT"}]}), 'index must be an integer, not "0"'),
    (edited(r1={"includes": {"minKernel": "4"}}), "invalid kernel version '4'"),
    (edited(r1={"includes": {"minKernel": "0.0"}}), "invalid kernel version '0.0'"),
    (edited(r17={"includes": {"caps": ["CAP_SYS_WIZARD"]}}), "unknown capability 'CAP_SYS_WIZARD'"),
    (edited(r11={"includes": {"arches": ["pdp11"]}}), "unknown arch 'pdp11'"),
    (edited(r2={"name": "socket"}), "both name and names"),
    (edited(r2={"errnoRet": 5}), "errnoRet is only for SCMP_ACT_ERRNO and SCMP_ACT_TRACE"),
    (edited(r20={"errnoRet": 5000}), "errno 5000 is out of range"),
    (dict(DOCKER, architectures=["SCMP_ARCH_X86_64"]), "both architectures and archMap"),
    (dict(DOCKER, archMap=[{"architecture": "SCMP_ARCH_VAX"}]), "unknown architecture 'SCMP_ARCH_VAX'"),
    (dict(DOCKER, flags=["SECCOMP_FILTER_FLAG_LOG"]), "flags is not supported"),
    (dict(DOCKER, syscalls={"names": ["read"]}), "syscalls must be a list"),
])
def test_bad_profiles_give_one_line_naming_the_bad_value(tmp_path, doc, words):
    assert words in bad(tmp_path, doc)


@requires_libseccomp
def test_an_unknown_syscall_name_is_refused(tmp_path):
    message = bad(tmp_path, edited(r0={"names": DOCKER["syscalls"][0]["names"] + ["frobnicate"]}))
    assert "syscalls[0]: unknown syscall 'frobnicate'" in message


@requires_libseccomp
def test_names_known_only_on_other_arches_or_newer_than_libseccomp_are_accepted(tmp_path):
    # socketcall is i386's, s390_pci_mmio_read s390's; mseal is newer than libseccomp 2.5.
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["socketcall", "s390_pci_mmio_read", "mseal", "read"], "action": "SCMP_ACT_ALLOW"}]}))
    p = seccomp.load_profile(str(path))
    assert p.name == "p" and p.default_errno == errno.EPERM  # runc's default errno


def test_a_missing_libseccomp_says_how_to_install_it(monkeypatch):
    real = ctypes.CDLL

    def cdll(name, *args, **kw):
        if name == "libseccomp.so.2":
            raise OSError("libseccomp.so.2: cannot open shared object file")
        return real(name, *args, **kw)

    monkeypatch.setattr(ctypes, "CDLL", cdll)
    seccomp._lib.cache_clear()
    try:
        message = ("libseccomp is not installed: apt-get install libseccomp2 "
                   "(or --security-opt seccomp=unconfined)")
        assert seccomp.available() == message
        with pytest.raises(ContainerError) as e:
            seccomp.compile_filter(seccomp.load_profile(), CAPS)
        assert str(e.value) == message
        # Reading and describing the shipped profile need no libseccomp.
        assert seccomp.describe(seccomp.load_profile(), CAPS, True).unknown is None
    finally:
        seccomp._lib.cache_clear()


# ---- resolution -----------------------------------------------------------------------------

def test_default_caps_allow_no_mount_and_no_namespaces_even_without_our_policy():
    r = resolve(deny=False)
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "keyctl", "open_by_handle_at"):
        assert not rules_for(r, name), name
    assert rules_for(r, "clone") == {("SCMP_ACT_ALLOW", None, (
        seccomp_profile.Arg(0, 0x7E020000, 0, "SCMP_CMP_MASKED_EQ"),))}
    assert rules_for(r, "clone3") == {("SCMP_ACT_ERRNO", errno.ENOSYS, ())}
    assert r.architectures == ("SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32")
    assert r.default == ("SCMP_ACT_ERRNO", errno.EPERM)


def test_sys_admin_lets_docker_allow_namespaces_but_not_our_policy():
    caps = CAPS + ("sys_admin",)
    docker = resolve(caps, deny=False)
    for name in ("mount", "unshare", "setns", "clone", "clone3"):
        assert unconditional_allow(docker, name), name
    ours = resolve(caps, deny=True)
    assert unconditional_allow(ours, "mount") and unconditional_allow(ours, "sethostname")
    assert not rules_for(ours, "unshare") and not rules_for(ours, "setns")  # the default: EPERM
    assert rules_for(ours, "clone") == rules_for(resolve(deny=False), "clone")
    assert rules_for(ours, "clone3") == {("SCMP_ACT_ERRNO", errno.ENOSYS, ())}


def test_our_policy_names_its_denials_when_the_default_does_not_deny():
    doc = {"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [
        {"names": ["unshare"], "action": "SCMP_ACT_ALLOW"}, {"names": ["reboot"], "action": "SCMP_ACT_KILL"}]}
    p = seccomp_profile.parse(json.dumps(doc).encode(), "test", "test", "test")
    r = resolve(profile=p)
    eperm = ("SCMP_ACT_ERRNO", errno.EPERM, ())
    assert rules_for(r, "unshare") == {eperm} and rules_for(r, "setns") == {eperm}
    masked = {a.value for _, _, (a,) in rules_for(r, "clone")}
    assert sum(masked) == seccomp_profile.CLONE_NEW and len(masked) == 7  # one rule per CLONE_NEW* bit
    assert rules_for(r, "reboot") == {("SCMP_ACT_KILL", None, ())}
    assert r.architectures == ("SCMP_ARCH_X86_64",)


def test_s390_filters_clone_flags_in_argument_1():
    for deny in (False, True):
        (rule,) = rules_for(resolve(deny=deny, machine="s390x"), "clone")
        assert rule[2][0].index == 1


def test_cap_and_kernel_conditions():
    assert unconditional_allow(resolve(release="6.1.0"), "ptrace")  # minKernel 4.8
    assert not rules_for(resolve(release="4.4.0-generic"), "ptrace")
    assert unconditional_allow(resolve(CAPS + ("sys_ptrace",), release="4.4.0"), "ptrace")
    assert unconditional_allow(resolve(CAPS + ("dac_read_search",)), "open_by_handle_at")
    assert unconditional_allow(resolve(), "arch_prctl")
    assert not rules_for(resolve(machine="aarch64"), "arch_prctl")
    assert unconditional_allow(resolve(machine="aarch64"), "set_tls")
    with pytest.raises(ContainerError):
        resolve(release="unknown")


def test_personality_is_allowed_for_docker_values_only():
    values = {a.value for _, _, (a,) in rules_for(resolve(), "personality")}
    assert values == {0, 0x0008, 0x20000, 0x20008, 0xFFFFFFFF}


def test_describe():
    d = seccomp.describe(seccomp.load_profile(), CAPS, True)
    assert d.name == "docker-default" and d.default_action == "SCMP_ACT_ERRNO(EPERM)"
    assert d.deny_namespaces and d.rules > 300
    line = str(d)
    assert line.startswith("seccomp: filter, docker-default + no namespaces, ") and " rules, " in line
    if os.uname().machine == "x86_64":
        assert d.architectures == ("x86_64", "x86", "x32") and line.endswith("x86_64 x86 x32")


# ---- compiling and the cache ----------------------------------------------------------------

@pytest.fixture(scope="module")
def program():
    if UNAVAILABLE:
        pytest.skip(f"seccomp: {UNAVAILABLE}")
    return seccomp.compile_filter(seccomp.load_profile(), CAPS, deny_namespaces=True)


def test_program_shape(program):
    assert len(program) % 8 == 0 and 100 < len(program) // 8 <= 4096


def test_cache_miss_writes_0600_then_hits(program, tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    assert seccomp.cached_filter(None, CAPS, True, str(cache)) == program
    (entry,) = cache.iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600 and cache.stat().st_mode & 0o777 == 0o700
    monkeypatch.setattr(seccomp, "compile_filter", lambda *a: pytest.fail("compiled on a hit"))
    monkeypatch.setattr(seccomp, "parse_profile", lambda *a: pytest.fail("parsed on a hit"))
    assert seccomp.cached_filter(None, list(reversed(CAPS)), True, str(cache)) == program


def test_cache_keys_differ_by_caps_and_policy(program, tmp_path):
    for caps, deny in ((CAPS, True), (CAPS, False), (CAPS + ("sys_admin",), True)):
        seccomp.cached_filter(None, caps, deny, str(tmp_path))
    assert len(list(tmp_path.iterdir())) == 3


@pytest.mark.parametrize("damage", ["empty", "torn", "no-ret", "mode", "other key"])
def test_a_bad_cache_entry_is_rebuilt(program, tmp_path, damage):
    seccomp.cached_filter(None, CAPS, True, str(tmp_path))
    (entry,) = tmp_path.iterdir()
    whole = entry.read_bytes()
    key = whole[:len(whole) - len(program)]
    assert whole == key + program and key.endswith(b"\n")
    if damage == "mode":
        entry.chmod(0o666)  # anyone could have written it
    else:
        entry.write_bytes({"empty": b"", "torn": key + program[:13],
                           "no-ret": key + program[:-8] + program[:8],
                           "other key": key.replace(b"True", b"False", 1) + program}[damage])
    assert seccomp.cached_filter(None, CAPS, True, str(tmp_path)) == program
    assert entry.read_bytes() == whole and entry.stat().st_mode & 0o777 == 0o600


def test_install_refuses_what_is_not_a_program():
    with pytest.raises(ContainerError):
        seccomp.install(b"\x00" * 12)


# ---- real filters, in forked children -------------------------------------------------------

LIBC = ctypes.CDLL(None, use_errno=True)
LIBC.syscall.restype = ctypes.c_long
SIGCHLD = 17
X32 = 0x40000000  # __X32_SYSCALL_BIT
# x86_64 numbers, and i386 ones for the int $0x80 probes.
NR = {"clone": 56, "clone3": 435, "keyctl": 250, "add_key": 248, "bpf": 321, "io_uring_setup": 425,
      "perf_event_open": 298, "open_by_handle_at": 304, "personality": 135, "mount": 165,
      "unshare": 272, "setns": 308, "getpid": 39}
NR_I386 = {"getpid": 20, "keyctl": 288, "unshare": 310, "clone": 120, "clone3": 435,
           "socketcall": 102}
# int $0x80 from 64-bit code is an i386 syscall: number in eax, arguments in ebx, ecx, edx.
# push rbx (callee-saved); mov eax,edi; mov ebx,esi; xchg ecx,edx; int $0x80; pop rbx; ret
INT80 = bytes.fromhex("53 89 f8 89 f3 87 ca cd 80 5b c3")


def answer(rc):
    """-errno or a result -> "EPERM"... or "ok"."""
    return "ok" if rc >= 0 else errno.errorcode.get(-rc, str(-rc))


def raw(nr, *args):
    rc = LIBC.syscall(ctypes.c_long(nr), *[ctypes.c_long(a) for a in args])
    return -ctypes.get_errno() if rc == -1 else rc


def forking(rc):
    """A clone that was let through made a child: it leaves at once."""
    if rc == 0:
        os._exit(0)
    if rc > 0:
        os.waitpid(rc, 0)
    return rc


def probes(tmp, int80):
    def fork():
        pid = os.fork()
        if pid == 0:
            os._exit(7)
        return 0 if os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 7 else -errno.ECHILD

    def thread():  # glibc tries clone3, takes ENOSYS, falls back to clone
        ran = []
        t = threading.Thread(target=ran.append, args=(1,))
        t.start()
        t.join()
        return 0 if ran else -errno.ESRCH

    def write():
        path = os.path.join(tmp, "written")
        with open(path, "w") as f:
            f.write("hello")
        with open(path) as f:
            return 0 if f.read() == "hello" else -errno.EIO

    uts = os.open("/proc/self/ns/uts", os.O_RDONLY)
    target, tmpfs = ctypes.create_string_buffer(b"/nonexistent-ck"), ctypes.create_string_buffer(b"tmpfs")
    calls = {
        "unshare": lambda: raw(NR["unshare"], syscalls.CLONE_NEWUSER),
        "unshare_uts": lambda: raw(NR["unshare"], syscalls.CLONE_NEWUTS),
        "setns": lambda: raw(NR["setns"], uts, syscalls.CLONE_NEWUTS),
        "clone_newuser": lambda: forking(raw(NR["clone"], syscalls.CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0)),
        "clone_newns": lambda: forking(raw(NR["clone"], syscalls.CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0)),
        "clone3": lambda: raw(NR["clone3"], 0, 0),
        "keyctl": lambda: raw(NR["keyctl"], 0, -3, 0),  # KEYCTL_GET_KEYRING_ID, the session keyring
        "add_key": lambda: raw(NR["add_key"], 0, 0, 0, 0, -3),
        "bpf": lambda: raw(NR["bpf"], 0, 0, 0),
        "io_uring_setup": lambda: raw(NR["io_uring_setup"], 1, 0),
        "perf_event_open": lambda: raw(NR["perf_event_open"], 0, 0, -1, -1, 0),
        "open_by_handle_at": lambda: raw(NR["open_by_handle_at"], -1, 0, 0),
        "personality_query": lambda: raw(NR["personality"], 0xFFFFFFFF),
        "personality_no_randomize": lambda: raw(NR["personality"], 0x0040000),  # ADDR_NO_RANDOMIZE
        "mount": lambda: raw(NR["mount"], ctypes.addressof(tmpfs), ctypes.addressof(target),
                            ctypes.addressof(tmpfs), 0, 0),
        "getpid": lambda: 0 if raw(NR["getpid"]) == os.getpid() else -errno.ESRCH,
        "fork": fork, "thread": thread, "write": write,
        "x32_keyctl": lambda: raw(X32 | NR["keyctl"], 0, -3, 0),
        "x32_getpid": lambda: raw(X32 | NR["getpid"]),
    }
    if int80:
        calls.update({
            "i386_getpid": lambda: 0 if int80(NR_I386["getpid"], 0, 0, 0) == os.getpid() else -errno.ESRCH,
            "i386_keyctl": lambda: int80(NR_I386["keyctl"], 0, 0xFFFFFFFD, 0),
            "i386_unshare": lambda: int80(NR_I386["unshare"], syscalls.CLONE_NEWUSER, 0, 0),
            "i386_clone_newuser": lambda: forking(
                int80(NR_I386["clone"], syscalls.CLONE_NEWUSER | SIGCHLD, 0, 0)),
            "i386_clone3": lambda: int80(NR_I386["clone3"], 0, 0, 0),
            # socketcall(SYS_SOCKET, NULL): EFAULT if it reaches the kernel
            "i386_socketcall": lambda: int80(NR_I386["socketcall"], 1, 0, 0),
        })
    return {name: isolated(call) for name, call in calls.items()}


def isolated(call):
    """The probe's answer, from a process of its own: a successful unshare changes what follows."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            try:
                result = answer(call())
            except Exception as e:  # noqa: BLE001  (reported: a child must not run on into pytest)
                result = repr(e)
            os.write(w, result.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        result = f.read().decode()
    os.waitpid(pid, 0)
    return result


def run_child(program, tmp):
    """Fork; in the child set no_new_privs, install `program` (None: no filter), run the probes."""
    if os.uname().machine != "x86_64":
        pytest.skip("the probes use x86_64 and i386 syscall numbers")
    code = mmap.mmap(-1, mmap.PAGESIZE, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    code.write(INT80)
    int80 = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint, ctypes.c_uint)(
        ctypes.addressof(ctypes.c_char.from_buffer(code)))
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            signal.alarm(5)
            try:
                # Before the filter: does this kernel run i386 code (CONFIG_IA32_EMULATION)?
                ia32 = int80(NR_I386["getpid"], 0, 0, 0) == os.getpid()
                syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
                if program is not None:
                    seccomp.install(program)
                out = dict(probes(tmp, int80 if ia32 else None), ia32=ia32)
            except Exception as e:  # noqa: BLE001  (reported: a child must not run on into pytest)
                out = {"error": repr(e)}
            os.write(w, json.dumps(out).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    out = json.loads(data)
    assert "error" not in out, out["error"]
    return out


@pytest.fixture(scope="module")
def filtered(program, tmp_path_factory):
    return run_child(program, str(tmp_path_factory.mktemp("filtered")))


@pytest.fixture(scope="module")
def unfiltered(tmp_path_factory):
    return run_child(None, str(tmp_path_factory.mktemp("unfiltered")))


def requires_ia32(results):
    if not results["ia32"]:
        pytest.skip("the kernel runs no i386 code (CONFIG_IA32_EMULATION off or ia32_emulation=0)")


DENIED = ["unshare", "unshare_uts", "setns", "clone_newuser", "clone_newns", "keyctl", "add_key", "bpf",
          "io_uring_setup", "perf_event_open", "open_by_handle_at", "personality_no_randomize", "mount"]


@pytest.mark.parametrize("probe", DENIED)
def test_denied_with_eperm(filtered, probe):
    assert filtered[probe] == "EPERM"


def test_clone3_answers_enosys_so_glibc_falls_back(filtered):
    assert filtered["clone3"] == "ENOSYS"
    assert filtered["thread"] == "ok"


@pytest.mark.parametrize("probe", ["personality_query", "getpid", "fork", "write"])
def test_still_works(filtered, probe):
    assert filtered[probe] == "ok"


@requires_root
@pytest.mark.parametrize("probe", DENIED)
def test_without_the_filter_the_kernel_answers_otherwise(unfiltered, probe):
    assert unfiltered[probe] != "EPERM"


def test_without_the_filter_clone3_and_x32_reach_the_kernel(unfiltered):
    assert unfiltered["clone3"] != "ENOSYS"
    assert unfiltered["x32_keyctl"] in ("ok", "ENOSYS")  # ENOSYS: a kernel without x32


def test_the_i386_abi_is_filtered_too(filtered):
    requires_ia32(filtered)
    assert filtered["i386_getpid"] == "ok"
    assert filtered["i386_keyctl"] == "EPERM"
    assert filtered["i386_unshare"] == "EPERM"
    assert filtered["i386_clone_newuser"] == "EPERM"
    assert filtered["i386_clone3"] == "ENOSYS"
    assert filtered["i386_socketcall"] == "ENOSYS"  # Docker's AF_ALG/AF_VSOCK rules cannot see through it


@requires_root
def test_the_i386_probes_reach_the_kernel_without_a_filter(unfiltered):
    requires_ia32(unfiltered)
    assert unfiltered["i386_keyctl"] == "ok"
    assert unfiltered["i386_unshare"] == "ok" and unfiltered["i386_clone_newuser"] == "ok"
    assert unfiltered["i386_socketcall"] == "EFAULT"


def test_the_x32_abi_is_filtered_too(filtered):
    assert filtered["x32_keyctl"] == "EPERM"
    assert filtered["x32_getpid"] in ("ok", "ENOSYS")  # allowed; ENOSYS is the kernel's own answer


@requires_root
def test_sys_admin_lets_mount_through_but_never_unshare(tmp_path):
    caps = CAPS + ("sys_admin",)
    ours = run_child(seccomp.compile_filter(seccomp.load_profile(), caps, True), str(tmp_path))
    assert ours["mount"] == "ENOENT"  # past the filter, the kernel found no /nonexistent-ck
    assert ours["unshare_uts"] == "EPERM" and ours["setns"] == "EPERM"
    assert ours["clone_newns"] == "EPERM" and ours["clone3"] == "ENOSYS"
    docker = run_child(seccomp.compile_filter(seccomp.load_profile(), caps, False), str(tmp_path))
    assert docker["unshare_uts"] == "ok" and docker["clone3"] != "ENOSYS"
