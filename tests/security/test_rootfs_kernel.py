"""The escape table again, from a container kernel on a debootstrap rootfs (an overlay of the
cached minbase build, tests/rootfs_cache.py): the same refusals on a Debian userland.

Writing into the image's /usr is no escape there (it goes to the per-container upper layer,
tests/jupyter/test_rootfs_kernel.py checks the image is unchanged): the attempts that try
the host rootfs's read-only binds are skipped with that reason."""
import pytest

from tests.helpers import ck
from tests.rootfs_cache import debian_rootfs  # noqa: F401

from .attempts import GATE, all_attempts, judge_refused, skip_unless_applies
from .targets import Target, contained_writes, start_kernel

ATTEMPTS = all_attempts()
pytestmark = GATE
# The overlay rootfs is writable by design: its writes land in the upper layer, not the image.
# Its interpreter is the image's /usr/bin/python3, not a host file: a write to /proc/self/exe
# copies it up into the upper layer (overlayfs copy-up), so CVE-2019-5736 has no host binary here.
# And its /etc is the image's own: its /etc/shadow is Debian's default, never the host's
# (test_the_shadow_file_is_the_images checks that).
WRITABLE_BY_DESIGN = {"rootfs_readonly", "self_exe", "etc_shadow"}


@pytest.fixture(scope="module")
def sec_rootfs_kernel(sec_host, sec_kernelspecs, debian_rootfs):  # noqa: F811
    prefix = sec_host["base"] / "prefix-rootfs"
    r = ck("install", "--prefix", str(prefix), "--name", "ck-sec-rootfs", "--rootfs", debian_rootfs)
    assert r.returncode == 0, r.stderr
    specs = dict(sec_kernelspecs, dir=str(prefix / "share/jupyter/kernels"), container="ck-sec-rootfs")
    km, kc = start_kernel(sec_host, specs, "container")
    try:
        yield Target(km, kc, sec_host["facts"], "kernel")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


@pytest.mark.parametrize("a", ATTEMPTS, ids=[a.name for a in ATTEMPTS])
def test_refused_in_a_rootfs_kernel(a, sec_rootfs_kernel, sec_host):
    if a.name in WRITABLE_BY_DESIGN:
        pytest.skip("the overlay rootfs is writable by design (its upper layer), the image stays pristine")
    skip_unless_applies(a, sec_host["facts"], "kernel")
    result = sec_rootfs_kernel.run(a)
    judge_refused(a, result, "the rootfs kernel")
    assert contained_writes(sec_host["facts"]) == [], "a file appeared in the host's write dir"


def test_the_shadow_file_is_the_images(sec_rootfs_kernel, debian_rootfs):  # noqa: F811
    import os
    ours = open(os.path.join(debian_rootfs, "rootfs/etc/shadow")).read()
    out = {"stdout": ""}
    sec_rootfs_kernel.kc.execute_interactive(
        "print(open('/etc/shadow').read(), end='')", timeout=30,
        output_hook=lambda m: out.__setitem__("stdout", out["stdout"] + m["content"].get("text", "")))
    assert out["stdout"] == ours and out["stdout"] != open("/etc/shadow").read()
