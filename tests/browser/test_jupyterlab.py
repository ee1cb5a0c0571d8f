"""JupyterLab in a real browser: Playwright drives Debian's chromium (no downloaded browser).

Opens JupyterLab, picks the container kernel in the launcher, runs %container_info and
%container_monitor, checks what is rendered and that the monitor's values move; checks
that a new notebook gets the container kernel (install --default) and that
jupyter-resource-usage's Kernel Usage panel shows the container's limit; and saves
screenshots (docs/screenshots/, used by the README).
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import urllib.request

import pytest

from tests.helpers import CK, IS_ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "docs", "screenshots")
DISPLAY = "Python 3 (container, browser test)"
TOKEN = "ck-browser-test"

pytestmark = [
    pytest.mark.skipif(not IS_ROOT, reason="the container kernel needs root here"),
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)"),
]


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    pytest.importorskip("playwright", reason="needs the playwright package (the test extras)")
    root = tmp_path_factory.mktemp("lab")
    prefix = tmp_path_factory.mktemp("lab-prefix")
    # --default: the server finds the default kernel in prefix/etc/jupyter, as `make lab` does
    r = subprocess.run([CK, "install", "--prefix", str(prefix), "--name", "ck-browser", "--default",
                        "--display-name", DISPLAY, "--memory", "512M", "--cpus", "1", "--pids", "128"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    port = _free_port()
    env = dict(os.environ, JUPYTER_PATH=str(prefix / "share/jupyter"),
               JUPYTER_CONFIG_PATH=str(prefix / "etc/jupyter"))
    log = open(root / "server.log", "w")
    server = subprocess.Popen(
        [os.path.join(os.path.dirname(sys.executable), "jupyter-lab"), "--no-browser", "--allow-root",
         f"--port={port}", "--ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}",
         f"--ServerApp.root_dir={root}", "--LabApp.news_url=", "--ServerApp.disable_check_xsrf=True"],
        stdout=log, stderr=subprocess.STDOUT, env=env)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 60
    while time.time() < deadline:
        try:
            urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=1)
            break
        except OSError:
            time.sleep(0.3)
    else:
        server.kill()
        pytest.fail("JupyterLab did not start: " + (root / "server.log").read_text()[-2000:])
    yield url
    server.terminate()
    try:
        server.wait(20)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()
    log.close()


@pytest.fixture(scope="module")
def page(lab):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(f"{lab}/lab?token={TOKEN}")
        pg.wait_for_selector(f'.jp-LauncherCard[title="{DISPLAY}"]', timeout=60000)
        yield pg
        browser.close()


def run_cell(page, code, wait_for, timeout=60000):
    """Type code into the last cell, run it, wait for a selector in its output."""
    cells = page.locator(".jp-Notebook .jp-Cell")
    # Pin the index: Shift+Enter adds a cell below, and `.last` would then mean that one.
    cell = cells.nth(cells.count() - 1)
    cell.locator(".cm-content").click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Shift+Enter")
    try:
        cell.locator(".jp-OutputArea-output").first.wait_for(timeout=timeout)
        cell.locator(wait_for).first.wait_for(timeout=timeout)
    except Exception:
        os.makedirs(SHOTS, exist_ok=True)
        cell.scroll_into_view_if_needed()
        page.screenshot(path=os.path.join(SHOTS, "failure.png"))
        raise AssertionError(f"cell {code!r} did not show {wait_for!r}: {cell.inner_text()[:2000]}")
    return cell


def test_container_kernel_in_jupyterlab(page):
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, "launcher.png"))
    page.locator(f'.jp-LauncherCard[title="{DISPLAY}"][data-category="Notebook"]').click()
    page.wait_for_selector(".jp-Notebook .jp-Cell .cm-content", timeout=60000)
    # the kernel chip in the toolbar names our kernel
    page.wait_for_selector(f'.jp-Toolbar >> text="{DISPLAY}"', timeout=60000)
    # the kernel is up (a cell run before the session is connected is dropped)
    page.wait_for_selector(f'.jp-StatusBar-Widget >> text="{DISPLAY} | Idle"', timeout=60000)

    cell = run_cell(page, "%container_info", "table")
    html = cell.locator(".jp-OutputArea").first.inner_text()
    for word in ("pid", "net", "mnt", "uts", "ipc", "cgroup", "memory"):
        assert word in html, word
    assert "512 MiB" in html  # the kernelspec's memory limit, read from the real cgroup
    page.screenshot(path=os.path.join(SHOTS, "container_info.png"), full_page=True)

    cell = run_cell(page, "%container_monitor", ".widget-box, .jupyter-widgets")
    text0 = cell.locator(".jp-OutputArea").first.inner_text()
    assert "memory" in text0.lower()
    # live: allocate memory and the monitor's numbers move within a few seconds
    run_cell(page, "x = bytearray(150 * 1024 * 1024); print('allocated')", "text=allocated")
    deadline = time.time() + 10
    text1 = text0
    while time.time() < deadline and text1 == text0:
        time.sleep(0.5)
        text1 = cell.locator(".jp-OutputArea").first.inner_text()
    assert text1 != text0, "the monitor did not update"
    page.screenshot(path=os.path.join(SHOTS, "container_monitor.png"), full_page=True)

    # Interrupt from the toolbar's stop button: a busy loop ends in KeyboardInterrupt within 1 s.
    cells = page.locator(".jp-Notebook .jp-Cell")
    cell = cells.nth(cells.count() - 1)
    cell.locator(".cm-content").click()
    page.keyboard.insert_text("while True: pass")
    page.keyboard.press("Shift+Enter")
    page.wait_for_selector(f'.jp-StatusBar-Widget >> text="{DISPLAY} | Busy"', timeout=30000)
    time.sleep(0.5)
    t0 = time.monotonic()
    page.locator('.jp-Toolbar [data-command="notebook:interrupt-kernel"]').first.click()
    cell.locator("text=KeyboardInterrupt").first.wait_for(timeout=10000)
    assert time.monotonic() - t0 < 1.0 + 0.5  # 1 s, plus the browser's own round trips


def new_notebook_from_the_file_menu(page):
    """File > New > Notebook. JupyterLab asks for a kernel with the server's default
    preselected: returns that choice's name, after accepting it and the kernel is idle."""
    page.locator(".lm-MenuBar-itemLabel", has_text="File").click()
    page.locator('.lm-Menu-item[data-type="submenu"]', has_text="New").first.hover()
    page.locator('.lm-Menu-item[data-command="notebook:create-new"]').first.click()
    select = page.locator(".jp-Dialog select").first
    select.wait_for(timeout=30000)
    offered = select.evaluate("s => s.options[s.selectedIndex].text")
    page.screenshot(path=os.path.join(SHOTS, "default_kernel.png"))
    page.locator(".jp-Dialog .jp-mod-accept").click()
    page.wait_for_selector(f'.jp-StatusBar-Widget >> text="{offered} | Idle"', timeout=60000)
    return offered


