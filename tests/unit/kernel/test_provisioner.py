"""The provisioner's wait for the launcher's word (post_launch), with a real process as the
launcher: a launcher that writes why it failed and exits at once must have its reason
reach the client, however soon it dies (CI once lost "in use by" to that race)."""

import asyncio
import subprocess
import sys
from jupyter_client.kernelspec import KernelSpec

import pytest

from container_kernel.kernel import provisioner as provisioner_module
from container_kernel.kernel.launch import READY, STATUS
from container_kernel.kernel.provisioner import ContainerProvisioner


def provisioner(tmp_path, launcher_code):
    p = ContainerProvisioner(kernel_id="k", kernel_spec=KernelSpec(display_name="Test Kernel"))
    p.socket_dir = str(tmp_path)
    p.process = subprocess.Popen([sys.executable, "-c", launcher_code])
    p.process.wait()  # dead before post_launch first looks: the race's worst case
    return p


def test_a_launcher_dead_before_the_first_look_still_has_its_error_reported(tmp_path):
    status = tmp_path / STATUS
    p = provisioner(tmp_path, f"import os; open({str(status)!r} + '.tmp', 'w').write("
                              f"'error the layer nb is in use by abc (pid 1)');"
                              f"os.rename({str(status)!r} + '.tmp', {str(status)!r})")
    with pytest.raises(RuntimeError, match=r"^Test Kernel could not start: the layer nb is in use by abc"):
        asyncio.run(p.post_launch())
    assert not status.exists()


def test_a_launcher_dead_without_a_word_is_left_to_jupyter_client(tmp_path):
    p = provisioner(tmp_path, "raise SystemExit(3)")
    asyncio.run(p.post_launch())  # returns: the client then sees a dead kernel, as for a plain one
    assert p.process.returncode == 3


def launcher_that_binds(tmp_path, say_ready_after=None):
    """A stand-in launcher (a real process): says "started" and makes the five socket
    files at once; says ready (as the kernel's extension does) after say_ready_after s."""
    from jupyter_client import KernelManager
    km = KernelManager(transport="ipc", ip=str(tmp_path / "k"))
    km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port = 1, 2, 3, 4, 5
    p = ContainerProvisioner(kernel_id="k", kernel_spec=KernelSpec(display_name="Test Kernel"), parent=km)
    p.socket_dir = str(tmp_path)
    ready = "" if say_ready_after is None else (
        f"time.sleep({say_ready_after})\nopen(os.path.join(d, {READY!r}), 'w').close()\n")
    code = (f"import os, time\nd = {str(tmp_path)!r}\n"
            f"for port in range(1, 6): open(os.path.join(d, f'k-{{port}}'), 'w').close()\n"
            f"open(os.path.join(d, 'status.tmp'), 'w').write('started')\n"
            f"os.rename(os.path.join(d, 'status.tmp'), os.path.join(d, {STATUS!r}))\n"
            f"{ready}time.sleep(30)\n")
    p.process = subprocess.Popen([sys.executable, "-c", code])
    return p


def test_the_wait_ends_on_the_extensions_word_not_on_the_sockets(tmp_path):
    """Bound at once, ready 0.3 s later: the start waits for the word (inotify wakes it)."""
    p = launcher_that_binds(tmp_path, say_ready_after=0.3)
    try:
        asyncio.run(p.post_launch())
        assert p.start_ended == "ready"
        assert p.process.poll() is None  # it returned on the word, not on the launcher's end
        assert not (tmp_path / READY).exists()  # taken, for the next start's word
    finally:
        p.process.kill()
        p.process.wait()


def test_without_the_word_the_sockets_do_after_the_grace(tmp_path, monkeypatch):
    """A kernel whose extension did not load never says ready: the start ends on the
    sockets alone, READY_GRACE after they were all there."""
    monkeypatch.setattr(provisioner_module, "READY_GRACE", 0.3)
    p = launcher_that_binds(tmp_path)
    try:
        asyncio.run(p.post_launch())
        assert p.start_ended == "sockets"
        assert p.process.poll() is None
    finally:
        p.process.kill()
        p.process.wait()
