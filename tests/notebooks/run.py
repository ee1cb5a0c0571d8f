"""Execute a teaching notebook with nbclient and read back what it claims.

Also run as a script (the Binder test runs it with the Binder venv's Python, as
another user): `python run.py NOTEBOOK... --workdir DIR` prints one JSON line per
notebook: {"name", "claims", "seconds", "error"}.
"""
import json
import os
import sys
import time

import nbformat
from nbclient import NotebookClient

CLAIM_MIME = "application/vnd.container-kernel.claim+json"  # notebooks/lesson.py
KERNEL = "container-python"
CELL_TIMEOUT = 90


def with_solutions(nb):
    """The exercise cells' solutions in place of their `...`, so each check really asserts."""
    for cell in nb.cells:
        solution = cell.metadata.get("exercise", {}).get("solution")
        if solution is not None:
            cell.source = solution
    return nb


def text_of(outputs):
    parts = []
    for out in outputs:
        if out.output_type == "stream":
            parts.append(out.text)
        elif out.output_type in ("display_data", "execute_result"):
            parts.append(out.get("data", {}).get("text/plain", ""))
        elif out.output_type == "error":
            parts.append(f"{out.ename}: {out.evalue}")
    return "".join(parts)


def claims_of(nb):
    """{name: value}: every lesson.claim() display, and the text of each claim_output cell."""
    claims = {}
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        for out in cell.get("outputs", []):
            data = out.get("data", {}) if out.output_type == "display_data" else {}
            if CLAIM_MIME in data:
                claims[data[CLAIM_MIME]["name"]] = data[CLAIM_MIME]["value"]
        name = cell.metadata.get("claim_output")
        if name:
            claims[name] = text_of(cell.get("outputs", []))
    return claims


def execute(path, workdir, kernel_name=KERNEL, solutions=True, slow=1):
    """Run the notebook top to bottom in workdir (the kernel's cwd); (nb, claims, seconds).
    A cell that raises fails the run (nbclient's CellExecutionError). slow scales the
    time limits (tests.helpers.SLOW)."""
    nb = nbformat.read(path, as_version=4)
    if solutions:
        with_solutions(nb)
    client = NotebookClient(nb, kernel_name=kernel_name, timeout=CELL_TIMEOUT * slow,
                            startup_timeout=60 * slow, resources={"metadata": {"path": workdir}})
    start = time.monotonic()
    client.execute()
    return nb, claims_of(nb), time.monotonic() - start


def main(argv):
    workdir = argv[argv.index("--workdir") + 1]
    paths = [a for i, a in enumerate(argv) if a != "--workdir" and (i == 0 or argv[i - 1] != "--workdir")]
    for path in paths:
        name = os.path.splitext(os.path.basename(path))[0]
        try:
            _, claims, seconds = execute(path, workdir)
            print(json.dumps({"name": name, "claims": claims, "seconds": seconds, "error": None}))
        except Exception as e:  # noqa: BLE001 - reported to the test, which fails with it
            print(json.dumps({"name": name, "claims": {}, "seconds": None,
                              "error": f"{type(e).__name__}: {e}"[-4000:]}))
        sys.stdout.flush()


if __name__ == "__main__":
    main(sys.argv[1:])
