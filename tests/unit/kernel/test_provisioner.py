"""The provisioner's wait for the launcher's word (post_launch), with a real process as the
launcher: a launcher that writes why it failed and exits at once must have its reason
reach the client, however soon it dies (CI once lost "in use by" to that race)."""

import asyncio
import subprocess
import sys
from jupyter_client.kernelspec import KernelSpec

import pytest

from container_kernel.kernel.launch import STATUS
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
