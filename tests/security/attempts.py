"""The escape suite's table: what an attempt is, and how its code runs in a target.

An attempt is a small piece of plain Python (ctypes for raw syscalls, x86_64
numbers) that runs in a target and prints one JSON line saying what happened,
e.g. {"ok": false, "errno": "EPERM"}. The same table runs in four targets (MODE):
  kernel    a container kernel, a cell executed through jupyter_client;
  run       `container-kernel run -- python3 -c ...` as root;
  rootless  the same as the user tests/rootless creates;
  plain     a plain ipykernel on the host, where every attempt must succeed (or
            say why it cannot), proving that each check can fail.
Nothing an attempt does may harm the host when it succeeds there: sysctls get their
own value back, nodes and mounts are made in a temp dir and removed, modules and
kexec get invalid arguments (EPERM vs EINVAL/EFAULT/EBADF says whether the call got
past the privilege check), ptrace, process_vm_readv and /proc/1/{exe,environ,mem}
aim at a child of our own on the host (never its init), /proc/sysrq-trigger is only
os.access()ed there, and what changes the calling process (chroot, a namespace,
personality, iopl) runs in a forked child that exits.

HOST is what the suite knows of the host (conftest.py's sec_host): markers only the
host has, its namespaces' inodes, a listener, a SysV segment, and so on.
"""

import base64
import json
import platform
import textwrap
import zlib
from collections import namedtuple

import pytest

from tests.helpers import IS_ROOT

GATE = pytest.mark.skipif(
    not IS_ROOT or platform.machine() != "x86_64",
    reason="the escape suite needs root (it starts container kernels and creates the rootless "
           "user) and x86_64 (its raw syscalls use x86_64 numbers)")


class Attempt(namedtuple("Attempt", "name doc code escaped plain_na skip rootless")):
    """name: the test id; doc: what it tries and why it must fail; code: Python that ends
    with report(...); escaped(result): True when the attempt got through;
    plain_na(result): on the plain kernel, why the attempt could not succeed on this host
    (None when it did, or should have);
    skip(host, mode): why it does not apply to a target, or None;
    rootless: how a rootless container differs, said, or None."""
    __slots__ = ()


def attempt(name, doc, code, escaped, plain_na=None, skip=None, rootless=None):
    return Attempt(name, " ".join(doc.split()), textwrap.dedent(code).strip() + "\n",
                   escaped, plain_na, skip, rootless)


def not_eperm(*keys):
    """escaped() for privilege probes: any answer but EPERM (success, or an EINVAL/EFAULT/
    EBADF of the kernel's own validation) means the call got past the privilege check."""
    def escaped(r):
        return any(_sub(r, k).get("errno") != "EPERM" for k in keys or (None,))
    return escaped


def enosys_na(*keys):
    """plain_na(): the host kernel lacks the syscall (ENOSYS), so it cannot succeed there."""
    def na(r):
        if all(_sub(r, k).get("errno") == "ENOSYS" for k in keys or (None,)):
            what = " and ".join(keys) if keys else "this syscall"
            return f"this host's kernel has no {what} (ENOSYS): there is nothing to reach"
        return None
    return na


def _sub(r, key):
    return r if key is None else r.get(key) or {}


# The helpers every attempt's code may use; MODE and HOST are filled in per target.
PRELUDE = r'''
import ctypes, errno, json, os, select, signal, socket, stat, subprocess, sys, tempfile, time
HOST = json.loads(%(host)r)
MODE = %(mode)r
CONTAINED = MODE != "plain"
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


def ename(n):
    return errno.errorcode.get(n, str(n))


def _arg(a):
    if a is None:
        return ctypes.c_void_p(None)
    if isinstance(a, str):
        a = a.encode()
    if isinstance(a, bytes):
        return ctypes.c_char_p(a)
    if isinstance(a, int):
        return ctypes.c_long(a)
    return a


def syscall(nr, *args):
    """A raw x86_64 syscall: {"ok": True, "ret": r} or {"ok": False, "errno": "EPERM"}."""
    ctypes.set_errno(0)
    r = libc.syscall(ctypes.c_long(nr), *[_arg(a) for a in args])
    if r < 0:
        return {"ok": False, "errno": ename(ctypes.get_errno())}
    return {"ok": True, "ret": r}


def attempt(fn, *args, **kw):
    try:
        value = fn(*args, **kw)
    except OSError as e:
        return {"ok": False, "errno": ename(e.errno) if e.errno else str(e)}
    return {"ok": True, **({"value": value} if isinstance(value, (int, str, bool)) else {})}


def in_child(fn, timeout=30):
    """fn() in a forked child, its dict result sent back through a pipe: what it changes
    (a chroot, a namespace, a personality, an I/O privilege) dies with the child."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(r)
            try:
                result = fn()
            except OSError as e:
                result = {"ok": False, "errno": ename(e.errno) if e.errno else str(e)}
            except BaseException as e:
                result = {"error": f"{type(e).__name__}: {e}"}
            os.write(w, json.dumps(result, default=str).encode())
        finally:
            os._exit(0)
    os.close(w)
    data, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        if select.select([r], [], [], 0.2)[0]:
            chunk = os.read(r, 65536)
            if not chunk:
                break
            data += chunk
    else:
        os.kill(pid, signal.SIGKILL)
    os.close(r)
    os.waitpid(pid, 0)
    return json.loads(data) if data else {"error": "the child said nothing (timeout or crash)"}


def read_file(path, limit=1 << 20):
    try:
        with open(path, "rb") as f:
            data = f.read(limit)
    except OSError as e:
        return {"ok": False, "errno": ename(e.errno)}
    return {"ok": True, "bytes": len(data), "head": data[:80].decode(errors="replace")}


def pids():
    return sorted(int(p) for p in os.listdir("/proc") if p.isdigit())


def is_host_root(st):
    return [st.st_dev, st.st_ino] == HOST["root"]


def markers_at(prefix="", dir_fd=None):
    """The host's marker files visible under a path prefix, or relative to a directory fd."""
    seen = []
    for m in HOST["markers"]:
        try:
            if dir_fd is None:
                os.stat(prefix + m)
            else:
                os.stat(m.lstrip("/"), dir_fd=dir_fd)
            seen.append(m)
        except OSError:
            pass
    return seen


def walk_up(fd, steps=64):
    """'..' from a directory fd, over and over: where a leaked fd of the host's tree leads."""
    for _ in range(steps):
        up = os.open("..", os.O_PATH | os.O_DIRECTORY, dir_fd=fd)
        os.close(fd)
        fd = up
    return fd


def own_cgroup(controller):
    """This process's cgroup path for a v1 controller ("" = the v2 line), from /proc/self/cgroup."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            _, names, path = line.rstrip("\n").split(":", 2)
            if controller in names.split(",") or (controller == "" and names == ""):
                return path
    return None


def report(**result):
    print(json.dumps(result, sort_keys=True, default=str), flush=True)
'''

