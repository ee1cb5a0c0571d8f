"""`container-kernel doctor` (what this host allows) and `container-kernel ps` (what runs).

doctor answers by trying, not by guessing: each capability is exercised in a
throw-away child process (unshare, a tmpfs, pivot_root) that exits at once.
"""

import json
import os
import sys
import time

from . import cgroups, idmap, launcher, procfs
from . import syscalls as sc
from .errors import usage
from .spec import default_run_base, human_bytes


def _try_in_child(fn):
    """Run fn() in a fork; return None if it worked, else the error text."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            fn()
            os._exit(0)
        except BaseException as e:
            os.write(w, (os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)).encode())
            os._exit(1)
    os.close(w)
    err = os.read(r, 4096).decode()
    os.close(r)
    _, status = os.waitpid(pid, 0)
    return None if status == 0 else (err or "failed")


def _pivot_root_works():
    uid, gid = os.geteuid(), os.getegid()
    sc.unshare(sc.CLONE_NEWNS | (0 if uid == 0 else sc.CLONE_NEWUSER))
    if uid != 0:  # unmapped, no file can be created (mkdir: EOVERFLOW): be root inside
        idmap.write_maps("self", idmap.single(0, uid), idmap.single(0, gid))
    sc.mount(None, "/", None, sc.MS_REC | sc.MS_PRIVATE)
    sc.mount("tmpfs", "/tmp", "tmpfs", 0, "size=64k")
    os.mkdir("/tmp/old")
    sc.pivot_root("/tmp", "/tmp/old")


def _read(path):
    text = procfs.read(path)
    return None if text is None else text.strip()


def probe_host():
    """Facts about this host, each one tried rather than assumed."""
    version = cgroups.detect()
    facts = {
        "root": os.geteuid() == 0,
        "uid": os.geteuid(),
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
        "cgroup_mode": version,
        "cgroup_hybrid": version == "v1" and os.path.isdir("/sys/fs/cgroup/unified"),
        "cgroup_controllers": sorted(cgroups.available_controllers(version)) if version else [],
        "max_user_namespaces": _read("/proc/sys/user/max_user_namespaces"),
        "unprivileged_userns_clone": _read("/proc/sys/kernel/unprivileged_userns_clone"),
        "apparmor_restrict_userns": _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns"),
        "userns_error": _try_in_child(lambda: sc.unshare(sc.CLONE_NEWUSER)),
        "namespaces_error": _try_in_child(lambda: sc.unshare(
            sc.CLONE_NEWNS | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC | sc.CLONE_NEWNET | sc.CLONE_NEWPID
            | sc.CLONE_NEWCGROUP | (0 if os.geteuid() == 0 else sc.CLONE_NEWUSER))),
        "pivot_root_error": _try_in_child(_pivot_root_works),
        "overlayfs": "overlay" in (_read("/proc/filesystems") or ""),
        "in_container": os.path.exists("/.dockerenv") or os.path.exists("/run/.containerenv")
                        or _read("/proc/1/comm") not in ("systemd", "init", None),
        "newuidmap": any(os.access(os.path.join(d, "newuidmap"), os.X_OK)
                         for d in os.environ.get("PATH", "/usr/bin").split(":")),
    }
    return facts


def features(f):
    """What container-kernel will do here: [(feature, on?, why)]."""
    can_ns = f["namespaces_error"] is None
    limits = f["root"] and f["cgroup_mode"] is not None
    out = [("containers (PID, mount, UTS, IPC, net, cgroup namespaces)", can_ns,
            f["namespaces_error"] or ("as root" if f["root"] else "in a user namespace")),
           ("pivot_root into the container's rootfs", f["pivot_root_error"] is None,
            f["pivot_root_error"] or "works")]
    delegated, not_delegated = (None, None) if f["root"] else cgroups.delegated_base()
    fallback = {"memory": "RLIMIT_AS per process: allocations fail with MemoryError, no OOM kill",
                "pids": "RLIMIT_NPROC: fork fails with EAGAIN"}
    for ctl, what in (("memory", "memory limit (--memory)"), ("cpu", "CPU quota (--cpus)"),
                      ("pids", "process limit (--pids)"),
                      ("blkio" if f["cgroup_mode"] == "v1" else "io", "I/O limits (--io-*-bps)")):
        if f["root"]:
            on = limits and ctl in f["cgroup_controllers"]
            why = f"cgroup {f['cgroup_mode']} controller {ctl!r} " + ("present" if on else "missing")
        elif delegated:
            on, why = True, f"cgroup v2, delegated subtree {delegated}"
        elif ctl in fallback:
            on, why = True, f"fallback, {fallback[ctl]} (no cgroup: {not_delegated})"
        else:
            on, why = False, f"not enforced rootless without a delegated cgroup v2 subtree ({not_delegated})"
        out.append((what, on, why))
    userns = f["userns_error"] is None
    why = f["userns_error"] or "allowed"
    if not userns:
        if f["apparmor_restrict_userns"] == "1":
            why += ("; AppArmor restricts unprivileged user namespaces: "
                    "sysctl -w kernel.apparmor_restrict_unprivileged_userns=0")
        elif f["unprivileged_userns_clone"] == "0":
            why += "; enable with: sysctl -w kernel.unprivileged_userns_clone=1"
        elif f["max_user_namespaces"] == "0":
            why += "; enable with: sysctl -w user.max_user_namespaces=15000"
    out.append(("user namespaces (rootless containers)", userns, why))
    return out


def _json_or_help(command, argv, about):
    """The one argument doctor and ps take: "json", "help" (printed here) or "text"."""
    if argv == ["--json"]:
        return "json"
    if argv == []:
        return "text"
    if "--help" in argv:
        print(f"usage: container-kernel {command} [--json]\n\n{about}")
        return "help"
    bad = next((a for a in argv if a != "--json"), argv[-1])
    raise usage(f"{command}: unknown argument {bad!r}: use --json or nothing")


def cmd_doctor(argv):
    if _json_or_help("doctor", argv, "What this host allows, tried in throw-away processes.") == "help":
        return 0
    f = probe_host()
    feats = features(f)
    if argv == ["--json"]:
        json.dump({"host": f, "features": [{"feature": a, "on": b, "why": c} for a, b, c in feats]},
                  sys.stdout, indent=1)
        print()
        return 0
    mode = f["cgroup_mode"] or "none"
    if f["cgroup_hybrid"]:
        mode += " (hybrid: v1 controllers, cgroup2 at /sys/fs/cgroup/unified without them)"
    print(f"user:          {'root' if f['root'] else 'uid ' + str(f['uid'])}")
    print(f"kernel:        {f['kernel']}   python: {f['python']}")
    print(f"cgroups:       {mode}")
    print(f"controllers:   {', '.join(f['cgroup_controllers']) or 'none'}")
    print(f"user ns:       {'allowed' if f['userns_error'] is None else 'refused: ' + f['userns_error']}"
          f" (max_user_namespaces={f['max_user_namespaces']})")
    print(f"overlayfs:     {'yes' if f['overlayfs'] else 'no'}")
    print(f"pivot_root:    {'works' if f['pivot_root_error'] is None else 'fails: ' + f['pivot_root_error']}")
    print(f"newuidmap:     {'yes' if f['newuidmap'] else 'no (single-id user namespace mapping only)'}")
    print(f"in container:  {'yes' if f['in_container'] else 'no'}")
    print("\nHere container-kernel will:")
    for feature, on, why in feats:
        print(f"  [{'on ' if on else 'off'}] {feature}: {why}")
    return 0


def containers(run_base=None):
    """The state of every running container of this user, with live cgroup figures."""
    run_base = run_base or default_run_base(os.geteuid() != 0)
    out = []
    for name in sorted(os.listdir(run_base)) if os.path.isdir(run_base) else []:
        try:
            with open(os.path.join(run_base, name, "state.json")) as f:
                state = json.load(f)
        except (OSError, ValueError):
            continue
        if not launcher.owner_alive(os.path.join(run_base, name)):
            continue  # stale: its launcher is gone (the next start collects it)
        state["started"] = os.stat(os.path.join(run_base, name, "state.json")).st_mtime
        if state.get("cgroup_version"):
            state["stats"] = cgroups.open_cgroup(state["id"], f"v{state['cgroup_version']}").stats()
        out.append(state)
    return out


def cmd_ps(argv):
    if _json_or_help("ps", argv, "Running containers, their host PIDs, limits and usage.") == "help":
        return 0
    items = containers()
    if argv == ["--json"]:
        json.dump(items, sys.stdout, indent=1)
        print()
        return 0
    print(f"{'ID':14}{'INIT PID':>9}  {'MEMORY (use/limit)':22}{'CPUS':>6}{'PIDS':>8}  {'UP':>7}  COMMAND")
    for s in items:
        st = s.get("stats") or {}
        mem, cpu, pids = st.get("memory") or {}, st.get("cpu") or {}, st.get("pids") or {}
        memtext = f"{human_bytes(mem.get('usage'))} / {human_bytes(mem.get('limit'))}" if mem else "-"
        cpus = f"{cpu['cpus']:g}" if cpu.get("cpus") else "-"
        ptext = f"{pids.get('current', '-')}/{pids.get('limit') or '-'}" if pids else "-"
        up = f"{time.time() - s['started']:.0f}s"
        print(f"{s['id']:14}{s['init_pid']:>9}  {memtext:22}{cpus:>6}{ptext:>8}  {up:>7}  "
              f"{' '.join(s['command'])[:60]}")
    return 0


def containment_problem():
    """Why this process could not create a container here, or None. Cheap: no fork.

    (doctor tries for real; this is the quick check a kernel provisioner can afford.)"""
    if not os.path.exists("/proc/self/ns/pid"):
        return "this kernel has no namespaces (not Linux?)"
    if os.geteuid() == 0:
        if os.path.exists("/.dockerenv") and not _can_admin():
            return "running as root inside a container without CAP_SYS_ADMIN"
        return None
    if _read("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return "unprivileged user namespaces are disabled (kernel.unprivileged_userns_clone=0)"
    if _read("/proc/sys/user/max_user_namespaces") == "0":
        return "user namespaces are disabled (user.max_user_namespaces=0)"
    if _read("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return ("AppArmor restricts unprivileged user namespaces "
                "(kernel.apparmor_restrict_unprivileged_userns=1)")
    return None


def _can_admin():
    return bool(int(procfs.status_field("CapEff") or "0", 16) & (1 << 21))  # CAP_SYS_ADMIN
