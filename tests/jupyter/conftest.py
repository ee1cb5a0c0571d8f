"""Kernelspecs for the kernel tests, installed by the real `container-kernel install`
into a temporary prefix that JUPYTER_PATH points at."""
import json
import shutil

import pytest

from tests.helpers import IS_ROOT, environ, install_kernels

NAMES = {"default": [], "m200": ["--memory", "200M"],
         # test_magics: a ceiling that %cgroup_set may move under, never above
         "ceil": ["--memory", "512M", "--cpus", "1", "--pids", "100"]}


@pytest.fixture(scope="session")
def kernel_prefix(tmp_path_factory):
    if not IS_ROOT:
        pytest.skip("the container kernel tests need root (rootless kernels are tested separately)")
    prefix = tmp_path_factory.mktemp("jupyter-prefix")
    share = install_kernels(prefix, {f"ck-test-{name}": ["--display-name", f"CK test {name}", *opts]
                                     for name, opts in NAMES.items()})
    # A client that ignores provisioners: the same kernelspec without the metadata.
    kernels = prefix / "share/jupyter/kernels"
    shutil.copytree(kernels / "ck-test-default", kernels / "ck-test-tcp")
    spec = json.loads((kernels / "ck-test-tcp/kernel.json").read_text())
    del spec["metadata"]["kernel_provisioner"]
    (kernels / "ck-test-tcp/kernel.json").write_text(json.dumps(spec))
    with environ(JUPYTER_PATH=share):
        yield prefix
