"""The kernel's socket dir: unix socket paths must fit in sun_path (107 bytes)."""
import os

import pytest

from container_kernel.kernel.launch import socket_dir
from container_kernel.runtime.errors import ContainerError


def test_a_run_base_too_long_for_socket_paths_is_refused_and_nothing_is_made(tmp_path):
    base = str(tmp_path / ("x" * 100))
    with pytest.raises(ContainerError) as e:
        socket_dir(base, "k-0123456789ab")
    assert "107 bytes" in str(e.value) and "\n" not in str(e.value)
    assert not os.path.exists(base)


def test_a_short_one_is_made_private_with_its_owner(tmp_path):
    base = str(tmp_path / "run")
    path = socket_dir(base, "k-0123456789ab")
    assert os.stat(path).st_mode & 0o777 == 0o700
    with open(os.path.join(path, "owner")) as f:
        assert f.read().split()[0] == str(os.getpid())
