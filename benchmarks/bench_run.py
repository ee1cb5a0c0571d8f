"""How long does a container take to start and exit? `container-kernel run -- /bin/true`
against the tools a learner already knows, on this host, right now.

    .venv/bin/python benchmarks/bench_run.py [--runs 30] [--json FILE] [--profile]

Each runtime runs /bin/true in fresh namespaces; the time is the wall clock of the
whole command (fork, exec, setup, exit, teardown), as a user sees it. Runs
alternate between runtimes (round-robin, the order rotating each round) so a
noisy moment on the machine hits them all alike instead of one runtime's batch.

This is a measurement, not a test: nothing here asserts a time.
"""

import argparse
import ast
import compileall
import glob
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
CK = os.path.join(BIN, "container-kernel")
sys.path.insert(0, REPO)
from container_kernel.runtime import host  # noqa: E402  (`ps`, to tell running from left)
from container_kernel.runtime.spec import default_run_base  # noqa: E402

ROOTLESS = os.geteuid() != 0
UNHARDENED = ("--security-opt", "seccomp=unconfined", "--security-opt", "no-new-privileges=false",
              "--security-opt", "systempaths=unconfined")
RUN_BASE = default_run_base(ROOTLESS)  # where this user's containers keep their state
RUNC_PREFIX = f"ck-bench-{os.getpid()}-"

# The floor under any container on this host: fork + unshare + exec with nothing else.
# The second fork matters: unshare(CLONE_NEWPID) does not move the caller, only its next
# child is PID 1 of the new namespace (as `unshare --fork` does). -I -S: no site, no venv
# .pth files, so what is left is the interpreter, ctypes and the syscalls.
# Flags: CLONE_NEWPID | NEWNS | NEWUTS | NEWIPC | NEWNET, and NEWUSER when not root, as
# the runtime does.
FLAGS = 0x20000000 | 0x00020000 | 0x04000000 | 0x08000000 | 0x40000000 | (0x10000000 * ROOTLESS)
BARE = """\
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if os.fork() == 0:
    if libc.unshare(int(sys.argv[1])):
        os._exit(100 + ctypes.get_errno())
    pid = os.fork()
    if pid == 0:
        os.execv('/bin/true', ['true'])
    os._exit(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
raise SystemExit(os.waitstatus_to_exitcode(os.wait()[1]))
"""


# ---- the runtimes ---------------------------------------------------------------------------

def runtimes(workdir):
    """[(name, argv or a function of the run number, None) | (name, None, why skipped)]."""
    out = [("container-kernel", [CK, "run", "--", "/bin/true"], None),
           # What the hardening costs: the same run without seccomp, no_new_privs and masks.
           ("container-kernel, hardening off", [CK, "run", *UNHARDENED, "--", "/bin/true"], None)]
    if not os.access(CK, os.X_OK):
        out = [(name, None, f"{CK} not found: run `make venv` first") for name, _, _ in out]
    out.append(_tool("unshare", "unshare (util-linux)", [
        *(["--user", "--map-root-user"] if ROOTLESS else []),
        "--fork", "--pid", "--mount-proc", "--uts", "--ipc", "--net", "--mount", "/bin/true"]))
    # Builds its root in a tmpfs: /usr read-only, the merged-/usr symlinks, fresh /proc, /dev.
    out.append(_tool("bwrap", "bwrap (bubblewrap)", [
        "--unshare-all", "--die-with-parent", "--ro-bind", "/usr", "/usr",
        "--symlink", "usr/bin", "/bin", "--symlink", "usr/lib", "/lib",
        "--symlink", "usr/lib64", "/lib64", "--proc", "/proc", "--dev", "/dev", "/bin/true"]))
    if not shutil.which("runc"):
        out.append(("runc", None, "runc is not installed (apt-get install runc)"))
    elif ROOTLESS:
        out.append(("runc", None, "runc needs root here (a rootless bundle is another config)"))
    else:
        bundle = _runc_bundle(os.path.join(workdir, "bundle"))
        # A unique id per run: `runc run` deletes its container on exit, but an id still
        # in use (a run that failed half-way) would make the next run fail.
        out.append(("runc", lambda i: ["runc", "run", "--bundle", bundle, f"{RUNC_PREFIX}{i}"],
                    None))
    out.append(("bare fork+unshare (python -I -S)",
                [sys.executable, "-I", "-S", "-c", BARE, str(FLAGS)], None))
    out.append(("/bin/true (floor)", ["/bin/true"], None))
    out.append(("python -c pass (floor)", [sys.executable, "-c", "pass"], None))
    return out


