"""The container's root filesystem, seen from the host before anything is mounted.

spec.RootFS says what becomes /: the host's system dirs (bound read-only by the
mount plan) or a prepared tree. Here the launcher looks into it as the container
will, to refuse a command that is not there before it creates anything.
"""

import os

from .errors import NOT_FOUND, ContainerError
from .spec import DEFAULT_PATH


def check_command(spec):
    """Find the command in the container's PATH before anything is created.

    Docker answers 127 for a command that is not there; so do we, but from the
    host side, so a typo creates no cgroup and no namespace.
    """
    cmd = spec.process.args[0]
    roots = [""] if spec.rootfs.kind == "host" else [spec.rootfs.path]
    if spec.rootfs.layer:  # a --persist layer may hold what an apt-get install put there
        from .overlay import dirs
        roots.insert(0, dirs(spec)[0])
    root = roots[-1]
    env = dict(spec.process.env)
    dirs = [""] if "/" in cmd else env.get("PATH", DEFAULT_PATH).split(":")
    for d in dirs:
        path = os.path.join(d, cmd) if d else (cmd if cmd.startswith("/") else
                                               os.path.join(spec.process.cwd, cmd))
        for top in roots:
            found = _resolve_in(top, path, spec)
            if found and os.path.isfile(found) and os.access(found, os.X_OK):
                return
    where = "the host rootfs" if not root else repr(root)
    raise ContainerError(f"command {cmd!r} not found in {where} (PATH={env.get('PATH', DEFAULT_PATH)})",
                         NOT_FOUND)


def _resolve_in(root, path, spec):
    """path as the container will see it -> host path, following links inside root."""
    for v in spec.volumes:
        if path == v.target or path.startswith(v.target + "/"):
            return v.source + path[len(v.target):]
    host = root + path
    for _ in range(40):
        if not os.path.islink(host):
            return host if os.path.exists(host) else None
        target = os.readlink(host)
        path = target if target.startswith("/") else os.path.join(os.path.dirname(path), target)
        host = root + os.path.normpath(path)
    return None
