"""The teaching notebooks run in a real container kernel: the kernelspec the notebooks
name (container-python), installed by `container-kernel install` into a temporary
prefix that JUPYTER_PATH points at, and each notebook executed in a copy of notebooks/."""
import os
import shutil

import pytest

from tests.helpers import IS_ROOT, environ, install_kernels

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
NOTEBOOKS = os.path.join(REPO, "notebooks")
TIMES = {}  # notebook -> seconds, said at the end of the run


def notebook_names():
    return sorted(f[:-len(".ipynb")] for f in os.listdir(NOTEBOOKS) if f.endswith(".ipynb"))


@pytest.fixture(scope="session")
def notebook_kernel(tmp_path_factory):
    if not IS_ROOT:
        pytest.skip("the container kernel tests need root (rootless kernels are tested separately)")
    prefix = tmp_path_factory.mktemp("nb-jupyter-prefix")
    with environ(JUPYTER_PATH=install_kernels(prefix, {"container-python": []})):
        yield prefix


@pytest.fixture
def workdir(tmp_path):
    """A copy of notebooks/ (lesson.py beside them): files a notebook writes stay out of the repo."""
    d = tmp_path / "notebooks"
    shutil.copytree(NOTEBOOKS, d, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
    return d


def pytest_terminal_summary(terminalreporter):
    if TIMES:
        terminalreporter.write_sep("-", "teaching notebooks: seconds top to bottom")
        for name, seconds in sorted(TIMES.items()):
            terminalreporter.write_line(f"{name:40} {seconds:6.1f}")
