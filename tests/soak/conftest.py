"""The soak and scale tests' kernelspec, installed by the real `container-kernel install`
into a temporary prefix put first on JUPYTER_PATH (for this module's tests only)."""
import os

import pytest

from tests.helpers import CGROUP, IS_ROOT, ck

NAME = "ck-soak"


@pytest.fixture(scope="module")
def soak_spec(tmp_path_factory):
    """(kernel name, runtime dir for the connection files) as a Jupyter server has them."""
    if not (IS_ROOT and CGROUP):
        pytest.skip("the soak tests need root and a cgroup filesystem (OOM endings need a memory cgroup)")
    prefix = tmp_path_factory.mktemp("soak-prefix")
    r = ck("install", "--prefix", str(prefix), "--name", NAME, "--memory", "256M")
    assert r.returncode == 0, r.stderr
    runtime = prefix / "runtime"
    runtime.mkdir()
    with pytest.MonkeyPatch.context() as mp:
        old = os.environ.get("JUPYTER_PATH")
        mp.setenv("JUPYTER_PATH", os.pathsep.join([str(prefix / "share/jupyter")] + ([old] if old else [])))
        yield NAME, str(runtime)
