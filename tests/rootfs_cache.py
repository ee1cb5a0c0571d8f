"""One minbase Debian rootfs for the tests that need a real distribution, built once.

It is built by the real `container-kernel rootfs build` into a DIR outside the repo,
/var/cache/container-kernel/test-rootfs/<config key>, so a rerun (or the next CI
run on the same machine) reuses it: the build command itself says "up to date".
The build is measured (its config.json keeps seconds and size) and the figures are
printed. A test that needs it skips, with the reason, only when it is not cached and
the host's mirror cannot be reached; any other failure of the build fails it.
"""
import json
import os

import pytest

from tests.helpers import IS_ROOT, ck

CACHE = os.environ.get("CK_TEST_ROOTFS_CACHE", "/var/cache/container-kernel/test-rootfs")
SUITE, VARIANT = "bookworm", "minbase"


def cached_rootfs():
    """The cache DIR (ours: config.json + rootfs/), built if missing. Skips if it cannot be."""
    if not IS_ROOT:
        pytest.skip("building a debootstrap rootfs needs root here (rootless builds need subuids)")
    from container_kernel.runtime import apt_sources, rootfs_build
    from container_kernel.runtime.errors import ContainerError
    try:
        plan = rootfs_build.plan(os.path.join(CACHE, "x"), suite=SUITE, variant=VARIANT)
    except ContainerError as e:
        pytest.skip(f"no rootfs build possible here: {e}")
    path = os.path.join(CACHE, plan.key)
    # A cached build is reused without the mirror (the v2 VM's guest has no network, but
    # sees the host's cache through its read-only share of /).
    from container_kernel.runtime import store
    why = store.read_config(path) is None and apt_sources.reachable(plan.mirror, SUITE)
    if why:
        pytest.skip(f"no cached test rootfs at {path} and the Debian mirror is unreachable ({why}): "
                    "no rootfs to test in")
    r = ck("rootfs", "build", "--suite", SUITE, "--variant", VARIANT, path, timeout=1800)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr
    with open(os.path.join(path, "config.json")) as f:
        config = json.load(f)
    print(f"\n[test rootfs] {path}: built in {config['seconds']:.0f} s, "
          f"{config['size'] / 2**20:.0f} MiB ({'reused' if 'up to date' in r.stdout else 'new'})")
    return path


@pytest.fixture(scope="session")
def debian_rootfs():
    return cached_rootfs()
