"""The IPython extension `container_kernel`: loaded at start in the container kernel.

It tells the user what they would otherwise not know:
- why the previous kernel died (the launcher left a record: OOM killer, signal,
  exit code), at the first execution;
- that the kernel is NOT contained, when a kernelspec allowed degraded mode,
  at start, at the first execution and in every %container_info;
- in any other kernel (`%load_ext container_kernel`), that this project does not
  contain it, and which container does if it can tell (Docker on Binder, say).
The magics and widgets (see magics.py) are registered here too.
"""

import os
import sys

_state = {}


def in_container():
    return os.environ.get("container") == "container-kernel"


def unconfined_reason():
    return os.environ.get("CK_UNCONFINED")


def warning_banner():
    reason = unconfined_reason()
    if reason:
        return f"WARNING: this kernel is NOT contained: {reason}"
    if not in_container():
        return ("This kernel was not started by container-kernel: it is not contained by this "
                "project. %container_info shows what it can see.")
    return None


def outer_container():
    """Another container this kernel runs in, if it can tell: what runs Binder, say."""
    kind = os.environ.get("container")
    if kind and kind != "container-kernel":
        return f"{kind} ($container is set, the systemd convention)"
    for path, name in (("/.dockerenv", "Docker"), ("/run/.containerenv", "Podman")):
        if os.path.exists(path):
            return f"{name} ({path} exists)"
    try:
        with open("/proc/1/cgroup") as f:
            text = f.read()
    except OSError:
        text = ""
    for word in ("docker", "kubepods", "containerd", "libpod", "lxc"):
        if word in text:
            return f"{word} (named in /proc/1/cgroup)"
    if os.environ.get("KUBERNETES_SERVICE_HOST"):
        return "a Kubernetes pod ($KUBERNETES_SERVICE_HOST is set)"
    return None


def _first_execution(*args):
    ip = _state.get("ip")
    if ip is not None:
        ip.events.unregister("pre_run_cell", _first_execution)
    notices = [n for n in (os.environ.get("CK_PREVIOUS_EXIT"), unconfined_reason() and warning_banner()) if n]
    for notice in notices:
        print(notice, file=sys.stderr)


def limit_address_space():
    """The rootless memory fallback for a kernel: RLIMIT_AS, counted from now.

    ipykernel maps ~800 MB of address space (thread stacks, malloc arenas) before
    any cell runs, so the launcher cannot set the limit at exec; here, once
    started, the kernel allows itself the limit above what it already maps."""
    above = os.environ.get("CK_RLIMIT_AS_ABOVE_START")
    if not above:
        return None
    import resource
    with open("/proc/self/status") as f:
        size = [int(l.split()[1]) * 1024 for l in f if l.startswith("VmSize:")][0]
    limit = size + int(above)
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    return limit


def load(ip):
    _state["ip"] = ip
    limit_address_space()
    if os.environ.get("CK_PREVIOUS_EXIT") or unconfined_reason():
        ip.events.register("pre_run_cell", _first_execution)
    if unconfined_reason():
        print(warning_banner(), file=sys.__stderr__)
    elif not in_container():  # %load_ext in some other kernel: say so where it was typed
        outer = outer_container()
        print(f"container_kernel: {warning_banner()}"
              + (f" It runs inside another container: {outer}." if outer else ""))
    from . import magics
    magics.register(ip)


def unload(ip):
    try:
        ip.events.unregister("pre_run_cell", _first_execution)
    except ValueError:
        pass
