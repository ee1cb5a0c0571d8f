"""Kernelspecs for the kernel tests, installed by the real `container-kernel install`
into a temporary prefix that JUPYTER_PATH points at."""
import json
import os
import shutil

import pytest

from tests.helpers import IS_ROOT, ck

NAMES = {"default": [], "m200": ["--memory", "200M"],
         # test_magics: a ceiling that %cgroup_set may move under, never above
         "ceil": ["--memory", "512M", "--cpus", "1", "--pids", "100"]}


@pytest.fixture(scope="session")
def kernel_prefix(tmp_path_factory):
    if not IS_ROOT:
        pytest.skip("the container kernel tests need root (rootless kernels are tested separately)")
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    for name, opts in NAMES.items():
        r = ck("install", "--prefix", str(prefix), "--name", f"ck-test-{name}",
               "--display-name", f"CK test {name}", *opts)
        assert r.returncode == 0, r.stderr
    # A client that ignores provisioners: the same kernelspec without the metadata.
    kernels = prefix / "share/jupyter/kernels"
    shutil.copytree(kernels / "ck-test-default", kernels / "ck-test-tcp")
    spec = json.loads((kernels / "ck-test-tcp/kernel.json").read_text())
    del spec["metadata"]["kernel_provisioner"]
    (kernels / "ck-test-tcp/kernel.json").write_text(json.dumps(spec))
    old = os.environ.get("JUPYTER_PATH")
    os.environ["JUPYTER_PATH"] = str(prefix / "share/jupyter")
    yield prefix
    if old is None:
        del os.environ["JUPYTER_PATH"]
    else:
        os.environ["JUPYTER_PATH"] = old
