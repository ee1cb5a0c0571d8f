"""container-kernel: a Jupyter kernel inside a real Linux container this package builds.

Two halves, one direction of dependency: `runtime/` is a small container runtime
that knows nothing of Jupyter; `jupyter/` (the kernel, magics, widgets) uses it.
This module stays import-light: it is on every container's start path.
"""

__version__ = "0.1.0"


def load_ipython_extension(ipython):
    """%load_ext container_kernel (loaded automatically in the container kernel)."""
    from .jupyter.extension import load
    load(ipython)


def unload_ipython_extension(ipython):
    from .jupyter.extension import unload
    unload(ipython)


def __getattr__(name):
    """container_kernel.monitor() and .namespaces_widget(), imported on first use:
    ipywidgets is heavy, and this module is on every container's start path."""
    if name in ("monitor", "namespaces_widget"):
        from .jupyter import widgets
        return getattr(widgets, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
