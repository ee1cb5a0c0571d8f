"""What the teaching notebooks share: claims, exercise checks, and Binder's degraded mode.

- claim(name, value): a fact a notebook shows, as one line for the reader and as JSON
  (CLAIM_MIME) that tests/notebooks reads back from the outputs and checks.
- check(answer, expected, ...): the "check your work" cell of an exercise. An answer
  still `...` (Ellipsis) is "not answered yet", a wrong one fails with a hint.
- MODE: "contained" (a container kernel), "unconfined" (the kernel could not make a
  container and runs loudly NOT contained, as on Binder) or "other" (not our kernel).
  `%%contained_only` runs a cell only in a container kernel, and says honestly otherwise.
- outer_view(): the container this kernel runs in when it is not ours (Binder's Docker
  container): its cgroup limits and the namespaces it has.

A plain module beside the notebooks, not part of the package: a notebook imports it
from its own directory, which is the kernel's working directory.
"""

import json
import os

from IPython import get_ipython
from IPython.display import display

CLAIM_MIME = "application/vnd.container-kernel.claim+json"
UNCONFINED_ENV = "CK_UNCONFINED"  # container_kernel.protocol.UNCONFINED_ENV
# A namespace made at boot has a fixed inode (the kernel's include/linux/proc_ns.h):
# another inode means a namespace made since. mnt and net have no fixed number.
INITIAL_INODES = {"ipc": 0xEFFFFFFF, "uts": 0xEFFFFFFE, "user": 0xEFFFFFFD, "pid": 0xEFFFFFFC,
                  "cgroup": 0xEFFFFFFB, "time": 0xEFFFFFFA}


def mode():
    if os.environ.get(UNCONFINED_ENV):
        return "unconfined"
    if os.environ.get("container") == "container-kernel":
        return "contained"
    return "other"


MODE = mode()
CONTAINED = MODE == "contained"


def why_not_contained():
    if MODE == "unconfined":
        return f"this kernel is NOT contained: {os.environ[UNCONFINED_ENV]}"
    if MODE == "other":
        return "this is not the container kernel (choose the kernel \"Python 3 (container)\")"
    return None


def claim(name, value, say=None):
    """Show a fact in one line, and record it as JSON for tests/notebooks to check."""
    json.dumps(value)  # a claim is plain data, or it is a bug here, not in the test
    text = say if say is not None else repr(value)
    text = text if len(text) <= 90 else text[:89] + "…"
    display({CLAIM_MIME: {"name": name, "value": value}, "text/plain": f"[shown] {name}: {text}"},
            raw=True)


def check(answer, expected, name, hint):
    """An exercise's check: `...` is not answered yet; a wrong answer fails with the hint."""
    if answer is ...:
        print("Not answered yet: replace the ... in the cell above, run it, then run this one.")
        return
    assert answer == expected, f"Not quite: you answered {answer!r}. Hint: {hint}"
    print("Correct!")
    claim(f"exercise:{name}", True, "passed")


_said = [False]  # the reason is said in full once per kernel, then referred to


def contained_only(line, cell):
    """%%contained_only: run the cell in a container kernel; elsewhere say why not."""
    reason = why_not_contained()
    if reason is None:
        shell = get_ipython()
        # Run as part of this cell (not a nested run_cell): an exception fails this cell.
        exec(compile(shell.transform_cell(cell), "<contained_only>", "exec"), shell.user_ns)  # noqa: S102
        return
    what = f" ({line.strip()})" if line.strip() else ""
    if _said[0]:
        print(f"Not shown here{what}: this kernel is not contained (see above).")
        return
    _said[0] = True
    print(f"Not shown here{what}: {reason}. "
          "What this cell shows needs the container kernel on a Linux host that can make namespaces.")


# ---- the container around us, when it is not ours ---------------------------------------------

def _read(path):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def own_cgroup_limits():
    """This process's cgroup limits as the files say them, v2 or v1; {} if none is readable."""
    cg = _read("/proc/self/cgroup") or ""
    lines = [line.split(":", 2) for line in cg.splitlines()]
    if os.path.exists("/sys/fs/cgroup/cgroup.controllers"):  # v2: one tree
        path = next((p for h, c, p in lines if h == "0"), "/")
        base = next((d for d in (f"/sys/fs/cgroup{path}", "/sys/fs/cgroup")
                     if os.path.exists(f"{d}/cgroup.procs")), "/sys/fs/cgroup")
        names = ("memory.max", "cpu.max", "pids.max")
        return {n: _read(f"{base}/{n}") for n in names if _read(f"{base}/{n}") is not None}
    out = {}
    for ctl, name in (("memory", "memory.limit_in_bytes"), ("cpu", "cpu.cfs_quota_us"),
                      ("cpu", "cpu.cfs_period_us"), ("pids", "pids.max")):
        path = next((p for h, c, p in lines if ctl in c.split(",")), "/")
        for d in (f"/sys/fs/cgroup/{ctl}{path}", f"/sys/fs/cgroup/{ctl}"):
            value = _read(f"{d}/{name}")
            if value is not None:
                out[f"{ctl}/{name}"] = value
                break
    return out


def _meaning(value):
    if value in ("max", "-1") or value.isdigit() and int(value) >= 1 << 62:
        return "  (no limit)"
    if value.isdigit() and int(value) >= 1 << 20:
        return f"  ({int(value) / (1 << 20):.0f} MiB)"
    return ""


def own_namespaces():
    """{kind: (inode, "new" | "the boot one" | why unknown)} for this process's namespaces."""
    out = {}
    for kind in sorted(os.listdir("/proc/self/ns")):
        if kind.endswith("_for_children"):
            continue
        ino = os.stat(f"/proc/self/ns/{kind}").st_ino
        initial = INITIAL_INODES.get(kind)
        out[kind] = (ino, "(no fixed boot number to compare)" if initial is None else "the boot one" if ino == initial else "new")
    return out


def outer_view():
    """Print, and return, the container we are in when it is not ours (Binder's)."""
    limits = own_cgroup_limits()
    namespaces = own_namespaces()
    print("This kernel's cgroup limits, read from /sys/fs/cgroup:")
    for name, value in limits.items() or [("(none readable)", "")]:
        print(f"  {name:28} {value}{_meaning(value)}")
    print("Its namespaces (an inode other than the boot one means a namespace made for it):")
    for kind, (ino, what) in namespaces.items():
        print(f"  {kind:8} {ino:<12} {what}")
    new = sorted(k for k, (_, w) in namespaces.items() if w == "new")
    return {"limits": limits, "new_namespaces": new}


# ---- seccomp: what Docker's default profile says of a syscall ---------------------------------

def seccomp_rule(syscall):
    """What the default profile (the one this kernel loads, plus "no namespaces") says."""
    import container_kernel
    path = os.path.join(os.path.dirname(container_kernel.__file__), "runtime/profiles/docker-default.json")
    with open(path) as f:
        profile = json.load(f)
    needs = []
    for rule in profile["syscalls"]:
        if syscall in rule["names"] and rule["action"] == "SCMP_ACT_ALLOW" and not rule.get("args"):
            inc = rule.get("includes") or {}
            if inc.get("arches") and os.uname().machine not in ("x86_64",):
                continue
            if not inc.get("caps"):
                return "allowed"
            needs += inc["caps"]
    if needs:
        return f"allowed only with {' or '.join(needs)}"
    return "not in the allow list: refused"


ip = get_ipython()
if ip is not None:
    ip.register_magic_function(contained_only, "cell", "contained_only")
