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
        if not command:
            raise usage(f"no command given: {PROG} run [OPTIONS] [--] COMMAND [ARG...]")
        from .runtime import spec
        return spec.build(options, command, keep_id="--user" in flags,
                          interactive=bool(flags & {"--interactive", "-i"})), flags
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
    import json
    from .runtime import host
    f = host.probe_host()
    feats = host.features(f)
    if argv == ["--json"]:
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
    if _json_or_help("ps", argv, "Running containers, their host PIDs, limits and usage.") == "help":
        return 0
    import json
    import time
    from .runtime import host
    from .runtime.spec import human_bytes
    items = host.containers()
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


# command -> (module, function); a command's module is imported only when it runs.
COMMANDS = {
    "run": (None, "cmd_run"),
    "doctor": (None, "cmd_doctor"),
    "ps": (None, "cmd_ps"),
    "install": ("container_kernel.kernel.kernelspec", "cmd_install"),
    "kernel": ("container_kernel.kernel.launch", "cmd_kernel"),
}


def main(argv=None):
    as_program = argv is None
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(f"usage: {PROG} {{{'|'.join(COMMANDS)}}} ...   ({PROG} COMMAND --help for more)")
        return 0 if argv else USAGE
    if argv[0] not in COMMANDS:
        print(f"{PROG}: unknown command {argv[0]!r}: use one of {', '.join(COMMANDS)}",
              file=sys.stderr)
        return USAGE
    module, function = COMMANDS[argv[0]]
    try:
        if function == "cmd_run":  # run: exit the process itself when it is the program
            return cmd_run(argv[1:], exit_now=as_program)
        if module is None:
            return globals()[function](argv[1:])
        import importlib
        return getattr(importlib.import_module(module), function)(argv[1:])
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
