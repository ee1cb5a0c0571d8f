"""rm -r of a user's tree that holds files of its subuids: from a user namespace mapped like
its containers (what `podman unshare rm` does).

A rootless overlay's upper layer keeps what the container wrote with the owners it
had inside: uid 1000 inside is a subuid outside (idmap.rootless_maps), and a dir of
that subuid, mode 0755, is one whose entries the user cannot unlink from the host.
overlayfs also leaves its workdir's "work" dir at mode 000. Root of a user namespace
that maps the same ids holds CAP_DAC_OVERRIDE and CAP_FOWNER over every file they own,
so a short-lived helper enters a new one, mapped by newuidmap/newgidmap exactly as a
container is, and removes the tree there. Files of ids outside the map (the host's
root) stay as they are: a container of the user could not have made them.

    caller                                   helper (a fresh interpreter: unshare(CLONE_NEWUSER)
      spawn `python -m ...unshare_rm PATH`    needs a single-threaded process, which a fork of a
                                               threaded launcher is not safe to run Python in)
                        <-- "unshared"        unshare(CLONE_NEWUSER)
      newuidmap/newgidmap PID
                        --> "go"              rm -r PATH..., never crossing a mount point
      wait: exit 0, or one line on stderr
"""

import os
import sys

from .errors import ContainerError

UNSHARED, GO = b"unshared\n", b"go\n"
TIMEOUT = 300  # seconds: a large layer on a slow disk, never forever


def remove(paths):
    """Remove each of paths (trees of this user's) through the helper. ContainerError if it
    cannot: no user namespaces, or newuidmap refused."""
    import subprocess
    from . import idmap
    paths = [os.path.abspath(p) for p in paths if os.path.lexists(p)]
    if not paths:
        return
    uid_map, gid_map, _ = idmap.rootless_maps(*idmap.current_user())
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
           "PYTHONPATH": os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))}
    helper = subprocess.Popen([sys.executable, "-m", "container_kernel.runtime.unshare_rm", *paths],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              env=env, close_fds=True)
    try:
        if helper.stdout.readline() != UNSHARED:
            _, err = helper.communicate(b"", timeout=TIMEOUT)
            raise ContainerError(f"cannot remove {paths[0]}: {_line(err) or 'the helper died'}")
        try:
            idmap.write_maps(helper.pid, uid_map, gid_map)
        except (OSError, subprocess.CalledProcessError) as e:
            helper.communicate(b"", timeout=TIMEOUT)  # EOF, not "go": it removes nothing
            why = _line(getattr(e, "stderr", None)) or str(e)
            raise ContainerError(f"cannot remove {paths[0]}: mapping the helper's user namespace "
                                 f"failed ({why})") from None
        _, err = helper.communicate(GO, timeout=TIMEOUT)
    except BaseException:
        if helper.poll() is None:
            helper.kill()
            helper.wait()
        raise
    if helper.returncode != 0:
        raise ContainerError(f"cannot remove {paths[0]}: {_line(err) or f'helper exit {helper.returncode}'}")


def _line(data):
    text = (data or b"").decode(errors="replace").strip()
    return text.splitlines()[-1] if text else ""


def main(paths):
    """The helper. Exit 0 when every path is gone."""
    from . import syscalls as sc
    from .paths import remove_tree_here
    try:
        sc.unshare(sc.CLONE_NEWUSER)
    except OSError as e:
        sys.stderr.write(f"unshare(CLONE_NEWUSER): {os.strerror(e.errno)} (unprivileged user "
                         "namespaces are not allowed here; `container-kernel doctor` says more)\n")
        return 1
    sys.stdout.buffer.write(UNSHARED)
    sys.stdout.flush()
    if sys.stdin.buffer.readline() != GO:
        return 1  # the caller gave up: remove nothing unmapped
    for path in paths:
        try:
            remove_tree_here(path)  # never through a mount point, as rundir.remove_tree
        except OSError as e:
            sys.stderr.write(f"{e.filename or path}: {os.strerror(e.errno)}\n")
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
