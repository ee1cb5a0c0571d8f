"""The IPython extension `container_kernel`: loaded at start in the container kernel.

It tells the user what they would otherwise not know:
- why the previous kernel died (the launcher left a record: OOM killer, signal,
  exit code), at the first execution;
- that the kernel is NOT contained, when a kernelspec allowed degraded mode,
  at start, at the first execution and in every %container_info;
- in any other kernel (`%load_ext container_kernel`), that this project does not
  contain it, and which container does if it can tell (Docker on Binder, say).
The magics and widgets (see magics.py) are registered here too, and the answer to
jupyter-resource-usage's usage_request (usage.py).
"""

import os
import sys

from .. import protocol
from ..runtime import procfs
from . import facts, magics, packages, pip_magic, usage


class _FirstExecution:
    """A pre_run_cell callback that speaks once, at the first cell, then unregisters itself:
    why the previous kernel died, and a degraded mode's warning."""

    def __init__(self, ip):
        self.ip = ip

    def __call__(self, *args):
        self.ip.events.unregister("pre_run_cell", self)
        notices = [os.environ.get(protocol.PREVIOUS_EXIT_ENV),
                   facts.unconfined_reason() and facts.warning_banner()]
        for notice in notices:
            if notice:
                print(notice, file=sys.stderr)


def limit_address_space():
    """The rootless memory fallback for a kernel: RLIMIT_AS, counted from now.

    ipykernel maps ~800 MB of address space (thread stacks, malloc arenas) before
    any cell runs, so the launcher cannot set the limit at exec; here, once
    started, the kernel allows itself the limit above what it already maps."""
    above = os.environ.get(protocol.RLIMIT_AS_ENV)
    if not above:
        return None
    import resource
    size = int(procfs.status_field("VmSize").split()[0]) * 1024  # "812345 kB"
    limit = size + int(above)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def load(ip):
    limit_address_space()
    packages.add_layer()  # what %pip installed, after the kernel's own packages
    pip_magic.install_network_notice()
    if os.environ.get(protocol.PREVIOUS_EXIT_ENV) or facts.unconfined_reason():
        ip.events.register("pre_run_cell", _FirstExecution(ip))
    if facts.unconfined_reason():
        print(facts.warning_banner(), file=sys.__stderr__)
    elif not facts.in_container():  # %load_ext in some other kernel: say so where it was typed
        outer = facts.outer_container()
        print(f"container_kernel: {facts.warning_banner()}"
              + (f" It runs inside another container: {outer}." if outer else ""))
    magics.register(ip)
    pip_magic.register(ip)  # after IPython's own %pip: ours replaces it in a container kernel
    usage.register(ip)
    say_ready()


def say_ready():
    """Tell the provisioner that this kernel is ready (the extension is loaded last: only
    ipykernel's event loop is left to start). Without the word it waits only for the
    sockets, and a client asks a half-started kernel kernel_info every second, each
    request answered later, at a cost to the kernel and the server (kernel/provisioner.py)."""
    path = os.environ.pop(protocol.READY_ENV, None)  # not for the cells' subprocesses
    if path:
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600))
        except OSError:
            pass  # the provisioner then goes by the sockets alone


def unload(ip):
    for callback in list(ip.events.callbacks["pre_run_cell"]):
        if isinstance(callback, _FirstExecution):
            ip.events.unregister("pre_run_cell", callback)
