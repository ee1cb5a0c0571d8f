"""container-kernel run | install | doctor | ps

`run` is on the start path of every container, so it parses its options from a
small table instead of argparse (whose import costs ~6 ms of a ~25 ms budget),
and imports nothing it does not use. Each option's value goes through the
spec's parser: one line of error, exit 2, nothing created.
"""

import os
import sys

from .runtime.errors import USAGE, ContainerError, usage

PROG = "container-kernel"

# name(s), metavar, spec field, parser name in runtime.spec, repeatable, help
RUN_OPTIONS = (
    (("--memory", "-m"), "SIZE", "memory", "parse_memory", False,
     "memory limit, docker units (e.g. 100M, 1.5g)"),
    (("--memory-swap",), "SIZE", "memory_swap", None, False,
     "memory+swap total (default: same as --memory: no swap; -1: unlimited swap)"),
    (("--cpus",), "N", "cpus", "parse_cpus", False, "CPU quota in cores (e.g. 0.5)"),
    (("--pids", "--pids-limit"), "N", "pids", "parse_pids", False, "maximum number of processes"),
    (("--io-read-bps",), "DEV:RATE", "io_read_bps", None, True,
     "read rate limit on a block device (e.g. /dev/sda:10M)"),
    (("--io-write-bps",), "DEV:RATE", "io_write_bps", None, True,
     "write rate limit on a block device (e.g. 8:0:10M)"),
    (("--network", "--net"), "MODE", "network", "parse_network", False,
     "none (default: only lo, in a new namespace) or host"),
    (("--rootfs",), "host|DIR", "rootfs", "parse_rootfs", False,
     "host (default: read-only host system dirs) or a prepared root filesystem"),
    (("--hostname", "-h"), "NAME", "hostname", "parse_hostname", False,
     "hostname inside (default: the container id)"),
    (("--volume", "-v"), "SRC:DST[:ro]", "volumes", "parse_volume", True, "bind a host path"),
    (("--env", "-e"), "NAME=VALUE", "env", "parse_env", True, "set an environment variable"),
    (("--workdir", "-w"), "DIR", "cwd", None, False, "working directory inside (default /)"),
    (("--cap-add",), "CAP", "cap_add", None, True, "keep a capability beyond docker's default set"),
    (("--cap-drop",), "CAP", "cap_drop", None, True, "drop a capability (ALL: every one)"),
    (("--name",), "ID", "id", None, False, "container id (default: 12 random hex digits)"),
)
RUN_FLAGS = (("--print-plan", "print the mount steps and namespaces, create nothing"),
             ("--user", "rootless only: keep your own uid/gid inside (default: root inside)"),
             ("--help", "show this help"))


def run_help():
    lines = [f"usage: {PROG} run [OPTIONS] [--] COMMAND [ARG...]", "",
             "Run COMMAND in a new container (PID, mount, UTS, IPC, network and cgroup",
             "namespaces; pivot_root into its rootfs; cgroup limits), like docker run.", ""]
    for names, metavar, _, _, rep, text in RUN_OPTIONS:
        lines.append(f"  {', '.join(names) + ' ' + metavar:28} {text}{' (repeatable)' if rep else ''}")
    for name, text in RUN_FLAGS:
        lines.append(f"  {name:28} {text}")
    return "\n".join(lines)


def scan(argv, valued, flags=()):
    """Split argv into [(option, value or None)] and the rest (the command, after `--`
    or the first word that is not an option). `--opt value` and `--opt=value` alike."""
    pairs, i = [], 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.partition("=")
        if name in flags:
            pairs.append((name, None))
            i += 1
            continue
        if name not in valued:
            raise usage(f"unknown option {name!r} (see {PROG} --help)")
        if not eq:
            i += 1
            if i >= len(argv):
                raise usage(f"{name} needs a value ({valued[name]})")
            value = argv[i]
        pairs.append((name, value))
        i += 1
    return pairs, argv[i:]


def parse_options(argv, flags=("--help", "--print-plan", "--user"), extras=()):
    """Scan RUN_OPTIONS (plus extra flags and extra valued options) up to the command.

    Returns (values {field: (option, text, parsed)}, set of flags, {extra: text}, command).
    """
    from .runtime import spec as S

    by_name = {n: o for o in RUN_OPTIONS for n in o[0]}
    valued = {n: o[1] for n, o in by_name.items()}
    valued.update((e, "a value") for e in extras)
    pairs, command = scan(argv, valued, flags)
    values, seen, extra = {}, set(), {}
    for name, value in pairs:
        if value is None:
            seen.add(name)
        elif name in extras:
            extra[name] = value
        else:
            names, _, field, parser, repeat, _ = by_name[name]
            parsed = value if parser is None else getattr(S, parser)(value, names[0])
            if repeat:
                values.setdefault(field, []).append((names[0], value, parsed))
            elif field in values:
                raise usage(f"{names[0]} given twice")
            else:
                values[field] = (names[0], value, parsed)
    return values, seen, extra, command


