"""Name what is missing before `make` fails obscurely. Usage: check_prereqs.py venv|test"""
import glob
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
packages = []  # what is missing, for one apt-get line at the end (.ci/run installs them all)
for tool, package, what in (("bwrap", "bubblewrap", "the Binder tests skip; benchmarks compare with it"),
                            ("runc", "runc", "benchmarks compare with it"),
                            ("unshare", "util-linux", "benchmarks compare with it"),
                            ("newuidmap", "uidmap", "the rootless tests skip"),
                            ("slirp4netns", "slirp4netns", "the --network egress and %pip tests skip"),
                            ("debootstrap", "debootstrap", "the Debian rootfs tests skip"),
                            ("chromium", "chromium", "the JupyterLab and JupyterHub browser tests skip"),
                            ("qemu-system-x86_64", "qemu-system-x86", "the cgroup v2 VM tests skip"),
                            ("busybox", "busybox-static", "the cgroup v2 VM tests skip")):
    if not shutil.which(tool):
        notes.append(f"{tool} not found: {what}")
        packages.append(package)
if not glob.glob("/boot/vmlinuz-*"):
    notes.append("no kernel in /boot: the cgroup v2 VM tests skip")
    packages.append("linux-image-amd64")
# The JupyterHub test (tests/hub) fetches configurable-http-proxy with npm when it is not on PATH.
if not shutil.which("configurable-http-proxy") and not shutil.which("npm"):
    notes.append("neither configurable-http-proxy nor npm found: the JupyterHub test skips")
    packages.append("npm")
for note in notes:
    print(f"note: {note}")
if packages:
    print(f"note: each skip says why; to run them all: sudo apt-get install {' '.join(packages)}")
