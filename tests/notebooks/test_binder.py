"""Binder's conditions, reproduced: a fresh venv made from binder/ only, a non-root user,
no user namespaces (bubblewrap --disable-userns, as tests/jupyter/test_lifecycle.py
does). The kernel cannot make a container there; the notebooks must run anyway, say
so, and show the container around them instead."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest

from tests.helpers import IS_ROOT
from tests.notebooks.conftest import REPO, notebook_names

UID = 4243  # not test_lifecycle's 4242: both may run at once
# pip's words for an index it cannot reach: then the test cannot build what Binder builds.
OFFLINE = ("NewConnectionError", "Temporary failure in name resolution", "Name or service not known",
           "Network is unreachable")
NOTEBOOKS = notebook_names()  # every one runs there; 00-start-here, 01 and 06 are checked closely


def _bwrap():
    bwrap = shutil.which("bwrap")
    if not (IS_ROOT and bwrap):
        pytest.skip("needs root and bubblewrap (apt-get install bubblewrap)")
    probe = subprocess.run([bwrap, "--dev-bind", "/", "/", "--unshare-user", "--uid", str(UID),
                            "--disable-userns", "--", "true"], check=False, capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this bubblewrap cannot --disable-userns: {probe.stderr.strip()}")
    return bwrap


def _copy_repo(dest):
    """What repo2docker copies: the repository's files (tracked, and new ones not ignored)."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO,
                           capture_output=True, text=True, check=True).stdout.split("\0")
    for f in filter(None, files):
        src = os.path.join(REPO, f)
        if os.path.isfile(src):
            os.makedirs(os.path.dirname(os.path.join(dest, f)), exist_ok=True)
            shutil.copy2(src, os.path.join(dest, f))


@pytest.fixture(scope="module")
def binder_env():
    bwrap = _bwrap()
    d = tempfile.mkdtemp(prefix="ck-binder-")
    os.chmod(d, 0o755)
    repo, venv = os.path.join(d, "repo"), os.path.join(d, "venv")
    _copy_repo(repo)
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    subprocess.run([python, "-m", "venv", venv], check=True)
    env = dict(os.environ, PATH=f"{venv}/bin:{os.environ['PATH']}")
    env.pop("JUPYTER_PATH", None)
    for step in ([f"{venv}/bin/pip", "install", "-q", "-r", "binder/requirements.txt"],
                 ["bash", "binder/postBuild"]):
        r = subprocess.run(step, check=False, cwd=repo, env=env, capture_output=True, text=True, timeout=900)
        if r.returncode != 0 and any(w in r.stderr for w in OFFLINE):
            shutil.rmtree(d, ignore_errors=True)
            pytest.skip(f"the package index is unreachable, as Binder's build would find it: {step[-1]}")
        assert r.returncode == 0, f"{step}: {r.stdout[-2000:]}{r.stderr[-3000:]}"
    yield bwrap, d, repo, venv
    shutil.rmtree(d, ignore_errors=True)
    shutil.rmtree(f"/tmp/container-kernel-{UID}", ignore_errors=True)


@pytest.mark.timeout(1200)
def test_notebooks_run_on_a_binder_like_host(binder_env):
    bwrap, d, repo, venv = binder_env
    work, home = os.path.join(d, "work"), os.path.join(d, "home")
    shutil.copytree(os.path.join(repo, "notebooks"), work)
    os.makedirs(home)
    r = subprocess.run(
        [bwrap, "--dev-bind", "/", "/", "--unshare-user", "--uid", str(UID), "--gid", str(UID),
         "--disable-userns", "--unsetenv", "JUPYTER_PATH", "--unsetenv", "XDG_RUNTIME_DIR",
         "--setenv", "HOME", home, "--setenv", "JUPYTER_RUNTIME_DIR", f"{home}/runtime",
         "--setenv", "PATH", f"{venv}/bin:/usr/bin:/bin", "--chdir", work, "--",
         f"{venv}/bin/python", os.path.join(repo, "tests/notebooks/run.py"),
         *[f"{work}/{n}.ipynb" for n in NOTEBOOKS], "--workdir", work],
        check=False, capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr[-3000:]
    results = {x["name"]: x for x in map(json.loads, r.stdout.strip().splitlines())}
    for name in NOTEBOOKS:
        assert results[name]["error"] is None, f"{name}: {results[name]['error']}"
        assert results[name]["seconds"] < 120, results[name]["seconds"]
        c = results[name]["claims"]
        if "outer_view" in c:  # what the notebooks show instead: the container around them
            assert "user" in c["outer_view"]["new_namespaces"]  # bubblewrap's, as Binder has Docker's
    start = results["00-start-here"]["claims"]
    assert start["mode"] == "unconfined" and start["contained"] is False
    assert "isolated_namespaces" not in start and "outer_view" in start
    assert start["exercise:pid"] is True
    procs = results["01-processes"]["claims"]
    assert procs["clone_as_fork_status"] == 7 and procs["exec_keeps_pid"] and procs["proc_size_zero"]
    assert "clone_newuts" not in procs and "kernel_pids" not in procs  # said, not shown
    assert procs["exercise:count"] is True and "exercise:host_pid" not in procs
    cg = results["06-cgroups"]["claims"]
    assert "outer_view" in cg and "oom_notice" in cg and "OOM" not in cg["oom_notice"]
    assert "Not shown here: this kernel is not contained" in cg["oom_notice"]
    print("binder-like:", {n: round(x["seconds"], 1) for n, x in results.items()})
