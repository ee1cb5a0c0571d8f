"""Write the teaching notebooks (notebooks/NN-*.ipynb) from the sources beside this file.

    python tools/notebooks/make.py           write them
    python tools/notebooks/make.py --check   exit 1 if a committed notebook differs
    python tools/notebooks/make.py NAME...   only these

Each source module (nNN_*.py) holds CELLS, a list made with md() and code(). The
.ipynb files are what is committed and executed; they are written without outputs.
A code cell may carry, in its metadata:
  - "exercise": {"solution": SOURCE}: tests/notebooks runs SOURCE in its place, so the
    "check your work" cell after it really asserts;
  - "claim_output": NAME: tests/notebooks reads the cell's text output as claim NAME
    (for what a magic prints, such as %%sandbox's OOM notice).
"""
import importlib
import os
import sys

import nbformat

HERE = os.path.dirname(os.path.abspath(__file__))
NOTEBOOKS = os.path.join(HERE, "..", "..", "notebooks")
SOURCES = {  # notebook -> source module, in the order 00-start-here lists them
    "00-start-here": "n00_start_here",
    "01-processes": "n01_processes",
    "02-uts": "n02_uts",
    "03-user-namespaces": "n03_user_namespaces",
    "04-mounts": "n04_mounts",
    "05-pid-and-init": "n05_pid_and_init",
    "06-cgroups": "n06_cgroups",
    "07-network-namespaces": "n07_network_namespaces",
    "08-the-kernel-you-are-in": "n08_kernel",
    "09-escape-lab": "n09_escape_lab",
}
# The same kernelspec as notebooks/00-welcome.ipynb: `container-kernel install`'s default.
METADATA = {"kernelspec": {"display_name": "Python 3 (container)", "language": "python",
                           "name": "container-python"},
            "language_info": {"name": "python"}}


def md(text):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(source, solution=None, claim_output=None, tags=()):
    cell = nbformat.v4.new_code_cell(source.strip("\n"))
    if solution is not None:
        cell.metadata["exercise"] = {"solution": solution.strip("\n")}
    if claim_output:
        cell.metadata["claim_output"] = claim_output
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def build(name):
    module = importlib.import_module(SOURCES[name])
    nb = nbformat.v4.new_notebook(metadata=METADATA)
    nb.cells = module.CELLS
    for i, cell in enumerate(nb.cells):
        cell["id"] = f"{name[:2]}-{i:02d}"  # stable ids: a rebuild changes only what changed
    return nb


def main(argv):
    sys.path.insert(0, HERE)
    stale = []
    names = [a for a in argv if not a.startswith("-")] or SOURCES
    for name in names:
        text = nbformat.writes(build(name)) + "\n"
        path = os.path.join(NOTEBOOKS, f"{name}.ipynb")
        if "--check" in argv:
            with open(path) as f:
                if f.read() != text:
                    stale.append(path)
        else:
            with open(path, "w") as f:
                f.write(text)
    for path in stale:
        print(f"{path} differs from its source in tools/notebooks (run tools/notebooks/make.py)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
