"""`container-kernel install`: write a kernelspec, like `ipykernel install`; and read one back.

kernel.json's argv runs the container launcher itself, so a client that ignores
kernel provisioners (VS Code, older clients) still gets a contained kernel; its
metadata names our provisioner for the clients that use them. The argv is the
one source of truth for the kernel's options: install writes them there, and the
kernel launcher, the provisioner and %container_info's ceiling all read them
from there (read_argv). The limits in a kernelspec are the admin's ceiling:
%cgroup_set can move below it, never above.
"""

import json
import os
import sys
from collections import namedtuple

from ..runtime import spec as S
from ..runtime.errors import ContainerError, usage
from ..runtime.options import parse_options, scan

TEMPLATE = os.path.join(os.path.dirname(__file__), "resources")
DEFAULT_NAME = "container-python"
DEFAULT_DISPLAY = "Python 3 (container)"

# The `run` options a kernelspec may carry (parsed by the same spec.PARSERS).
OPTIONS = {"--memory": "memory", "--cpus": "cpus", "--pids": "pids", "--network": "network",
           "--rootfs": "rootfs", "--persist": "persist", "--hostname": "hostname",
           "--security-opt": "security_opt"}
REPEATED = ("--security-opt",)
# A kernelspec without a limit would let one cell take the host's memory or fork without
# bound: these ceilings apply unless given, and "max" lifts one.
LIMIT_OPTIONS = ("--memory", "--cpus", "--pids")
DEFAULT_PIDS = 1024
ALLOW_UNCONFINED = "--allow-unconfined"
# What jupyter_client substitutes; the launcher's own arguments after the options.
LAUNCHER_ARGS = ("--resource-dir", "-f")
# install's own options: (name, metavar, what it does, its default). The run options a
# kernelspec carries take their text from runtime/options.py, the table `run` uses.
WHERE = (("--user", "", "your own Jupyter dirs (~/.local/share/jupyter, ~/.jupyter)",
          "the system dirs as root, --user otherwise"),
         ("--sys-prefix", "", "this Python's prefix (sys.prefix)", "off"),
         ("--prefix", "DIR", "DIR/share/jupyter (and DIR/etc/jupyter for --default)", "off"))
OWN = (("--name", "NAME", "the kernelspec's name", DEFAULT_NAME),
       ("--display-name", "TEXT", "the name Jupyter shows",
        f'"{DEFAULT_DISPLAY}", plus the limits that differ from the defaults'),
       ("--default", "", ("make it the default kernel: MappingKernelManager.default_kernel_name "
                          "in jupyter_server_config.json of the --user / --sys-prefix / --prefix "
                          "config dir"), "off"),
       ("--allow-unconfined", "", ("start, loudly NOT contained, on hosts that cannot create "
                                   "containers (Docker, Binder)"), "off: the kernel refuses to start there"),
       ("--help", "", "show this help", ""))


def help_text():
    """install --help: every option and its default (the limits' defaults are this host's)."""
    import textwrap

    from ..runtime.options import RUN_OPTIONS
    run = {names[0]: (metavar, text) for names, metavar, _, _, text in RUN_OPTIONS}
    limits = dict(zip(LIMIT_OPTIONS, ("half this host's RAM", "all this host's CPUs", "")))
    lines = ["usage: container-kernel install [--user | --sys-prefix | --prefix DIR] [OPTIONS]", "",
             "Install the container kernel's kernelspec, like `ipykernel install`. Its limits are",
             "the ceiling %cgroup_set can never exceed; max lifts one.", ""]
    def row(name, metavar, text, default):
        default = f" (default: {default})" if default else ""
        lines.extend(textwrap.wrap(f"{text}{default}", 100, break_on_hyphens=False,
                                   initial_indent=f"  {(name + ' ' + metavar).strip():24} ",
                                   subsequent_indent=" " * 27))
    for option in WHERE:
        row(*option)
    for option in OPTIONS:
        metavar, text = run[option]
        if option in LIMIT_OPTIONS:
            value = default_limits()[option]
            row(option, metavar + "|max", text, value + (f", {limits[option]}" if limits[option] else ""))
        else:  # the run table's text says its default, if there is one
            row(option, metavar, text + (" (repeatable)" if option in REPEATED else ""),
                "" if "default" in text else "none")
    for option in OWN:
        row(*option)
    return "\n".join(lines)