def _tool(name, label, args):
    path = shutil.which(name)
    if not path:
        return (label, None, f"{name} is not installed")
    return (label, [path, *args], None)


def _runc_bundle(bundle):
    """An OCI bundle from `runc spec`: a rootfs of /usr bound read-only, like the others."""
    rootfs = os.path.join(bundle, "rootfs")
    os.makedirs(os.path.join(rootfs, "usr"))
    for name in ("bin", "lib", "lib64", "sbin"):  # merged /usr, as on Debian 12
        os.symlink(f"usr/{name}", os.path.join(rootfs, name))
    subprocess.run(["runc", "spec"], cwd=bundle, check=True)
    path = os.path.join(bundle, "config.json")
    with open(path) as f:
        config = json.load(f)
    config["process"]["terminal"] = False  # no console socket: stdio are ours (DEVNULL)
    config["process"]["args"] = ["/bin/true"]
    config["mounts"].insert(0, {"destination": "/usr", "type": "bind", "source": "/usr",
                                "options": ["rbind", "ro", "nosuid", "nodev"]})
    with open(path, "w") as f:
        json.dump(config, f, indent=1)
    return bundle


# ---- timing ---------------------------------------------------------------------------------

def time_once(argv):
    t = time.perf_counter()
    r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000, r.returncode


def measure(active, runs):
    """{name: [ms, ...]}, runs per runtime, round-robin."""
    times = {name: [] for name, _ in active}
    for i in range(runs):
        k = i % len(active)
        for name, argv in active[k:] + active[:k]:
            args = argv(i) if callable(argv) else argv
            ms, code = time_once(args)
            if code != 0:
                raise SystemExit(f"bench: {name} exited {code} on run {i + 1}: "
                                 f"try it by hand: {' '.join(args)}")
            times[name].append(ms)
    return times


def warm_up(candidates):
    """Run each once untimed (page cache, first-use costs); a runtime that fails here is skipped."""
    active, skipped = [], {}
    for name, argv, why in candidates:
        if argv is None:
            skipped[name] = why
            continue
        args = argv("warmup") if callable(argv) else argv
        r = subprocess.run(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                           stderr=subprocess.PIPE, text=True)
        if r.returncode != 0:
            last = (r.stderr.strip().splitlines() or ["no message"])[-1]
            skipped[name] = f"does not run here (exit {r.returncode}: {last[:100]})"
            continue
        active.append((name, argv))
    return active, skipped


def summarize(times):
    rows = {}
    for name, ms in times.items():
        rows[name] = {"median_ms": statistics.median(ms),
                      "p90_ms": statistics.quantiles(ms, n=10, method="inclusive")[-1],
                      "min_ms": min(ms), "runs": len(ms), "times_ms": [round(t, 3) for t in ms]}
    ref = rows.get("container-kernel", {}).get("median_ms")
    for row in rows.values():
        row["ratio_to_container_kernel"] = row["median_ms"] / ref if ref else None
    return rows


def print_table(rows, skipped):
    print(f"\n{'runtime':34}{'median ms':>10}{'p90 ms':>9}{'min ms':>9}   x container-kernel")
    for name, r in sorted(rows.items(), key=lambda kv: -kv[1]["median_ms"]):
        ratio = f"{r['ratio_to_container_kernel']:.2f}" if r["ratio_to_container_kernel"] else "-"
        print(f"{name:34}{r['median_ms']:10.1f}{r['p90_ms']:9.1f}{r['min_ms']:9.1f}   {ratio}")
    if "container-kernel" in rows and "runc" in rows:
        ratio = rows["container-kernel"]["median_ms"] / rows["runc"]["median_ms"]
        print(f"\ncontainer-kernel / runc: {ratio:.2f} (median to median)")
    for name, why in skipped.items():
        print(f"skipped {name}: {why}")