def dismiss_news(page):
    """The "notified about official Jupyter news?" toast, which would cover the panel's shot."""
    no = page.locator(".Toastify button", has_text="No")
    if no.count():
        no.first.click()


def widen_right_sidebar(page, width=380):
    """Here the right sidebar opens at zero width (its split handle stays at the window's
    edge): the panel is in the page but not visible. Drag the handle, as a user would."""
    page.wait_for_selector("#jp-right-stack:not(.lm-mod-hidden)", state="attached", timeout=10000)
    stack = page.locator("#jp-right-stack")
    if stack.bounding_box()["width"] >= width:
        return
    handle = page.locator("#jp-main-split-panel > .lm-SplitPanel-handle").nth(1).bounding_box()
    x, y = handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x - width, y, steps=10)
    page.mouse.up()


def test_a_new_notebook_gets_the_container_kernel_by_default(page):
    os.makedirs(SHOTS, exist_ok=True)
    # a new launcher puts the server's default kernel first among the notebooks
    page.locator('.jp-FileBrowser [data-command="launcher:create"]').first.click()
    first = page.locator('.jp-Launcher:visible .jp-LauncherCard[data-category="Notebook"]').first
    assert first.get_attribute("title") == DISPLAY
    assert new_notebook_from_the_file_menu(page) == DISPLAY


def test_kernel_usage_panel_shows_the_containers_limit(page):
    """jupyter-resource-usage's Kernel Usage sidebar, fed by our usage_reply: the kernelspec's
    512 MiB and 1 CPU, not the host's RAM and CPUs."""
    os.makedirs(SHOTS, exist_ok=True)
    new_notebook_from_the_file_menu(page)
    dismiss_news(page)
    # Busy for a while, so the panel's CPU line (from the second poll on) has something to show.
    cells = page.locator(".jp-Notebook .jp-Cell")
    cells.nth(cells.count() - 1).locator(".cm-content").click()
    page.keyboard.insert_text("import time\nt = time.time()\nwhile time.time() - t < 20: pass")
    page.keyboard.press("Shift+Enter")
    page.locator('.jp-SideBar.jp-mod-right .lm-TabBar-tab[data-id="kernelusage-panel-id"]').click()
    panel = page.locator(".jp-KernelUsage-content")
    widen_right_sidebar(page)
    panel.locator("text=Total:").wait_for(timeout=30000)
    panel.locator("text=/used on \\d+ CPU/").wait_for(timeout=30000)
    text = panel.inner_text()
    page.screenshot(path=os.path.join(SHOTS, "kernel_usage.png"))
    total = re.search(r"Total:\s*([\d.]+) (\w+)", text)
    assert total and total.groups() == ("512.00", "MB"), text  # the panel's MB are MiB
    assert re.search(r"used on 1 CPU\b", text), text  # the quota, not this host's CPUs
    assert "GB" not in text, text  # nothing of the host's RAM