class Request(namedtuple("Request", "where name display texts allow_unconfined default")):
    """install's argv, read: where (None or (flag, DIR or None)), the kernelspec's name and
    display name, its options [(option, text)] with the default limits filled in, and
    the two flags."""
    __slots__ = ()


def parse(argv):
    valued = {"--prefix": "DIR", "--name": "NAME", "--display-name": "TEXT",
              **{opt: "a value" for opt in OPTIONS}}
    try:
        pairs, rest = scan(argv, valued, flags=("--help", "-h", "--user", "--sys-prefix",
                                                "--allow-unconfined", "--default"))
    except ContainerError as e:
        raise usage(f"install: {e}") from None
    if rest:
        raise usage(f"install: unexpected argument {rest[0]!r} (see container-kernel install --help)")
    where, texts, seen = None, [], set()
    name, display = DEFAULT_NAME, None
    for arg, value in pairs:
        if arg in ("--help", "-h"):
            return None
        if arg not in REPEATED and arg in seen:
            raise usage(f"install: {arg} given twice")
        seen.add(arg)
        if arg in ("--user", "--sys-prefix", "--prefix"):
            if where:
                raise usage(f"install: {arg} and {where[0]} are exclusive")
            where = (arg, os.path.abspath(value) if value else None)
        elif arg in ("--allow-unconfined", "--default"):
            pass  # flags: read from seen
        elif arg == "--name":
            if not value or not all(c.isalnum() or c in "-._" for c in value) or not value.isascii():
                raise usage(f"install: --name: invalid kernel name {value!r}: use letters, digits, '-', '.', '_'")
            name = value.lower()
        elif arg == "--display-name":
            display = value
        else:
            texts.append((arg, value))
    texts = with_default_limits(texts)
    # Checked now with the launcher's own parsers: a bad value fails here, not at every start.
    options = {}
    for arg, value in texts:
        if arg in REPEATED:
            options.setdefault(OPTIONS[arg], []).append((arg, value))
        else:
            options[OPTIONS[arg]] = (arg, value)
    try:
        S.parse_options(options)
    except ContainerError as e:
        raise usage(f"install: {e}") from None
    return Request(where, name, display or display_name(texts), texts,
                   ALLOW_UNCONFINED in seen, "--default" in seen)


def with_default_limits(texts):
    """The limits a kernelspec carries: those given, the defaults for the others; "max"
    writes none."""
    given = dict((a, v) for a, v in texts if a in LIMIT_OPTIONS)
    defaults = default_limits()
    out = [(a, v) for a, v in texts if a not in LIMIT_OPTIONS]
    for arg in LIMIT_OPTIONS:
        value = given.get(arg, defaults[arg])
        if value.strip().lower() != "max":
            out.append((arg, value))
    return out


def default_limits():
    """{option: text} of the ceilings a kernelspec gets when none is given."""
    return {"--memory": f"{host_memory() // 2 >> 20}M", "--cpus": str(os.cpu_count() or 1),
            "--pids": str(DEFAULT_PIDS)}


def display_name(texts):
    """DEFAULT_DISPLAY with the limits that differ from the default ceilings, so that a
    kernel picker tells two container kernels apart: "Python 3 (container, 512 MiB)"."""
    given, defaults, parts = dict(texts), default_limits(), []
    shown = {"--memory": (S.parse_memory, S.human_bytes, "unlimited memory"),
             "--cpus": (S.parse_cpus, lambda n: f"{n:g} CPU{'' if n == 1 else 's'}", "unlimited CPUs"),
             "--pids": (S.parse_pids, lambda n: f"{n} pids", "unlimited pids")}
    for arg, (parse_, show, unlimited) in shown.items():
        if arg not in given:  # "max" wrote none
            parts.append(unlimited)
        elif parse_(given[arg]) != parse_(defaults[arg]):
            parts.append(show(parse_(given[arg])))
    return DEFAULT_DISPLAY[:-1] + "".join(", " + p for p in parts) + ")"


def host_memory():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise ContainerError("install: /proc/meminfo has no MemTotal")


def ceiling_line(texts):
    """What install prints: the ceiling it wrote, and how to lift one."""
    given = dict(texts)
    parts = [f"{arg[2:]} {given[arg]}" if arg in given else f"{arg[2:]} unlimited"
             for arg in LIMIT_OPTIONS]
    return f"ceiling: {', '.join(parts)} (lift one with --memory max, --cpus max or --pids max)"


