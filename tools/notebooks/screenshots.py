"""Screenshots of executed teaching notebooks, for the README: docs/screenshots/notebook-NAME.png.

    sudo .venv/bin/python tools/notebooks/screenshots.py 06-cgroups 09-escape-lab

Each notebook runs in the container kernel (tests/notebooks/run.py, exercises solved),
is rendered by nbconvert, and Debian's chromium (through Playwright) takes the page.
"""
import os
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
SHOTS = os.path.join(REPO, "docs", "screenshots")
sys.path.insert(0, REPO)

import nbformat

from tests.notebooks.run import execute

MAX_HEIGHT = 4000  # px: the top of a long notebook is what a README reader looks at


def main(names):
    from playwright.sync_api import sync_playwright
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    with tempfile.TemporaryDirectory() as d:
        prefix = os.path.join(d, "prefix")
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "container-kernel"), "install",
                        "--prefix", prefix], check=True, capture_output=True)
        os.environ["JUPYTER_PATH"] = os.path.join(prefix, "share/jupyter")
        work = os.path.join(d, "notebooks")
        shutil.copytree(os.path.join(REPO, "notebooks"), work)
        pages = []
        for name in names:
            nb, _, seconds = execute(os.path.join(work, f"{name}.ipynb"), work)
            path = os.path.join(work, f"{name}.executed.ipynb")
            nbformat.write(nb, path)
            subprocess.run([sys.executable, "-m", "nbconvert", "--to", "html", path], check=True,
                           capture_output=True)
            pages.append((name, path.replace(".ipynb", ".html")))
            print(f"{name}: executed in {seconds:.1f} s")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True,
                                        args=["--no-sandbox", "--disable-gpu"])
            page = browser.new_page(viewport={"width": 1100, "height": 900})
            for name, html in pages:
                page.goto(f"file://{html}")
                height = min(page.evaluate("document.body.scrollHeight"), MAX_HEIGHT)
                out = os.path.join(SHOTS, f"notebook-{name}.png")
                page.screenshot(path=out, clip={"x": 0, "y": 0, "width": 1100, "height": height},
                                full_page=True)
                print("wrote", os.path.relpath(out, REPO))
            browser.close()


if __name__ == "__main__":
    main(sys.argv[1:] or ["06-cgroups", "09-escape-lab"])
