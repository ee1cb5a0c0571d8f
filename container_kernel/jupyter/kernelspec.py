"""`container-kernel install`: write a kernelspec, like `ipykernel install`.

kernel.json's argv runs the container launcher itself, so a client that ignores
kernel provisioners (VS Code, older clients) still gets a contained kernel; its
metadata names our provisioner for the clients that use them. The limits in a
kernelspec are the admin's ceiling: %cgroup_set can move below it, never above.
"""

import json
import os
import shutil
import sys
import tempfile

from ..runtime import spec as S
from ..runtime.errors import ContainerError, usage

TEMPLATE = os.path.join(os.path.dirname(__file__), "kernelspec")
DEFAULT_NAME = "container-python"
DEFAULT_DISPLAY = "Python 3 (container)"

# option -> (metadata key, parser); the same parsers as `container-kernel run`.
LIMITS = {
    "--memory": ("memory", S.parse_memory),
    "--cpus": ("cpus", S.parse_cpus),
    "--pids": ("pids", S.parse_pids),
    "--network": ("network", S.parse_network),
    "--rootfs": ("rootfs", S.parse_rootfs),
    "--hostname": ("hostname", S.parse_hostname),
}
HELP = """usage: container-kernel install [--user | --sys-prefix | --prefix DIR] [--name NAME]
         [--display-name TEXT] [--memory SIZE] [--cpus N] [--pids N] [--network none|host]
         [--rootfs host|DIR] [--hostname H] [--allow-unconfined]

Install the container kernel's kernelspec (default name container-python, shown as
"Python 3 (container)"). The limits are the ceiling %cgroup_set can never exceed.
--allow-unconfined lets the kernel start, loudly NOT contained, on hosts that cannot
create containers (Docker, Binder); without it the kernel refuses to start there."""


def parse(argv):
    from ..cli import scan
    valued = {"--prefix": "DIR", "--name": "NAME", "--display-name": "TEXT",
              **{opt: "a value" for opt in LIMITS}}
    try:
        pairs, rest = scan(argv, valued, flags=("--help", "-h", "--user", "--sys-prefix",
                                                "--allow-unconfined"))
    except ContainerError as e:
        raise usage(f"install: {e}") from None
    if rest:
        raise usage(f"install: unexpected argument {rest[0]!r} (see container-kernel install --help)")
    where, opts, texts = None, {}, {}
    name, display, allow = DEFAULT_NAME, None, False
    for arg, value in pairs:
        if arg in ("--help", "-h"):
            return None
        if arg in ("--user", "--sys-prefix", "--prefix"):
            if where:
                raise usage(f"install: {arg} and {where[0]} are exclusive")
            where = (arg, os.path.abspath(value) if value else None)
        elif arg == "--allow-unconfined":
            allow = True
        elif arg == "--name":
            if not value or not all(c.isalnum() or c in "-._" for c in value) or not value.isascii():
                raise usage(f"install: --name: invalid kernel name {value!r}: use letters, digits, '-', '.', '_'")
            name = value.lower()
        elif arg == "--display-name":
            display = value
        else:
            key, parser = LIMITS[arg]
            opts[key] = parser(value, arg)
            texts[arg] = value
    return where, name, display or DEFAULT_DISPLAY, opts, texts, allow


def kernel_json(display, opts, texts, allow):
    with open(os.path.join(TEMPLATE, "kernel.json")) as f:
        spec = json.load(f)
    options = [x for arg, value in texts.items() for x in (arg, value)]
    if allow:
        options.append("--allow-unconfined")
    argv = []
    for a in spec["argv"]:
        argv += [sys.executable] if a == "@PYTHON@" else options if a == "@OPTIONS@" else [a]
    spec["argv"] = argv
    spec["display_name"] = display
    spec["metadata"]["container_kernel"] = {"ceiling": opts, "allow_unconfined": allow}
    return spec


def install(argv):
    parsed = parse(argv)
    if parsed is None:
        print(HELP)
        return None
    where, name, display, opts, texts, allow = parsed
    from jupyter_client.kernelspec import KernelSpecManager
    with tempfile.TemporaryDirectory(prefix="container-kernel-spec-") as tmp:
        for logo in ("logo-32x32.png", "logo-64x64.png"):
            shutil.copy(os.path.join(TEMPLATE, logo), tmp)
        with open(os.path.join(tmp, "kernel.json"), "w") as f:
            json.dump(kernel_json(display, opts, texts, allow), f, indent=1)
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
    return dest


def cmd_install(argv):
    dest = install(argv)
    if dest:
        print(f"Installed kernelspec {os.path.basename(dest)} in {dest}")
    return 0
