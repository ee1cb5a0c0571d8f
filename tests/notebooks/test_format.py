"""The committed notebooks: no outputs, written by their generator, linked in order, and
every exercise followed by a check. No kernel needed."""
import os
import re
import subprocess
import sys

import nbformat

from tests.notebooks.conftest import NOTEBOOKS, REPO, notebook_names


def read(name):
    return nbformat.read(os.path.join(NOTEBOOKS, f"{name}.ipynb"), as_version=4)


def test_outputs_are_not_committed():
    dirty = [(name, i) for name in notebook_names() for i, c in enumerate(read(name).cells)
             if c.cell_type == "code" and (c.outputs or c.execution_count is not None)]
    assert not dirty, f"cells with outputs or execution counts (clear them): {dirty}"


def test_notebooks_are_what_the_generator_writes():
    r = subprocess.run([sys.executable, os.path.join(REPO, "tools/notebooks/make.py"), "--check"],
                       check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_start_here_links_every_notebook_in_order():
    text = "\n".join(c.source for c in read("00-start-here").cells if c.cell_type == "markdown")
    links = list(dict.fromkeys(re.findall(r"\]\(([\w.-]+)\.ipynb\)", text)))  # first mentions
    others = [n for n in notebook_names() if n not in ("00-start-here",)]
    assert set(links) == set(others), (links, others)
    numbered = [n for n in links if n != "00-welcome"]
    assert numbered == sorted(numbered)


def test_every_exercise_is_followed_by_a_check():
    for name in notebook_names():
        cells = read(name).cells
        for i, cell in enumerate(cells):
            if "exercise" in cell.metadata:
                assert "= ..." in cell.source, (name, i, "the learner's cell leaves ... to fill")
                assert "lesson.check(" in cells[i + 1].source, (name, i, "no check cell after it")
