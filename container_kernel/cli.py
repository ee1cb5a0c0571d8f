"""container-kernel run | install | kernel | doctor | ps: text -> options, and printing.

`run` is on the start path of every container, so it imports nothing it does not
use: its options come from one small table (runtime/options.py) and become a
Spec in runtime/spec.py, which decides every default and gives one line of error
(exit 2, nothing created). `install` and `kernel` are the Jupyter side
(kernel/); doctor and ps print what runtime/host.py finds.
"""

import os
import sys

from .runtime.errors import USAGE, ContainerError, usage
from .runtime.options import PROG, parse_options, run_help


def parse_run(argv):
    """argv after 'run' -> (Spec, flags). Raises ContainerError(exit 2) on bad input."""
    try:
        options, flags, _, command = parse_options(argv)
        if "--help" in flags:
            return None, flags
        if not command:  # an imported image's Cmd, as docker runs it
            from .runtime import spec as S
            command = list(S.image_command(options))
        if not command:
            raise usage(f"no command given: {PROG} run [OPTIONS] [--] COMMAND [ARG...]")
        from .runtime import spec
        return spec.build(options, command, keep_id="--user" in flags,
                          interactive=bool(flags & {"--interactive", "-i"}),
                          no_init="--no-init" in flags), flags
    except ContainerError as e:
        if e.exit_code != USAGE:
            raise
        raise usage(f"run: {e}") from None


def cmd_run(argv, exit_now=False):
    spec, flags = parse_run(argv)
    if spec is None:
        print(run_help())
        return 0
    if "--print-plan" in flags:
        from .runtime import limits, mounts
        root = os.path.join(spec.run_dir, "root")
        sec = spec.security
        print("namespaces:", " ".join(spec.namespaces))
        print(limits.describe(limits.plan(spec)))
        print(f"security: seccomp {sec.seccomp.name() if sec.seccomp else 'unconfined'}, "
              f"no_new_privs {'on' if sec.no_new_privs else 'off'}, "
              f"capabilities {', '.join(sec.capabilities or ()) or 'none'}")
        print(mounts.describe(mounts.plan(spec, root, mounts.host_cgroup_mounts())))
        return 0
    from .runtime import launcher
    code = launcher.run(spec)
    if exit_now:
        # Nothing is left to clean: skip the interpreter's teardown (~3 ms of a ~30 ms run).
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


# ---- doctor and ps: what runtime/host.py finds, printed -------------------------------------

def _flags(command, argv, about, extra=()):
    """doctor, ps and gc take flags only: --json (and ps --all). The set given, or None
    after printing --help. Anything else, or a flag twice, is one line of error."""
    allowed = ("--json",) + extra
    if "--help" in argv:
        print(f"usage: container-kernel {command} [{'] ['.join(allowed)}]\n\n{about}")
        return None
    for i, arg in enumerate(argv):
        if arg not in allowed or arg in argv[:i]:
            raise usage(f"{command}: unknown argument {arg!r}: use {' or '.join(allowed)} or nothing"
                        if arg not in allowed else f"{command}: {arg} given twice")
    return set(argv)


def cmd_doctor(argv):
    flags = _flags("doctor", argv, "What this host allows, tried in throw-away processes.")
    if flags is None:
        return 0
    import json
    from .runtime import host
    f = host.probe_host()
    feats = host.features(f)
    if "--json" in flags:
        json.dump({"host": f._asdict(), "features": [x._asdict() for x in feats]}, sys.stdout, indent=1)
        print()
        return 0
    mode = f"v{f.cgroup_version}" if f.cgroup_version else "none"
    if f.cgroup_hybrid:
        mode += " (hybrid: v1 controllers, cgroup2 at /sys/fs/cgroup/unified without them)"
    print(f"user:          {'root' if f.root else 'uid ' + str(f.uid)}")
    print(f"kernel:        {f.kernel}   python: {f.python}")
    print(f"cgroups:       {mode}")
    print(f"controllers:   {', '.join(f.cgroup_controllers) or 'none'}")
    print(f"user ns:       {'allowed' if f.userns_error is None else 'refused: ' + f.userns_error}"
          f" (max_user_namespaces={f.max_user_namespaces})")
    print(f"overlayfs:     {'yes' if f.overlayfs else 'no'}")
    print(f"pivot_root:    {'works' if f.pivot_root_error is None else 'fails: ' + f.pivot_root_error}")
    print(f"newuidmap:     {'yes' if f.newuidmap else 'no (single-id user namespace mapping only)'}")
    print(f"in container:  {'yes' if f.in_container else 'no'}")
    print("\nHere container-kernel will:")
    for feature, on, why in feats:
        print(f"  [{'on ' if on else 'off'}] {feature}: {why}")
    return 0


