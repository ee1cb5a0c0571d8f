"""One minbase Debian rootfs for the tests that need a real distribution, built once.

It is built by the real `container-kernel rootfs build` into a DIR outside the repo,
/var/cache/container-kernel/test-rootfs/<config key>, so a rerun (or the next CI
run on the same machine) reuses it: the build command itself says "up to date".
The build is measured (its config.json keeps seconds and size) and the figures are
printed. A test that needs it skips, with the reason, only when it is not cached and
the host cannot build it (no debootstrap, no mirror, no room); any other failure of the
build fails it. In CI (.ci/run) all three are there.
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
    from container_kernel.runtime import rootfs_build
    from container_kernel.runtime.errors import ContainerError
    try:
        plan = rootfs_build.plan(os.path.join(CACHE, "x"), suite=SUITE, variant=VARIANT)
    except ContainerError as e:
        pytest.skip(f"no rootfs build possible here: {e}")
    path = os.path.join(CACHE, plan.key)
    # A cached build is reused without the mirror (the v2 VM's guest has no network, but
    # sees the host's cache through its read-only share of /).
    from container_kernel.runtime import store
    if store.read_config(path) is None:
        try:  # the tool, the mirror, the disk space: what a build needs that the host may lack
            rootfs_build.check_before(plan._replace(target=path))
        except ContainerError as e:
            pytest.skip(f"no cached test rootfs at {path}, and none can be built here: {e}")
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