# Runs every attempt of a batch in one process (the `run` targets), one JSON line each.
BATCH = r'''
import contextlib, io, traceback
for _name, _code in ATTEMPTS:
    _out = io.StringIO()
    try:
        with contextlib.redirect_stdout(_out):
            exec(compile(_code, _name, "exec"), dict(globals()))
        _lines = [l for l in _out.getvalue().splitlines() if l.startswith("{")]
        _result = json.loads(_lines[-1]) if _lines else {"error": "no report: " + _out.getvalue()[-300:]}
    except BaseException:
        _result = {"error": traceback.format_exc()[-800:]}
    print(json.dumps({"attempt": _name, "result": _result}, default=str), flush=True)
'''


def prelude(host, mode):
    return PRELUDE % {"host": json.dumps(host), "mode": mode}


def cell(a, host, mode):
    """The code of one attempt, as a kernel cell."""
    return prelude(host, mode) + "\n" + a.code


def batch_argv(attempts, host, mode):
    """`python3 -c ...` running attempts in one process; parse its output with parse_batch."""
    program = (prelude(host, mode) + f"\nATTEMPTS = {[(a.name, a.code) for a in attempts]!r}\n"
               + BATCH)
    packed = base64.b64encode(zlib.compress(program.encode(), 9)).decode()
    return ["python3", "-c", f"import base64, zlib; exec(zlib.decompress(base64.b64decode('{packed}')))"]


def parse_batch(stdout):
    out = {}
    for line in stdout.splitlines():
        if line.startswith('{"attempt"'):
            record = json.loads(line)
            out[record["attempt"]] = record["result"]
    return out


def parse_cell(stdout):
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    if not lines:
        raise AssertionError(f"the attempt printed no JSON line: {stdout[-500:]!r}")
    return json.loads(lines[-1])


def skip_unless_applies(a, facts, target):
    """Skip, with its reason, an attempt that does not apply to this target on this host."""
    reason = a.skip and a.skip(facts, target)
    if reason:
        pytest.skip(reason)


def judge_batch(a, results, facts, where):
    """An attempt of a batch run (container-kernel run): it printed a result, refused."""
    assert a.name in results, f"the batch printed nothing for {a.name}"
    judge_refused(a, results[a.name], where)


def judge_refused(a, result, mode):
    """The assertion of a contained target: the attempt must not get through."""
    if "error" in result:
        pytest.fail(f"{a.name}: the attempt itself broke in {mode} (a bug in the test, "
                    f"or a refusal nobody expected): {result['error']}")
    if a.escaped(result):
        pytest.fail(f"ESCAPE in {mode}: {a.name}: {a.doc}\n  result: {json.dumps(result)}")


def judge_succeeded(a, result):
    """The assertion on the plain kernel: the attempt must get through, or say why not."""
    if "error" in result:
        pytest.fail(f"{a.name}: the attempt itself broke on the plain kernel: {result['error']}")
    # Not-applicable first: an ENOSYS is "not a refusal" to a contained target's escaped(),
    # but on the host it means there is nothing to reach.
    reason = a.plain_na(result) if a.plain_na else None
    if reason:
        pytest.skip(f"not applicable on the plain kernel: {reason}")
    if a.escaped(result):
        return
    pytest.fail(f"{a.name}: this check cannot fail: on a plain ipykernel on the host the attempt "
                f"did not get through either, so refusing it proves nothing\n  result: {json.dumps(result)}")


def all_attempts():
    from . import table_calls, table_files, table_isolation
    table = table_calls.ATTEMPTS + table_files.ATTEMPTS + table_isolation.ATTEMPTS
    names = [a.name for a in table]
    assert len(names) == len(set(names)), "two attempts share a name"
    return table
