"""Faults that say what happened: one line each, and nothing left behind."""
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.helpers import CK, ck, environ, requires_cgroups, requires_root

RUN_BASE = "/run/container-kernel"


def made():
    """Our named objects on this host now: run dirs and cgroups."""
    return set(glob.glob(f"{RUN_BASE}/*")) | set(glob.glob("/sys/fs/cgroup/*/container-kernel/*/"))


def one_line(r, code, says):
    assert r.returncode == code, (r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert says in r.stderr, r.stderr


def tcp_connection_file(path):
    path.write_text(json.dumps({"transport": "tcp", "ip": "127.0.0.1", "shell_port": 1, "iopub_port": 2,
                                "stdin_port": 3, "control_port": 4, "hb_port": 5, "key": "",
                                "signature_scheme": "hmac-sha256"}))
    return str(path)


@requires_root
def test_a_deleted_notebook_dir_is_one_line_and_makes_nothing(tmp_path):
    conn = tcp_connection_file(tmp_path / "conn.json")
    gone = tmp_path / "notebooks"
    gone.mkdir()
    cid = f"ck-fault-{os.getpid()}"  # the name of all it would make: <cid> and k-<cid>
    # The shell stands in for the Jupyter server whose notebook dir was removed under it.
    r = subprocess.run(["sh", "-c", f'cd "{gone}" && rmdir "{gone}" && exec "{sys.executable}" '
                        f'-m container_kernel kernel -f "{conn}"'], capture_output=True, text=True,
                       timeout=30, env=dict(os.environ, CK_CONTAINER_ID=cid))
    one_line(r, 125, "the notebook's directory has been deleted")
    assert [x for x in made() if cid in x] == []


def test_an_unreadable_connection_file_is_one_line(tmp_path):
    r = subprocess.run([sys.executable, "-m", "container_kernel", "kernel", "-f",
                        str(tmp_path / "missing.json")], capture_output=True, text=True, timeout=30)
    one_line(r, 2, "cannot read the connection file")


@requires_root
def test_a_kernelspec_whose_python_is_gone_says_so(tmp_path):
    from jupyter_client import KernelManager
    prefix = tmp_path / "prefix"
    assert ck("install", "--prefix", str(prefix), "--name", "ck-gone").returncode == 0
    path = prefix / "share/jupyter/kernels/ck-gone/kernel.json"
    spec = json.loads(path.read_text())
    spec["argv"][0] = str(tmp_path / "removed-venv/bin/python")
    path.write_text(json.dumps(spec))
    before = made()
    with environ(JUPYTER_PATH=prefix / "share/jupyter"):
        km = KernelManager(kernel_name="ck-gone")
        with pytest.raises(RuntimeError, match="its Python .* is gone") as e:
            km.start_kernel()
        assert "\n" not in str(e.value)
    assert made() == before


@requires_cgroups
def test_a_parent_pids_max_that_refuses_the_fork_is_one_line_and_leaves_nothing():
    parent = "/sys/fs/cgroup/pids/container-kernel"
    if not os.path.isdir(parent):
        pytest.skip("no cgroup v1 pids hierarchy here (the v2 VM has its own test of pids.max)")
    before = made()
    with open(f"{parent}/pids.max") as f:
        old = f.read().strip()
    with open(f"{parent}/pids.max", "w") as f:
        f.write("1")  # our own parent cgroup: its pids.max, restored at once
    try:
        r = ck("run", "--", "true")
    finally:
        with open(f"{parent}/pids.max", "w") as f:
            f.write(old)
    one_line(r, 125, "cannot fork the container's init")
    assert made() == before


@requires_root
def test_a_full_run_base_is_one_line_and_leaves_nothing():
    """Rootless, the run base is $XDG_RUNTIME_DIR/container-kernel: here a full tmpfs."""
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (apt-get install util-linux)")
    top = tempfile.mkdtemp(prefix="ck-fault-", dir="/tmp")  # traversable by nobody, unlike tmp_path
    os.chmod(top, 0o755)
    full = os.path.join(top, "full")
    os.mkdir(full)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k,mode=0777", "ck-fault-full", str(full)],
                   check=True)
    try:
        with open(os.path.join(full, "filler"), "wb") as f:
            f.write(b"x" * 4096)
        r = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "env", "-i",
                            f"XDG_RUNTIME_DIR={full}", "PATH=/usr/bin:/bin", CK, "run", "--", "true"],
                           capture_output=True, text=True, timeout=30)
        left = sorted(os.listdir(full))
    finally:
        subprocess.run(["umount", full], check=True)
        shutil.rmtree(top)
    if "user namespaces" in r.stderr:
        pytest.skip(f"no user namespaces for nobody here: {r.stderr.strip()}")
    one_line(r, 125, "cannot create the run dir")
    assert "full" in r.stderr and left in (["filler"], ["container-kernel", "filler"])
