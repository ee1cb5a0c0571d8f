"""A kernel in a debootstrap rootfs, through jupyter_client: its own Python, a pristine image,
and a --persist layer that survives a restart."""
import os
import time

import pytest
from jupyter_client import KernelManager

from tests.helpers import IS_ROOT, SLOW, environ, install_kernels
from tests.jupyter.test_kernel import run
from tests.rootfs_cache import debian_rootfs  # noqa: F401

pytestmark = pytest.mark.skipif(not IS_ROOT, reason="the container kernel tests need root")


@pytest.fixture(scope="module")
def rootfs_kernels(tmp_path_factory, debian_rootfs):  # noqa: F811
    prefix = tmp_path_factory.mktemp("rootfs-prefix")
    store = tmp_path_factory.mktemp("rootfs-store")
    share = install_kernels(prefix, {"ck-rootfs": ["--rootfs", debian_rootfs],
                                     "ck-rootfs-persist": ["--rootfs", debian_rootfs, "--persist", "nb"],
                                     "ck-host": []})
    with environ(JUPYTER_PATH=share, CK_STORE=store):  # the --persist layer lands in the store
        yield store


def started(name):
    km = KernelManager(kernel_name=name)
    t = time.monotonic()
    km.start_kernel()
    kc = km.client()
    kc.start_channels()
    kc.wait_for_ready(timeout=60 * SLOW)
    return km, kc, time.monotonic() - t


def stop(km, kc):
    kc.stop_channels()
    km.shutdown_kernel(now=False)


def test_the_kernel_runs_the_rootfs_python_and_leaves_it_pristine(rootfs_kernels, debian_rootfs):  # noqa: F811
    km, kc, _ = started("ck-rootfs")
    try:
        reply, out = run(kc, "import sys; print(sys.executable)\n"
                             "print(open('/etc/os-release').read().split('\\n')[0])\n"
                             "open('/usr/lib/written-by-the-kernel', 'w').write('x'); print('wrote')")
        assert reply["status"] == "ok", out
        assert out["stdout"].splitlines() == ["/usr/bin/python3", 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
                                              "wrote"]
        reply, out = run(kc, "%container_info")
        text = out["stdout"] + "".join(d.get("text/plain", "") for d in out["display"])
        assert "layers: lower " in text and "(per-container)" in text
        assert "os-release: Debian GNU/Linux 12 (bookworm)" in text
    finally:
        stop(km, kc)
    assert not os.path.exists(os.path.join(debian_rootfs, "rootfs/usr/lib/written-by-the-kernel"))


def test_persist_survives_a_restart_and_without_it_nothing_does(rootfs_kernels):
    km, kc, _ = started("ck-rootfs-persist")
    try:
        assert run(kc, "open('/root/kept.txt', 'w').write('kept')")[0]["status"] == "ok"
        kc.stop_channels()
        km.restart_kernel(now=False)
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60 * SLOW)
        reply, out = run(kc, "print(open('/root/kept.txt').read())")
        assert out["stdout"] == "kept\n", out
        # A second kernel on the same layer is refused while this one runs.
        km2 = KernelManager(kernel_name="ck-rootfs-persist")
        with pytest.raises(Exception, match="in use by"):
            km2.start_kernel()
            km2.client().wait_for_ready(timeout=30 * SLOW)
        km2.cleanup_resources()
    finally:
        stop(km, kc)
    assert (rootfs_kernels / "layers/nb/upper/root/kept.txt").read_text() == "kept"
    km, kc, _ = started("ck-rootfs")
    try:
        reply, out = run(kc, "import os; print(os.path.exists('/root/kept.txt'))")
        assert out["stdout"] == "False\n"
    finally:
        stop(km, kc)


def test_start_to_ready_overlay_against_host(rootfs_kernels):
    """Measured, not asserted beyond sanity (benchmarks are not timed asserts)."""
    times = {}
    for name in ("ck-host", "ck-rootfs"):
        runs = []
        for _ in range(3):
            km, kc, t = started(name)
            runs.append(t)
            stop(km, kc)
        times[name] = sorted(runs)[1]
    print(f"\n[start-to-ready, median of 3] host rootfs {times['ck-host']:.2f} s, "
          f"overlay rootfs {times['ck-rootfs']:.2f} s")
    assert all(t < 60 * SLOW for t in times.values())
