"""%pip install of one small wheel: a container kernel (a build sibling, egress network, the
package layer) against a plain ipykernel's %pip. Not a test. Needs root, ip and slirp4netns.

    .venv/bin/python benchmarks/bench_pip.py [--runs N]

The wheel is made here and served from a network namespace made here (tests/pip_index.py,
ck-test-pip-bench*, removed at the end). The plain kernel installs with --prefix into a temp
dir (it would otherwise write into .venv), the container kernel into its layer, which is
reset before each run; the two alternate so machine noise hits both alike. Prints the
medians and their difference: the price of a sibling container and of slirp.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

from jupyter_client import KernelManager

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests import pip_index  # noqa: E402

CK = os.path.join(os.path.dirname(sys.executable), "container-kernel")
NAME = "ck-bench-pip"


def timed_pip(kc, line):
    out = []
    t = time.monotonic()
    reply = kc.execute_interactive(f"%pip {line}", timeout=300, output_hook=lambda m: out.append(
        m["content"].get("text", "")))
    took = time.monotonic() - t
    if reply["content"]["status"] != "ok" or "Successfully installed" not in "".join(out):
        raise SystemExit(f"%pip failed: {''.join(out)[-400:]}")
    return took


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    runs = ap.parse_args().runs
    tmp = tempfile.mkdtemp(prefix="ck-bench-pip-")
    os.environ["CK_STORE"] = os.path.join(tmp, "store")
    os.environ["JUPYTER_PATH"] = os.path.join(tmp, "share", "jupyter")
    subprocess.run([CK, "install", "--prefix", tmp, "--name", NAME], check=True, capture_output=True)
    wheels = os.path.join(tmp, "index")
    os.mkdir(wheels)
    pip_index.wheel(wheels, "ck_bench", "1.0", "X = 1\n")
    index = pip_index.Index(wheels, netns="ck-test-pip-bench", host_end="ck-test-pb0",
                            ns_end="ck-test-pb1", net="10.213.9").start()
    line = f"install --no-index --find-links {index.url} --trusted-host {index.addr} ck_bench"
    kernels = {}
    try:
        for kind, spec in (("container", NAME), ("plain", "python3")):
            km = KernelManager(kernel_name=spec)
            km.start_kernel()
            kc = km.client()
            kc.start_channels()
            kc.wait_for_ready(timeout=120)
            kernels[kind] = (km, kc)
        times = {"container": [], "plain": []}
        for i in range(runs):
            subprocess.run([CK, "packages", "reset", NAME], capture_output=True)
            times["container"].append(timed_pip(kernels["container"][1], line))
            times["plain"].append(timed_pip(kernels["plain"][1],
                                            f"{line} --prefix {tmp}/plain-{i} --no-warn-script-location"))
    finally:
        for km, kc in kernels.values():
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        index.stop()
        subprocess.run([CK, "packages", "rm", NAME], capture_output=True)
        subprocess.run(["rm", "-rf", tmp])
    c, p = statistics.median(times["container"]), statistics.median(times["plain"])
    print(f"%pip install of one small wheel, median of {runs}:")
    print(f"  container kernel (build sibling, egress, layer): {c:6.2f} s   {['%.2f' % t for t in times['container']]}")
    print(f"  plain ipykernel (pip in the kernel's env):       {p:6.2f} s   {['%.2f' % t for t in times['plain']]}")
    print(f"  difference: {c - p:+.2f} s ({c / p:.1f}x)")


if __name__ == "__main__":
    main()