# ---- leaving nothing behind -----------------------------------------------------------------

def our_traces():
    """What container runs leave on this host: run dirs, container-kernel and runc cgroups,
    runc state. A snapshot: compared before and after, so another user's containers running
    at the same time are not counted as ours."""
    found = set()
    if os.path.isdir(RUN_BASE):
        found.update(f"run dir {RUN_BASE}/{n}" for n in os.listdir(RUN_BASE))
    for hierarchy in ("", "*/"):  # v2: one tree; v1: one per controller
        for parent in glob.glob(f"/sys/fs/cgroup/{hierarchy}container-kernel"):
            found.update(f"cgroup {e.path}" for e in os.scandir(parent) if e.is_dir())
        found.update(f"cgroup {p}" for p in glob.glob(f"/sys/fs/cgroup/{hierarchy}{RUNC_PREFIX}*"))
    found.update(f"runc container {c}" for c in _runc_ids())
    return found


def ours(traces):
    """The traces our runs could have made: runc's by prefix, container-kernel's by the form of
    a default id (spec.new_id: 12 hex digits) and only if no such container runs now (one
    started meanwhile by someone else, say a Jupyter kernel)."""
    running = {c["id"] for c in host.containers()}

    def mine(name):
        if name.startswith(RUNC_PREFIX):
            return True
        is_default_id = len(name) == 12 and all(c in "0123456789abcdef" for c in name)
        return is_default_id and name not in running
    return sorted(t for t in traces if mine(t.rpartition("/")[2].split()[-1]))


def _runc_ids():
    if os.geteuid() != 0 or not shutil.which("runc"):
        return []
    r = subprocess.run(["runc", "list", "-q"], capture_output=True, text=True)
    return [c for c in r.stdout.split() if c.startswith(RUNC_PREFIX)]


def clean_runc():
    for cid in _runc_ids():  # only after a failed run: `runc run` deletes its own on exit
        subprocess.run(["runc", "delete", "--force", cid], capture_output=True)


# ---- --profile: one start, stage by stage, in process ---------------------------------------

# Run by a fresh interpreter so the imports are cold, as in `container-kernel run`. Only time
# and sys are imported: anything else would pre-load modules the runtime then gets for free
# (or, imported after the clock stops, be billed to "interpreter exit": hence repr, not json).
# The stages are those of launcher.run(); inside start(), the helpers it calls are wrapped
# with a timer where they exist (a renamed one just drops out of the breakdown).
PROFILE = """\
import sys, time
clock = time.perf_counter
t = [clock()]
from container_kernel import cli
t.append(clock())
spec, _ = cli.parse_run(["--", "/bin/true"])
t.append(clock())
from container_kernel.runtime import launcher
t.append(clock())
inner = {}
def timed(owner, name, label):
    fn = getattr(owner, name, None)
    if fn is None:
        return
    def wrapper(*a, **kw):
        s = clock()
        try:
            return fn(*a, **kw)
        finally:
            inner[label] = inner.get(label, 0) + clock() - s
    setattr(owner, name, wrapper)
timed(launcher.rundir, "collect_stale", "collect stale containers")
timed(launcher.limits.cgroups, "detect", "cgroups.detect")
timed(launcher.cgroups, "open_cgroup", "cgroups.open_cgroup")
timed(launcher.mounts, "host_cgroup_mounts", "mounts.host_cgroup_mounts")
timed(launcher.mounts, "plan", "mounts.plan")
timed(launcher.rundir, "make_run_dir", "make the run dir")
timed(launcher.cgroups.base.Cgroup, "_create", "create the cgroup (mkdir + limits)")
timed(launcher.Container, "_fork_stages", "fork stages until the command is exec'd")
timed(launcher.rundir, "write_state", "write state.json")
c = launcher.Container(spec)
c.start()
t.append(clock())
code = c.wait()
t.append(clock())
c.report_oom(code)
c.cleanup()
t.append(clock())
print(repr({"stages": [b - a for a, b in zip(t, t[1:])], "inner": inner, "code": code}))
"""
STAGES = ("import container_kernel.cli", "parse argv into a Spec (imports runtime.spec)",
          "import runtime.launcher (+ cgroups, mounts, init...)", "Container.start()",
          "Container.wait() until /bin/true has exited", "report_oom + cleanup")