def cmd_ps(argv):
    flags = _flags("ps", argv, "Running containers, their host PIDs, limits and usage; with --all "
                   "also what dead ones left (container-kernel gc removes it).", ("--all",))
    if flags is None:
        return 0
    import json
    import time
    from .runtime import host, rundir
    from .runtime.spec import default_run_base, human_bytes
    items = host.containers()
    left = rundir.stale(default_run_base(os.geteuid() != 0)) if "--all" in flags else []
    if "--json" in flags:
        json.dump(items + [dict(s._asdict(), status="stale") for s in left], sys.stdout, indent=1)
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
    for s in left:
        print(f"{s.id:14}{'-':>9}  stale {s.kind}: {s.why} ({s.path})")
    return 0


def cmd_gc(argv):
    flags = _flags("gc", argv, "Remove what dead containers left: their run dirs and, as root, "
                   "their cgroups. Only container-kernel's own named objects are touched.")
    if flags is None:
        return 0
    from .runtime import rundir
    from .runtime.spec import default_run_base
    base = default_run_base(os.geteuid() != 0)
    found = rundir.stale(base)
    removed = set(rundir.collect_stale(base))
    if "--json" in flags:
        import json
        print(json.dumps({"removed": sorted(removed),
                          "left": [s._asdict() for s in found if s.id not in removed]}))
        return 0
    for s in found:
        print(f"{'removed' if s.id in removed else 'could not remove'} stale {s.kind} {s.path}")
    if not found:
        print("nothing stale")
    return 0 if all(s.id in removed for s in found) else 1


# command -> its function here, or "module:function" elsewhere, imported only when it runs
# (the kernel's launcher is on every kernel's start path: it imports nothing it does not use).
COMMANDS = {
    "run": cmd_run,
    "doctor": cmd_doctor,
    "ps": cmd_ps,
    "gc": cmd_gc,
    "install": "container_kernel.kernel.kernelspec:cmd_install",
    "kernel": "container_kernel.kernel.launch:cmd_kernel",
    "rootfs": "container_kernel.rootfs_cli:cmd_rootfs",
    "packages": "container_kernel.packages_cli:cmd_packages",
}


def main(argv=None):
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage: {PROG} {{{'|'.join(COMMANDS)}}} ...   ({PROG} COMMAND --help for more)\n"
              f"       {PROG} --version")
        return 0 if argv else USAGE
    if argv[0] == "--version":
        if argv[1:]:
            print(f"{PROG}: --version takes no arguments, got {argv[1]!r}", file=sys.stderr)
            return USAGE
        from . import __version__
        print(f"{PROG} {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(f"{PROG}: unknown command {argv[0]!r}: use one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return USAGE
    command = COMMANDS[argv[0]]
    try:
        if command is cmd_run:  # run: exit the process itself when it is the program
            return cmd_run(argv[1:], exit_now=as_program)
        if isinstance(command, str):
            import importlib
            module, _, name = command.partition(":")
            command = getattr(importlib.import_module(module), name)
        return command(argv[1:])
    except ContainerError as e:
        print(f"{PROG}: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `container-kernel ps | head`
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
