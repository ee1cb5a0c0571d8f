"""On the container kernel's PYTHONPATH: `pip install` from a subprocess of the kernel (`!pip
install`, `python -m pip install`) ends at once with one line saying to use %pip. The
kernel's Python is read-only and its network none: pip would fail later, and obscurely."""
import os
import sys


def _pip_command(argv):
    """pip's subcommand if argv (sys.orig_argv) runs pip, else None."""
    i = 1
    while i < len(argv) and argv[i].startswith("-") and argv[i] != "-m":
        i += 2 if argv[i] in ("-W", "-X") else 1
    if i < len(argv) and argv[i] == "-m":
        is_pip, i = i + 1 < len(argv) and argv[i + 1] in ("pip", "pip3"), i + 2
    else:
        name = os.path.basename(argv[i]) if i < len(argv) else ""
        is_pip, i = name.startswith("pip") and name[3:].replace(".", "").isdigit() or name == "pip", i + 1
    words = [a for a in argv[i:] if not a.startswith("-")]
    return words[0] if is_pip and words else None


if _pip_command(getattr(sys, "orig_argv", ())) in ("install", "uninstall"):
    os.write(2, b"container-kernel: pip cannot change packages from inside this kernel (its Python "
                b"is read-only, its network none): use %pip install ... in a cell, which installs "
                b"into the kernelspec's package layer\n")
    os._exit(1)

# The sitecustomize this one shadows (Debian's, say) still runs.
_here = os.path.dirname(os.path.abspath(__file__))
import importlib.machinery  # noqa: E402
_spec = importlib.machinery.PathFinder.find_spec(
    "sitecustomize", [p for p in sys.path if os.path.abspath(p or ".") != _here])
if _spec is not None and _spec.loader is not None:
    import importlib.util  # noqa: E402
    _spec.loader.exec_module(importlib.util.module_from_spec(_spec))