def kernel_json(display, texts, allow):
    with open(os.path.join(TEMPLATE, "kernel.json")) as f:
        spec = json.load(f)
    options = [x for arg, value in texts for x in (arg, value)]
    if allow:
        options.append(ALLOW_UNCONFINED)
    argv = []
    for a in spec["argv"]:
        argv += [sys.executable] if a == "@PYTHON@" else options if a == "@OPTIONS@" else [a]
    spec["argv"] = argv
    spec["display_name"] = display
    return spec


class KernelArgs(namedtuple("KernelArgs", "options allow_unconfined connection_file resource_dir "
                            "ipykernel_args")):
    """The kernel launcher's argv, read: options ({field: (option, text)}, as spec.build
    takes them), allow_unconfined, its own -f / --resource-dir (None if absent), and what
    follows them, for ipykernel."""
    __slots__ = ()


def read_argv(argv):
    """`kernel [OPTIONS] [--allow-unconfined] --resource-dir DIR -f FILE [ARGS...]` -> KernelArgs.

    argv is what follows "kernel" in kernel.json's argv (the template, {connection_file}
    unsubstituted, for the provisioner; the real one for the launcher). jupyter_client
    appends its extra arguments (`jupyter run FILE`, extra_arguments) after ours: they
    are ipykernel's, passed on untouched, and a bad one gets ipykernel's own error."""
    ours, theirs = argv, []
    if "-f" in argv:
        i = argv.index("-f")
        ours, theirs = argv[:i + 2], argv[i + 2:]
    try:
        options, flags, extra, rest = parse_options(ours, flags=(ALLOW_UNCONFINED,),
                                                    extras=LAUNCHER_ARGS)
    except ContainerError as e:
        raise usage(f"kernel: {e}") from None
    return KernelArgs(options, ALLOW_UNCONFINED in flags, extra.get("-f"), extra.get("--resource-dir"),
                      tuple(rest) + tuple(theirs))


def kernel_argv(argv):
    """kernel.json's whole argv -> what follows its "kernel" word."""
    for i in range(len(argv) - 1):
        if argv[i:i + 2] == ["container_kernel", "kernel"]:
            return argv[i + 2:]
    raise usage(f"not a container-kernel kernelspec argv: {' '.join(argv)[:120]!r}")


def install(argv):
    request = parse(argv)
    if request is None:
        print(help_text())
        return None
    where, name, display, texts, allow = request[:5]
    import shutil
    import tempfile
    from jupyter_client.kernelspec import KernelSpecManager
    with tempfile.TemporaryDirectory(prefix="container-kernel-spec-") as tmp:
        for logo in ("logo-32x32.png", "logo-64x64.png"):
            shutil.copy(os.path.join(TEMPLATE, logo), tmp)
        with open(os.path.join(tmp, "kernel.json"), "w") as f:
            json.dump(kernel_json(display, texts, allow), f, indent=1)
        # install_kernel_spec copies modes: a 0700 temp dir would hide a system-wide
        # kernelspec from every user but root.
        os.chmod(tmp, 0o755)
        for name_ in os.listdir(tmp):
            os.chmod(os.path.join(tmp, name_), 0o644)
        kw = {"user": where and where[0] == "--user",
              "prefix": sys.prefix if where and where[0] == "--sys-prefix" else where and where[1]}
        if not where and os.geteuid() != 0:
            kw["user"] = True  # like ipykernel: a user cannot write the system dir
        try:
            dest = KernelSpecManager().install_kernel_spec(tmp, name, replace=True, **kw)
        except OSError as e:
            raise usage(f"install: cannot write the kernelspec: {e.strerror} ({e.filename}); "
                        "try --user or --sys-prefix")
    return dest, request


def cmd_install(argv):
    installed = install(argv)
    if installed:
        dest, request = installed
        print(f"Installed kernelspec {os.path.basename(dest)} in {dest}, shown as {request.display!r}")
        print(f"  {ceiling_line(request.texts)}")
        if request.default:
            from . import jupyter_config
            path = jupyter_config.set_default(request.where, request.name)
            print(f"Default kernel {request.name}: wrote {jupyter_config.SECTION}.{jupyter_config.KEY} "
                  f"in {path}")
            shadow = jupyter_config.shadowed_by(path, request.name)
            if shadow:
                print(f"  note: {shadow[0]} comes first in Jupyter's config path and names "
                      f"{shadow[1]!r}: that one wins")
    return 0
