"""`container-kernel packages ls | rm KERNEL | reset KERNEL`: a kernelspec's package layer
(what %pip installed in its kernels), from the host. The work is runtime/package_layer.py's."""

from .runtime.errors import usage
from .runtime.options import PROG

HELP = f"""usage: {PROG} packages ls [--json]
       {PROG} packages rm KERNEL       remove KERNEL's package layer
       {PROG} packages reset KERNEL    empty it (the layer stays, with nothing installed)

%pip install in a container kernel installs into its kernelspec's package layer
({'{top}'}/KERNEL): a build sibling writes it, the kernel reads it, restarts keep it."""


def cmd_packages(argv):
    from .runtime import package_layer
    if not argv or argv[0] in ("--help", "-h", "help"):
        print(HELP.replace("{top}", package_layer.top()))
        return 0 if argv else 2
    sub, rest = argv[0], argv[1:]
    if sub == "ls":
        if rest not in ([], ["--json"]):
            raise usage(f"packages ls: takes only --json, got {rest[0]!r}")
        from . import listing
        from .runtime.parse import human_bytes
        return listing.show(package_layer.layers(), [
            ("KERNEL", 24, lambda x: x.name),
            ("SIZE", -10, lambda x: human_bytes(x.size)),
            ("IN USE", 24, lambda x: x.holder or "-"),
            ("PATH", None, lambda x: x.prefix),
        ], bool(rest))
    if sub in ("rm", "reset"):
        if len(rest) != 1 or rest[0].startswith("-"):
            raise usage(f"packages {sub}: takes one KERNEL (a kernelspec name), got {len(rest)} "
                        f"argument(s) (see {PROG} packages --help)")
        name = rest[0]
        package_layer.remove(name, keep=sub == "reset")
        print(f"{'emptied' if sub == 'reset' else 'removed'} the package layer of {name}")
        return 0
    raise usage(f"packages: unknown subcommand {sub!r}: use ls, rm or reset")
