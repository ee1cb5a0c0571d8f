"""The options of `container-kernel run`, which kernel.json's argv also carries.

One table, two front ends: the CLI (`run`) and the kernel launcher (`kernel`) scan
argv with it into the {field: (option, text)} that spec.build() takes. It parses
nothing itself (spec.PARSERS does, naming the option), and it is a small table
instead of argparse, whose import costs ~6 ms of a ~25 ms start.
"""

from .errors import usage

PROG = "container-kernel"

# name(s), metavar, spec field (spec.PARSERS parses it), repeatable, help
RUN_OPTIONS = (
    (("--memory", "-m"), "SIZE", "memory", False,
     "memory limit, docker units (e.g. 100M, 1.5g)"),
    (("--memory-swap",), "SIZE", "memory_swap", False,
     "memory+swap total (default: same as --memory: no swap; -1: unlimited swap)"),
    (("--cpus",), "N", "cpus", False, "CPU quota in cores (e.g. 0.5)"),
    (("--pids", "--pids-limit"), "N", "pids", False, "maximum number of processes"),
    (("--io-read-bps",), "DEV:RATE", "io_read_bps", True,
     "read rate limit on a block device (e.g. /dev/sda:10M)"),
    (("--io-write-bps",), "DEV:RATE", "io_write_bps", True,
     "write rate limit on a block device (e.g. 8:0:10M)"),
    (("--network", "--net"), "MODE", "network", False,
     "none (default: only lo, in a new namespace), host, egress (out through user-mode NAT, "
     "slirp4netns; the host's loopback and addresses unreachable), container:ID (join its "
     "namespace) or private:NAME (a namespace shared by the containers given the same NAME)"),
    (("--userns",), "MODE", "userns", False,
     "host (default for root) or auto: a user namespace, root inside = an unprivileged "
     "uid outside (always on when rootless)"),
    (("--cgroup-parent",), "ID", "cgroup_parent", False,
     "nest the cgroup in container ID's: its limits hold for both"),
    (("--state-file",), "PATH", "state_file", False,
     "write the started container's state (JSON, as ps --json) to PATH"),
    (("--rootfs",), "host|NAME|DIR", "rootfs", False,
     "host (default: read-only host system dirs), a NAME of `container-kernel rootfs ls` "
     "(an overlay: writes vanish with the container), or a prepared root filesystem"),
    (("--persist",), "LAYER", "persist", False,
     "with --rootfs NAME: keep the overlay's upper layer LAYER across runs (one writer at a time)"),
    (("--hostname", "-h"), "NAME", "hostname", False,
     "hostname inside (default: the container id)"),
    (("--volume", "-v"), "SRC:DST[:ro]", "volumes", True, "bind a host path"),
    (("--env", "-e"), "NAME=VALUE", "env", True, "set an environment variable"),
    (("--workdir", "-w"), "DIR", "cwd", False, "working directory inside (default /)"),
    (("--cap-add",), "CAP", "cap_add", True, "keep a capability beyond docker's default set"),
    (("--cap-drop",), "CAP", "cap_drop", True, "drop a capability (ALL: every one)"),
    (("--security-opt",), "OPT", "security_opt", True,
     "seccomp=unconfined|PROFILE.json, no-new-privileges=false, systempaths=unconfined "
     "(default: Docker's seccomp profile and no namespaces inside; no_new_privs on; "
     "Docker's masked and read-only /proc and /sys paths)"),
    (("--name",), "ID", "id", False, "container id (default: 12 random hex digits)"),
)
RUN_FLAGS = (("--print-plan", "print the mount steps and namespaces, create nothing"),
             ("--interactive, -i", "keep stdin: the host's stdin passes in (default /dev/null)"),
             ("--user", "rootless only: keep your own uid/gid inside (default: root inside)"),
             ("--no-init", "the command is PID 1 (default: a reaping init is PID 1, as --init)"),
             ("--help", "show this help"))


def run_help():
    lines = [f"usage: {PROG} run [OPTIONS] [--] COMMAND [ARG...]", "",
             "Run COMMAND in a new container (PID, mount, UTS, IPC, network and cgroup",
             "namespaces; pivot_root into its rootfs; cgroup limits), like docker run.", ""]
    for names, metavar, _, rep, text in RUN_OPTIONS:
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
            if eq:  # `--user=no` must not read as --user
                raise usage(f"{name} takes no value, got {arg!r}")
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


def parse_options(argv, flags=("--help", "--print-plan", "--user", "--interactive", "-i", "--no-init"),
                  extras=()):
    """Scan RUN_OPTIONS (plus extra flags and extra valued options) up to the command.

    Returns (options {field: (option, text)}, a list of them for a repeatable
    option, as spec.build() takes them; the set of flags; {extra: text}; the command).
    Values are not parsed here: spec.parse_options() does, naming the option.
    """
    by_name = {n: o for o in RUN_OPTIONS for n in o[0]}
    valued = {n: o[1] for n, o in by_name.items()}
    valued.update((e, "a value") for e in extras)
    pairs, command = scan(argv, valued, flags)
    options, seen, extra = {}, set(), {}
    for name, value in pairs:
        if value is None:
            seen.add(name)
        elif name in extras:
            extra[name] = value
        else:
            names, _, field, repeat, _ = by_name[name]
            if repeat:
                options.setdefault(field, []).append((names[0], value))
            elif field in options:
                raise usage(f"{names[0]} given twice")
            else:
                options[field] = (names[0], value)
    return options, seen, extra, command
