"""Name what is missing before `make` fails obscurely. Usage: check_prereqs.py venv|test"""
import os
import shutil
import subprocess
import sys

stage = sys.argv[1] if len(sys.argv) > 1 else "test"
missing = []

if stage == "venv":
    if sys.version_info < (3, 10):
        missing.append(f"Python >= 3.10 (this is {sys.version.split()[0]}): "
                       "make PYTHON=/path/to/python3.10+")
    try:
        import ensurepip  # noqa: F401
        import venv  # noqa: F401
    except ImportError:
        missing.append("the venv module: sudo apt-get install python3-venv")
    if missing:
        print("container-kernel: cannot create .venv, missing:\n  " + "\n  ".join(missing),
              file=sys.stderr)
        sys.exit(1)
    sys.exit(0)

# test: nothing here is fatal; say what will be skipped and why.
notes = []
if os.geteuid() != 0:
    notes.append("not root: the container and cgroup tests need root (or rootless support) "
                 "and will be skipped; run `sudo make test` for the full suite")
for tool, package, what in (("bwrap", "bubblewrap", "benchmark comparison"),
                            ("runc", "runc", "benchmark comparison"),
                            ("unshare", "util-linux", "benchmark comparison"),
                            ("slirp4netns", "slirp4netns", "--network egress and %pip install")):
    if not shutil.which(tool):
        notes.append(f"{tool} not found ({what}): sudo apt-get install {package}")
# The JupyterHub test (tests/hub) fetches configurable-http-proxy with npm when it is not on PATH.
if not shutil.which("configurable-http-proxy") and not shutil.which("npm"):
    notes.append("neither configurable-http-proxy nor npm found (JupyterHub test): "
                 "sudo apt-get install npm")
for note in notes:
    print(f"note: {note}")
