"""A rootless overlay rootfs: what the spec refuses, and who removes an upper dir the user cannot."""
import os

import pytest

from container_kernel.runtime import overlay, rundir, unshare_rm
from container_kernel.runtime.errors import ContainerError
from container_kernel.runtime.parse import RootFS


def rootfs(path):
    return RootFS("overlay", str(path), "deb")


def test_an_old_kernel_is_refused_in_one_line_with_what_to_do(tmp_path):
    with pytest.raises(ContainerError) as e:
        overlay.check_rootless(rootfs(tmp_path), release="5.10.0-28-amd64", uid=os.geteuid())
    text = str(e.value)
    assert e.value.exit_code == 2 and "\n" not in text
    assert "Linux >= 5.11" in text and "5.10.0-28-amd64" in text and "fuse-overlayfs" in text
    assert f"--rootfs {tmp_path} (read-only)" in text


def test_a_tree_of_another_owner_is_refused(tmp_path):
    with pytest.raises(ContainerError, match=r"is owned by uid \d+, not by you \(uid 4242\)"):
        overlay.check_rootless(rootfs(tmp_path), release="6.1.0", uid=4242)


def test_a_new_kernel_and_the_users_own_tree_pass(tmp_path):
    overlay.check_rootless(rootfs(tmp_path), release="6.18.0", uid=os.stat(tmp_path).st_uid)


def test_a_tree_a_user_cannot_remove_goes_to_the_unshare_helper(tmp_path, monkeypatch):
    asked = []
    (tmp_path / "run/upper").mkdir(parents=True)

    def refuse(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(rundir, "_remove_tree", refuse)
    monkeypatch.setattr(unshare_rm, "remove", asked.append)
    monkeypatch.setattr(os, "geteuid", lambda: 1001)
    rundir.remove_tree(str(tmp_path / "run"))
    assert asked == [[str(tmp_path / "run")]]
    with pytest.raises(PermissionError):  # the helper itself never recurses into another helper
        rundir.remove_tree(str(tmp_path / "run"), unshare=False)
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    with pytest.raises(PermissionError):  # root is never refused for want of a mapping
        rundir.remove_tree(str(tmp_path / "run"))
