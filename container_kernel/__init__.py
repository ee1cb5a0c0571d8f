"""container-kernel: a Jupyter kernel inside a real Linux container this package builds.

A folder says where its code runs and whom it trusts:
- `runtime/`: on the host, as root or the user; a small container runtime that
  knows nothing of Jupyter (the spec, namespaces, cgroups, the rootfs, init);
- `kernel/`: the host side of the Jupyter kernel (kernelspec, provisioner, the
  kernel's launcher and its control server), built on runtime/;
- `inside/`: inside the container, in ipykernel, the untrusted side (the
  extension, magics, widgets); it reaches the host only through the control socket;
- `protocol.py`: the control socket's one vocabulary, shared by both sides.
This module stays import-light: it is on every container's start path.
"""

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    """%load_ext container_kernel (loaded automatically in the container kernel)."""
    from .inside.extension import load
    load(ipython)


def unload_ipython_extension(ipython):
    from .inside.extension import unload
    unload(ipython)


def __getattr__(name):
    """container_kernel.monitor() and .namespaces_widget(), imported on first use:
    ipywidgets is heavy, and this module is on every container's start path."""
    if name in ("monitor", "namespaces_widget"):
        from .inside import widgets
        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
