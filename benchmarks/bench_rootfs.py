"""A container kernel on an overlay rootfs (a `rootfs build` tree) against one on the host rootfs.
Not a test.

    .venv/bin/python benchmarks/bench_rootfs.py ROOTFS [--runs N]

ROOTFS is a NAME of the store or a DIR `rootfs build` made (the tests' cache works:
/var/cache/container-kernel/test-rootfs/KEY). Both kernelspecs go into a temp prefix;
start -> ready (KernelManager.start_kernel + wait_for_ready) is timed, the two kinds
alternating so machine noise hits both alike; prints the medians and their ratio.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from jupyter_client import KernelManager

CK = os.path.join(os.path.dirname(sys.executable), "container-kernel")


def ready_in(name):
    km = KernelManager(kernel_name=name)
    t = time.monotonic()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=120)
        return time.monotonic() - t
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("rootfs")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    prefix = tempfile.mkdtemp(prefix="ck-bench-rootfs-")
    try:
        for name, extra in (("bench-host", []), ("bench-rootfs", ["--rootfs", args.rootfs])):
            subprocess.run([CK, "install", "--prefix", prefix, "--name", name, *extra],
                           check=True, capture_output=True)
        os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share/jupyter")
        times = {"bench-host": [], "bench-rootfs": []}
        ready_in("bench-rootfs")  # warm the page cache for the image's Python
        for _ in range(args.runs):
            for name in times:
                times[name].append(ready_in(name))
        host, rootfs = (statistics.median(times[n]) for n in ("bench-host", "bench-rootfs"))
        print(f"start -> ready, median of {args.runs}: host rootfs {host:.2f} s, "
              f"overlay rootfs {rootfs:.2f} s ({rootfs / host:.2f}x)")
    finally:
        shutil.rmtree(prefix)


if __name__ == "__main__":
    main()
