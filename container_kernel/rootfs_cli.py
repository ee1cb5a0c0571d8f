"""`container-kernel rootfs build | import | ls | rm | layers`: text -> a request, and printing.

The work is the runtime's: rootfs_build.py (debootstrap/mmdebstrap), image.py
(docker/OCI images), store.py (where they live), overlay.py (the upper layers).
"""

import os
import sys

from .runtime.errors import ContainerError, usage
from .runtime.options import PROG, scan

HELP = f"""usage: {PROG} rootfs build [--suite SUITE] [--variant minbase|buildd] [--package P]...
                      [--tool debootstrap|mmdebstrap] [--mirror URL] NAME|DIR
       {PROG} rootfs import FILE.tar|DIR NAME
       {PROG} rootfs ls [--json]
       {PROG} rootfs layers [--json]
       {PROG} rootfs rm NAME | rm --layer NAME

Root filesystems for `run --rootfs NAME` and `install --rootfs NAME`: the rootfs is the
read-only lower layer of an overlayfs; writes go to a per-container upper layer, or with
--persist LAYER to a named one kept in the store ({'{store}'}/layers).
build: a Debian tree from the mirror the host's apt sources name (default suite: the
host's), with python3, ipykernel, psutil and ipywidgets; a rerun with the same config
reuses it. import: a `docker save` or `docker export` tarball, or an OCI image layout."""


def cmd_rootfs(argv):
    if not argv or argv[0] in ("--help", "-h", "help"):
        from .runtime import store
        print(HELP.replace("{store}", store.base()))
        return 0 if argv else 2
    sub, rest = argv[0], argv[1:]
    handlers = {"build": _build, "import": _import, "ls": _ls, "layers": _layers, "rm": _rm}
    if sub not in handlers:
        raise usage(f"rootfs: unknown subcommand {sub!r}: use one of {', '.join(handlers)}")
    if "--help" in rest or "-h" in rest:
        return cmd_rootfs([])
    return handlers[sub](rest)


def _args(sub, argv, valued=(), flags=(), repeat=(), positional=1):
    try:
        pairs, rest = scan(argv, {v: "a value" for v in valued}, flags)
    except ContainerError as e:
        raise usage(f"rootfs {sub}: {e}") from None
    given = {}
    for name, value in pairs:
        if name in repeat:
            given.setdefault(name, []).append(value)
        elif name in given:
            raise usage(f"rootfs {sub}: {name} given twice")
        else:
            given[name] = value
    if len(rest) != positional:
        want = {0: "no argument", 1: "one argument", 2: "two arguments"}[positional]
        raise usage(f"rootfs {sub}: takes {want} after its options, got {len(rest)} "
                    f"(see {PROG} rootfs --help)")
    return given, rest


def _build(argv):
    from .runtime import rootfs_build
    given, (where,) = _args("build", argv, ("--suite", "--variant", "--package", "--tool", "--mirror"),
                            repeat=("--package",))
    build = rootfs_build.plan(where, suite=given.get("--suite"),
                              variant=given.get("--variant", "minbase"),
                              packages=given.get("--package", ()), tool=given.get("--tool"),
                              mirror=given.get("--mirror"))
    rootfs_build.run(build)
    return 0


def _import(argv):
    from .runtime import image
    _, (source, name) = _args("import", argv, positional=2)
    entry = image.import_image(source, name)
    print(f"rootfs {entry.name}: imported from {source} ({entry.config.get('format')}, "
          f"{len(entry.config.get('layers') or [])} layers): {entry.path}")
    return 0


def _ls(argv):
    from . import listing
    from .runtime import store
    from .runtime.parse import human_bytes
    given, _ = _args("ls", argv, flags=("--json",), positional=0)
    return listing.show(store.entries(), [
        ("NAME", 20, lambda e: e.name),
        ("KIND", 8, lambda e: e.config.get("kind", "?")),
        ("SIZE", -10, lambda e: human_bytes(e.config["size"]) if e.config.get("size") else "-"),
        ("OS", 34, lambda e: (e.config.get("os_release") or "-")[:33]),
        ("PATH", None, lambda e: e.path),
    ], "--json" in given, record=lambda e: dict(e.config, name=e.name, path=e.path))


def _layers(argv):
    from . import listing
    from .runtime import overlay
    from .runtime.parse import human_bytes
    given, _ = _args("layers", argv, flags=("--json",), positional=0)
    return listing.show(overlay.layers(), [
        ("LAYER", 20, lambda x: x.name),
        ("ROOTFS", 20, lambda x: x.rootfs),
        ("SIZE", -10, lambda x: human_bytes(x.size)),
        ("IN USE", 14, lambda x: x.holder or "-"),
        ("PATH", None, lambda x: x.path),
    ], "--json" in given)


def _rm(argv):
    from .runtime import overlay, store
    given, (name,) = _args("rm", argv, flags=("--layer",))
    if "--layer" in given:
        overlay.remove_layer(store.parse_name(name, "layer name"))
        print(f"removed layer {name}")
        return 0
    entry = store.find(name, "rootfs rm")
    if entry is None:
        raise usage(f"rootfs rm: {name} is not a rootfs of container-kernel: not removing it")
    users = _users_of(entry)
    if users:
        raise ContainerError(f"rootfs rm: {entry.name} is in use by container(s) "
                             f"{', '.join(users)}: stop them first")
    store.remove(entry.path)
    print(f"removed rootfs {entry.name} ({entry.path})", file=sys.stdout)
    left = [x.name for x in overlay.layers() if x.rootfs_path == os.path.realpath(entry.tree)]
    if left:
        print(f"  its layers {', '.join(left)} stay (rm --layer NAME removes one)")
    return 0


def _users_of(entry):
    """Ids of live containers running on this rootfs (their state.json says so). Here, not in
    overlay.py: the spec asks overlay.py, and host.py asks the spec."""
    from .runtime import host
    return [c["id"] for c in host.containers() if c.get("rootfs") in (entry.name, entry.path)]
