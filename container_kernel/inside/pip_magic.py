"""%pip in a container kernel: install and uninstall go to a build sibling, outside the kernel.

    %pip install tabulate          pip runs in a sibling container (egress network, the
    %pip uninstall tabulate        package layer read-write); its output streams here
    %pip list | show | freeze      IPython's own %pip, in the kernel

The kernel's network stays none and its Python read-only; the launcher starts the
sibling (kernel/packages.py), the layer's site dirs are on sys.path already
(packages.py), so a new package imports at once, and after every restart.
Also here: the one-line notice at the first connection attempt in a kernel that
has no network, from an audit hook (PEP 578): nothing is paid until then but a
string comparison per audited event.
"""

import shlex
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_magic, magics_class

from .. import pip_args, protocol
from . import client, packages, siblings

NO_NETWORK = ("this kernel has no network (kernelspec network: none); use %pip for packages "
              "or a kernelspec with --network egress")
TIMEOUT = 300  # seconds: the launcher's limit for a build (kernel/packages.py)
_seen = []  # the notice, once given: %container_info repeats it


@magics_class
class PipMagics(Magics):
    def __init__(self, shell, original=None):
        super().__init__(shell)
        self.original = original  # IPython's %pip, for what is not install or uninstall

    @line_magic
    def pip(self, line):
        """Install or uninstall packages in this kernel's package layer, from a build sibling.

        The sibling is a container like this kernel (rootfs, hardening, cgroup inside
        this kernel's, a time limit) with an egress network: pip reaches the index,
        never the host. Packages land in the kernelspec's package layer, kept across
        restarts (`container-kernel packages ls|rm|reset KERNEL` on the host).
        Allowed: package specs or http(s) URLs, -U, --no-deps, --pre, --index-url,
        --extra-index-url, --find-links URL, --only-binary, --no-binary, -q, -v, ...

        Examples:
            %pip install tabulate
            %pip install --index-url http://10.0.0.5:8000/simple/ mypkg==1.0
            %pip uninstall tabulate
        """
        try:
            words = shlex.split(line)
        except ValueError as e:
            raise UsageError(f"%pip: {e}") from None
        if words and words[0] not in pip_args.ACTIONS and self.original is not None:
            return self.original(line)
        try:
            action, _ = pip_args.check(words)
        except pip_args.PipArgsError as e:
            raise UsageError(f"%pip: {e}") from None
        if not packages.root():
            raise UsageError("%pip: this kernel has no package layer (its kernelspec has a "
                             "read-only prepared rootfs, or passes no --resource-dir)")
        if action == "uninstall":
            have = packages.installed()
            missing = [w for w in words[1:] if not w.startswith("-")
                       and w.lower().replace("_", "-").replace(".", "-") not in have]
            if missing:
                raise UsageError(f"%pip uninstall: {missing[0]!r} is not in the package layer "
                                 f"(it has: {', '.join(sorted(have)) or 'nothing'}); the kernel's "
                                 "own packages are read-only")
        try:
            sib = siblings.Sibling(client.request("pip", argv=words, seconds=TIMEOUT))
            sys.stdout.write(sib.stdout)
            sys.stderr.write(sib.stderr)
            result = sib.wait(echo=True)
        except protocol.ControlError as e:
            raise UsageError(f"%pip: {e}") from None
        _refresh()
        if result.timed_out:
            print(f"container-kernel: %pip {action} stopped at its time limit ({TIMEOUT} s)",
                  file=sys.stderr)
        elif result.exit_code != 0:
            print(f"container-kernel: %pip {action} failed (exit {result.exit_code}) in its build "
                  "sibling; this kernel is unchanged", file=sys.stderr)
        else:
            print(f"container-kernel: %pip {action} done in the package layer: "
                  + ("import it now; restarts keep it" if action == "install" else "gone after a restart"))


def _refresh():
    """New dirs in the layer: the import system must look again."""
    import importlib
    for d in packages.site_dirs(packages.root()):
        sys.path_importer_cache.pop(d, None)
    importlib.invalidate_caches()


def register(ip):
    if not client.path():
        return  # not a container kernel: IPython's %pip stays
    original = ip.find_line_magic("pip")
    ip.register_magics(PipMagics(ip, original))


# ---- the notice of no network --------------------------------------------------------------

def _only_loopback():
    try:
        with open("/proc/net/dev") as f:
            names = {line.split(":")[0].strip() for line in f.readlines()[2:]}
    except OSError:
        return False
    return names == {"lo"}


LOCAL = ("127.", "::1", "localhost", "0.0.0.0")
EVENTS = frozenset(("socket.connect", "socket.getaddrinfo"))


def _hook(event, args):
    if event not in EVENTS or _seen:
        return
    if event == "socket.connect":
        address = args[1]
        if not isinstance(address, tuple):
            return  # a unix socket (the control socket, a pipe): not the network
        host = address[0]
    else:
        host = args[0]
    if host is None or (isinstance(host, bytes) and host.startswith(b"127.")):
        return
    host = host.decode(errors="replace") if isinstance(host, bytes) else str(host)
    if not host or host.startswith(LOCAL):
        return
    _seen.append(NO_NETWORK)
    print(f"container-kernel: {NO_NETWORK}", file=sys.stderr)


def install_network_notice():
    """Once, at load, in a kernel with only lo: the hook (an audit hook cannot be removed)."""
    if client.path() and _only_loopback():
        sys.addaudithook(_hook)
        return True
    return False


def seen():
    return _seen[0] if _seen else None
