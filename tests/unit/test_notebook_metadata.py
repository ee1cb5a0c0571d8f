"""The teaching notebooks open on the container kernel: their metadata names its kernelspec."""
import glob
import json
import os

import pytest

from container_kernel.kernel.kernelspec import DEFAULT_DISPLAY, DEFAULT_NAME

NOTEBOOKS = sorted(glob.glob(os.path.join(os.path.dirname(__file__), "..", "..", "notebooks", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[os.path.basename(p) for p in NOTEBOOKS])
def test_notebook_names_the_container_kernel(path):
    with open(path) as f:
        spec = json.load(f)["metadata"]["kernelspec"]
    assert (spec["name"], spec["display_name"]) == (DEFAULT_NAME, DEFAULT_DISPLAY)


def test_there_are_notebooks():
    assert NOTEBOOKS