def profile(runs):
    """Median of each stage over `runs` fresh processes (one start each)."""
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", PROFILE], cwd=REPO, capture_output=True,
                           text=True, stdin=subprocess.DEVNULL)
        wall = (time.perf_counter() - t) * 1000
        if r.returncode != 0:
            raise SystemExit(f"bench: --profile failed:\n{r.stderr.strip()}")
        d = ast.literal_eval(r.stdout)
        stages = [s * 1000 for s in d["stages"]]
        inner = {k: v * 1000 for k, v in d["inner"].items()}
        inner["the rest of start()"] = stages[3] - sum(inner.values())
        # What the in-process clock cannot see: interpreter start (site, .pth files) and exit.
        stages.append(wall - sum(stages))
        samples.append((wall, stages, inner))
    # Medians per line (of per-process differences): they need not add up to the total.
    med = statistics.median
    wall = med(s[0] for s in samples)
    names = STAGES + ("interpreter start + exit (wall clock minus the above)",)
    stages = {name: med(s[1][i] for s in samples) for i, name in enumerate(names)}
    inner = {k: med(s[2].get(k, 0) for s in samples) for k in samples[0][2]}
    print(f"\none container-kernel start, stage by stage (median of {runs} fresh processes, ms):")
    for name, ms in stages.items():
        print(f"  {ms:7.2f}  {name}")
        if name == "Container.start()":
            for k, v in inner.items():
                print(f"  {'':7}  {v:7.2f}  {k}")
    print(f"  {wall:7.2f}  total wall clock of `python -c <profile>`")
    return {"runs": runs, "wall_ms": wall, "stages_ms": stages, "start_breakdown_ms": inner}


# ---- main -----------------------------------------------------------------------------------

def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=30, help="timed runs per runtime (default 30)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--profile", action="store_true",
                    help="also time the stages of one container-kernel start, in process")
    args = ap.parse_args(argv)
    if args.runs < 2:
        ap.error("--runs must be at least 2")
    if args.runs < 20:
        print(f"note: {args.runs} runs: the p90 column needs 20 or more to mean much")

    # With PYTHONDONTWRITEBYTECODE set, a missing .pyc would be recompiled on every start:
    # we would time the compiler, not the runtime.
    package = os.path.join(REPO, "container_kernel")
    if os.access(package, os.W_OK):
        compileall.compile_dir(package, quiet=1)
    else:
        print(f"note: cannot write to {package}: the .pyc files are used as they are")
    before = our_traces()
    workdir = tempfile.mkdtemp(prefix="ck-bench-")
    try:
        active, skipped = warm_up(runtimes(workdir))
        if "container-kernel" not in dict(active):
            raise SystemExit(f"bench: container-kernel cannot run: {skipped['container-kernel']}")
        print(f"{len(active)} runtimes x {args.runs} runs, round-robin "
              f"({platform.node()}, Linux {platform.release()}, {os.cpu_count()} CPUs)")
        rows = summarize(measure(active, args.runs))
        print_table(rows, skipped)
        prof = profile(min(args.runs, 10)) if args.profile else None
    finally:
        clean_runc()
        shutil.rmtree(workdir, ignore_errors=True)
    time.sleep(0.2)  # cgroup teardown of the last runs is asynchronous in runc
    left = ours(our_traces() - before)
    if left:
        print("LEFT BEHIND (by the benchmark, or by a container started and killed meanwhile):\n  "
              + "\n  ".join(left), file=sys.stderr)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": args.runs, "kernel": platform.release(),
                       "python": platform.python_version(), "cpus": os.cpu_count(),
                       "results": rows, "skipped": skipped, "profile": prof,
                       "left_behind": left}, f, indent=1)
        print(f"wrote {args.json}")
    return 1 if left else 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:  # the finally blocks above have cleaned up
        sys.exit(130)
