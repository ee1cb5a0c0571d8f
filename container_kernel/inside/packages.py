"""The kernelspec's package layer, from inside: its site dirs join sys.path at the end.

The layer is pip's --prefix (kernel/packages.py installs there from a build sibling),
bound read-only at $CK_PACKAGES. The kernel's Python is a venv or the image's, where
the user site is off, so PYTHONUSERBASE would not do: the extension adds the prefix's
site dirs itself, after the kernel's own (appended: nothing there shadows ipykernel or
the stack it runs on), and .pth files there are processed as in any site dir.
"""

import os
import sys

from .. import protocol


def root():
    return os.environ.get(protocol.PACKAGES_ENV)


def site_dirs(prefix):
    """Where pip --prefix put packages for this Python: the same sysconfig scheme pip uses."""
    import sysconfig
    scheme = sysconfig.get_preferred_scheme("prefix")
    dirs = []
    for key in ("purelib", "platlib"):
        d = sysconfig.get_path(key, scheme, {"base": prefix, "platbase": prefix})
        if d not in dirs:
            dirs.append(d)
    return dirs


def add_layer():
    """At load: the layer's site dirs on sys.path (after the kernel's own). Returns them."""
    prefix = root()
    if not prefix:
        return []
    import site
    added = []
    for d in site_dirs(prefix):
        if d not in sys.path:
            site.addsitedir(d)  # appends, and reads the .pth files there
            added.append(d)
    return added


def installed(prefix=None):
    """{normalized name: version} of the distributions in the layer."""
    prefix = prefix or root()
    if not prefix:
        return {}
    from importlib import metadata
    out = {}
    for dist in metadata.distributions(path=site_dirs(prefix)):
        name = (dist.metadata["Name"] or "").lower().replace("_", "-").replace(".", "-")
        out[name] = dist.version
    return out