def parse_run(argv):
    """argv after 'run' -> (Spec, flags). Raises ContainerError(exit 2) on bad input."""
    try:
        values, flags, _, command = parse_options(argv)
    except ContainerError as e:
        raise usage(f"run: {e}") from None
    if "--help" in flags:
        return None, flags
    if not command:
        raise usage(f"run: no command given: {PROG} run [OPTIONS] [--] COMMAND [ARG...]")
    return build_spec(values, command, keep_id="--user" in flags), flags


def build_spec(values, command, volumes=(), env=(), cwd=None, cid=None, keep_id=False):
    """The Spec for these parsed options; the Jupyter launcher adds volumes, env, cwd, id."""
    from .runtime import spec as S

    def get(field, default=None):
        return values[field][2] if field in values else default

    memory = get("memory")
    swap = memory  # docker's default would be 2x; the same value means swap is no escape
    if "memory_swap" in values:
        swap = S.parse_memory_swap(values["memory_swap"][1], memory)
    io_read = tuple(S.parse_io_limit(v, n) for n, v, _ in values.get("io_read_bps", ()))
    io_write = tuple(S.parse_io_limit(v, n) for n, v, _ in values.get("io_write_bps", ()))
    cid = cid or get("id") or S.new_id()
    if not (cid.isascii() and cid.replace("-", "").replace("_", "").isalnum() and len(cid) <= 64):
        raise usage(f"run: --name: invalid id {cid!r}: use letters, digits, '-' and '_'")
    hostname = get("hostname") or cid[:12]
    rootless = os.geteuid() != 0
    namespaces = list(S.NAMESPACES[:6])
    if get("network", "none") == "host":
        namespaces.remove("net")
    if rootless:
        namespaces.append("user")
    cwd = cwd or get("cwd", "/")
    if not cwd.startswith("/"):
        raise usage(f"run: --workdir: {cwd!r} must be an absolute path")
    uid = gid = 0
    if keep_id:
        if not rootless:
            raise usage("run: --user keeps a user's own uid in a rootless container; as root, "
                        "run container-kernel as that user instead")
        uid, gid = os.geteuid(), os.getegid()
    home = "/root" if uid == 0 else "/home/user"
    env = S.default_env(hostname, home, [p for _, _, p in values.get("env", ())] + list(env))
    from .runtime import capabilities as C
    caps = C.kept(C.parse([v for _, v, _ in values.get("cap_add", ())], "--cap-add"),
                  C.parse([v for _, v, _ in values.get("cap_drop", ())], "--cap-drop"))
    process = S.Process(tuple(command), env, cwd, uid, gid, (), caps)
    spec = S.Spec(
        id=cid, hostname=hostname, rootfs=get("rootfs", "host"), namespaces=tuple(namespaces),
        network=get("network", "none"),
        volumes=tuple(p for _, _, p in values.get("volumes", ())) + tuple(volumes),
        resources=S.Resources(memory, swap, get("cpus"), get("pids"), io_read, io_write),
        process=process, rootless=rootless, run_base=S.default_run_base(rootless))
    S.check_command(spec)
    return spec


def cmd_run(argv, exit_now=False):
    spec, flags = parse_run(argv)
    if spec is None:
        print(run_help())
        return 0
    if "--print-plan" in flags:
        from .runtime import mounts
        root = os.path.join(spec.run_dir, "root")
        print("namespaces:", " ".join(spec.namespaces))
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


# command -> (module, function); a command's module is imported only when it runs.
COMMANDS = {
    "run": (None, "cmd_run"),
    "doctor": ("container_kernel.runtime.tools", "cmd_doctor"),
    "ps": ("container_kernel.runtime.tools", "cmd_ps"),
    "install": ("container_kernel.jupyter.kernelspec", "cmd_install"),
    "kernel": ("container_kernel.jupyter.launch", "cmd_kernel"),
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
        if module is None:  # run: exit the process itself when it is the program
            return cmd_run(argv[1:], exit_now=as_program)
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
