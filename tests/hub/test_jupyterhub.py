"""A class on one machine: JupyterHub (PyPI) with configurable-http-proxy (npm), the local
process spawner and three system users; docs/jupyterhub_config.py is the hub's config.

Two students log in through the hub's login form, take a token, start their servers and a
container kernel each over the server's REST API and websocket; the kernels are rootless
containers of their own user. They must not see each other's processes, files or home;
each memory limit fails an allocation in its own kernel only; %container_info names the
host user. Then one student's JupyterLab behind the hub, in chromium."""
import os
import shutil
import time

import pytest

from tests.hub.conftest import DISPLAY, KERNEL, MEMORY, PASSWORD, REPORT, STUDENTS, login
from tests.hub.kernel_ws import Kernel

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SHOTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                     "docs", "screenshots")
PAIR = STUDENTS[:2]


def wait_ready(hub, session, name, token, timeout=90):
    """Start name's server with its own token and wait until the hub says it is ready."""
    auth = {"Authorization": f"token {token}"}
    r = session.post(f"{hub.url}/hub/api/users/{name}/server", headers=auth, timeout=60)
    assert r.status_code in (201, 202), f"spawn {name}: {r.status_code} {r.text[:500]}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        model = session.get(f"{hub.url}/hub/api/users/{name}", headers=auth, timeout=30).json()
        server = model.get("servers", {}).get("")
        if server and server.get("ready"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{name}'s server is not ready after {timeout} s: {hub.log_tail()}")


@pytest.fixture(scope="module")
def classroom(hub, students):
    """{name: (pw, session, token, Kernel, kernel facts)} for the two students, ready."""
    t0 = time.monotonic()
    room = {}
    for name in PAIR:
        s = login(hub.url, name)
        assert s is not None, f"the hub refused {name}'s login: {hub.log_tail()}"
        r = s.post(f"{hub.url}/hub/api/users/{name}/tokens", json={"note": "ck-hub-test", "expires_in": 900},
                   headers={"X-XSRFToken": s.cookies.get("_xsrf", path="/hub/") or ""}, timeout=30)
        assert r.status_code == 201, f"token for {name}: {r.status_code} {r.text[:300]}"
        room[name] = [students[name], s, r.json()["token"]]
    hub.timings["log in"] = time.monotonic() - t0
    t0 = time.monotonic()
    for name, (pw, s, token) in room.items():
        wait_ready(hub, s, name, token)
        state = hub.api("GET", f"/users/{name}").json()["servers"][""]["state"]
        hub.pids[f"server of {name}"] = state["pid"]
    hub.timings["servers up"] = time.monotonic() - t0
    t0 = time.monotonic()
    kernels = {}
    try:
        for name, (pw, s, token) in room.items():
            kernels[name] = Kernel(s, f"{hub.url}/user/{name}", token, KERNEL)
            room[name].append(kernels[name])
        for name, (pw, s, token, k) in room.items():
            room[name].append(k.json("import json\ninfo = %container_info --json\nprint(json.dumps(info))"))
        hub.timings["kernels up"] = time.monotonic() - t0
        yield room
    finally:
        t0 = time.monotonic()
        for k in kernels.values():
            k.shutdown()
        def left(pw, server_too):
            """What the student's kernels (and, once it stopped, their server) left in the
            run base: while the server runs, its warm-start template's dir is its own."""
            base = f"/tmp/container-kernel-{pw.pw_uid}/container-kernel"
            names = os.listdir(base) if os.path.isdir(base) else []
            return [n for n in names if server_too or not n.startswith("t-")]

        for server_too in (False, True):
            for name, (pw, *_rest) in room.items():
                deadline = time.time() + 15
                while left(pw, server_too) and time.time() < deadline:
                    time.sleep(0.1)
                assert left(pw, server_too) == [], (name, server_too, left(pw, server_too))
                if not server_too:
                    r = hub.api("DELETE", f"/users/{name}/server")
                    assert r.status_code in (202, 204), r.text
            if not server_too:
                deadline = time.time() + 30
                while any(hub.api("GET", f"/users/{n}").json()["servers"] for n in room) and \
                        time.time() < deadline:
                    time.sleep(0.3)
        hub.timings["stop kernels and servers"] = time.monotonic() - t0


def test_students_get_their_own_servers_and_the_container_kernel_by_default(hub, classroom):
    for name, (pw, s, token, k, info) in classroom.items():
        auth = {"Authorization": f"token {token}"}
        specs = s.get(f"{hub.url}/user/{name}/api/kernelspecs", headers=auth, timeout=30).json()
        assert specs["default"] == KERNEL and list(specs["kernelspecs"]) == [KERNEL], specs
        # the server is a process of the student's
        with open(f"/proc/{hub.pids[f'server of {name}']}/status") as f:
            assert next(line for line in f if line.startswith("Uid:")).split()[1] == str(pw.pw_uid)
        # a terminal would be a shell outside every container: the config turns them off
        assert s.get(f"{hub.url}/user/{name}/api/terminals", headers=auth, timeout=30).status_code == 404
    a, b = PAIR
    r = classroom[b][1].get(f"{hub.url}/user/{a}/api/kernels", timeout=30,
                            headers={"Authorization": f"token {classroom[b][2]}"})
    assert r.status_code == 403, f"{b}'s token reached {a}'s server: {r.status_code}"
    third = STUDENTS[2]
    assert login(hub.url, third, PASSWORD + "-wrong") is None
    assert hub.api("GET", f"/users/{third}").json()["servers"] == {}


def test_percent_container_info_names_the_host_user(classroom):
    for name, (pw, s, token, k, info) in classroom.items():
        assert info["contained"] and info["host"], info["host_error"]
        assert info["host"]["rootless"]
        assert info["uid_map"][0] == [0, pw.pw_uid, 1], info["uid_map"]
        assert f"uid {pw.pw_uid} ({name})" in info["host"]["mapping"], info["host"]["mapping"]
        text = k.execute("%container_info").data["text/plain"]
        assert f"root inside is uid {pw.pw_uid} on the host" in text
        assert f"uid 0 inside = uid {pw.pw_uid} ({name}) on the host" in text, text
        with open(f"/proc/{info['host']['kernel_pid']}/status") as f:
            assert next(line for line in f if line.startswith("Uid:")).split()[1] == str(pw.pw_uid)


PROBE = """
import json, os, subprocess, time
marker = subprocess.Popen(["sleep", "{mine}"])
open("secret-of-{me}.txt", "w").write("{me}")
def cmdline(p):
    try:
        return open(f"/proc/{{p}}/cmdline", "rb").read().decode().split("\\0")
    except OSError:
        return []
for _ in range(100):  # until the child has exec'd sleep
    if cmdline(marker.pid)[:1] == ["sleep"]:
        break
    time.sleep(0.05)
pids = sorted(int(p) for p in os.listdir("/proc") if p.isdigit())
print(json.dumps({{
    "pids": pids, "sleeps": sorted(c[1] for c in map(cmdline, pids) if c[:1] == ["sleep"]),
    "cwd": os.getcwd(), "home_entries": sorted(os.listdir("/home")) if os.path.isdir("/home") else [],
    "my_file": os.path.exists("{my_home}/secret-of-{me}.txt"),
    "other_home": os.path.exists("{other_home}"),
    "other_file": os.path.exists("{other_home}/secret-of-{other}.txt"),
    "other_kernel_pid": os.path.exists("/proc/{other_pid}"),
}}))
"""


def test_neither_kernel_sees_the_others_processes_files_or_home(classroom):
    (a, ra), (b, rb) = classroom.items()
    seen = {}
    for (me, (pw, _, _, k, info)), (other, (opw, _, _, _, oinfo)), mine in ((a, ra), (b, rb), "3001"), \
            ((b, rb), (a, ra), "3002"):
        seen[me] = k.json(PROBE.format(mine=mine, me=me, my_home=pw.pw_dir, other=other,
                                       other_home=opw.pw_dir, other_pid=oinfo["host"]["kernel_pid"]))
    for me, got in seen.items():
        pw, info = classroom[me][0], classroom[me][4]
        assert got["cwd"] == pw.pw_dir and got["my_file"]
        assert got["home_entries"] == [os.path.basename(pw.pw_dir)], got  # only its own home is there
        assert not got["other_home"] and not got["other_file"] and not got["other_kernel_pid"], got
        assert max(got["pids"]) < 100, got["pids"]  # its own PID namespace: a handful of small PIDs
    # each sees its own sleep only (b's probe ran after a's sleep had started)
    assert seen[a]["sleeps"] == ["3001"] and seen[b]["sleeps"] == ["3002"], seen
    pid_ns = {os.stat(f"/proc/{classroom[n][4]['host']['kernel_pid']}/ns/pid").st_ino for n in PAIR}
    assert len(pid_ns) == 2 and os.stat("/proc/self/ns/pid").st_ino not in pid_ns
    for name in PAIR:
        classroom[name][3].execute("marker.kill(); marker.wait()")


def test_each_memory_limit_fails_in_its_own_kernel_only(classroom, hub):
    for name, (_, _, _, k, _) in classroom.items():
        assert k.execute(f"keep = {name!r} * 1000; small = bytearray(32 << 20)").ename is None
    over = f"big = bytearray({2 * MEMORY})"
    for victim in PAIR:
        enforced = classroom[victim][4]["host"]["enforced"]["memory"]
        r = classroom[victim][3].execute(over)
        if "RLIMIT_AS" in enforced:  # the rootless fallback: a MemoryError, the kernel lives on
            assert r.ename == "MemoryError", r
        else:  # a delegated cgroup: the OOM killer may end the kernel instead
            assert r.ename in ("MemoryError", "kernel died"), r
        for name, (_, _, _, k, _) in classroom.items():
            if name != victim or r.ename == "MemoryError":
                got = k.json("import json; print(json.dumps([keep[:20], len(keep), len(small)]))")
                assert got == [(name * 2)[:20], len(name) * 1000, 32 << 20], (victim, name, got)
        REPORT.append(f"hub test, {victim}: memory limit {MEMORY >> 20} MiB, enforced as {enforced}: "
                      f"a {2 * MEMORY >> 20} MiB allocation gave {r.ename}")
        print("\n" + REPORT[-1])


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_a_students_jupyterlab_behind_the_hub(hub, classroom):
    pytest.importorskip("playwright", reason="needs the playwright package (the test extras)")
    from playwright.sync_api import sync_playwright
    t0 = time.monotonic()
    name = PAIR[0]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{hub.url}/hub/login")
            page.fill("input[name=username]", name)
            page.fill("input[name=password]", PASSWORD)
            page.click("input[type=submit], button[type=submit]")
            card = f'.jp-LauncherCard[title="{DISPLAY}"][data-category="Notebook"]'
            page.wait_for_selector(card, timeout=90000)
            assert f"/user/{name}/lab" in page.url, page.url
            page.locator(card).click()
            page.wait_for_selector(f'.jp-StatusBar-Widget >> text="{DISPLAY} | Idle"', timeout=60000)
            page.locator(".jp-Notebook .jp-Cell .cm-content").first.click()
            page.keyboard.insert_text("%container_info")
            page.keyboard.press("Shift+Enter")
            out = page.locator(".jp-Notebook .jp-Cell").first.locator(".jp-OutputArea-output table").first
            out.wait_for(timeout=60000)
            cell_text = page.locator(".jp-Notebook .jp-Cell").first.inner_text()
            news = page.locator(".Toastify__toast button", has_text="No")  # "notified about news?"
            if news.count():
                news.first.click()
                page.wait_for_timeout(500)
            os.makedirs(SHOTS, exist_ok=True)
            page.screenshot(path=os.path.join(SHOTS, "jupyterhub_student.png"))
            assert f"({name})" in cell_text and "256 MiB" in cell_text, cell_text[:2000]
        finally:
            browser.close()
    # end the browser's kernel through the server, rather than leave it to the hub
    s, auth = classroom[name][1], {"Authorization": f"token {classroom[name][2]}"}
    for k in s.get(f"{hub.url}/user/{name}/api/kernels", headers=auth, timeout=30).json():
        if k["id"] != classroom[name][3].id:
            assert s.delete(f"{hub.url}/user/{name}/api/kernels/{k['id']}", headers=auth,
                            timeout=60).status_code == 204
    hub.timings["browser"] = time.monotonic() - t0
