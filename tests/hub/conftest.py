"""A real JupyterHub for the class test: configurable-http-proxy from npm, three system users
this suite creates, the hub on 127.0.0.1, and docs/jupyterhub_config.py as its config.

Everything started here is stopped by its PID and checked gone; the users, their homes,
subuid ranges and /tmp dirs are removed. Temp dirs are named ck-hub-test-* so a leftover
is easy to find."""
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest

from tests.helpers import BIN, CK, IS_ROOT, alive, traversable

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOCS_CONFIG = os.path.join(ROOT, "docs", "jupyterhub_config.py")
STUDENTS = ("ck-hub-student1", "ck-hub-student2", "ck-hub-student3")
PASSWORD = "ck-hub-test-password"
KERNEL = "ck-hub"
DISPLAY = "Python 3 (container, hub test)"
MEMORY = 256 << 20
# Outside the repo: a fresh clone fetches it once, later runs reuse it.
NPM_CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                         "container-kernel", "npm")
CHP = "configurable-http-proxy"
REPORT = []  # lines (timings, limits seen), for the closing summary (with or without -s)


def pytest_terminal_summary(terminalreporter):
    for line in REPORT:
        terminalreporter.write_line(line)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def proxy_command():
    """configurable-http-proxy: on PATH, in NPM_CACHE, or installed there now with npm."""
    found = shutil.which(CHP)
    cached = os.path.join(NPM_CACHE, "node_modules", ".bin", CHP)
    if found or os.access(cached, os.X_OK):
        return found or cached
    if not (shutil.which("npm") and shutil.which("node")):
        pytest.skip(f"needs {CHP} (npm): not on PATH nor in {NPM_CACHE}, and no npm to install it "
                    "(apt-get install npm)")
    os.makedirs(NPM_CACHE, exist_ok=True)
    r = subprocess.run(["npm", "install", "--prefix", NPM_CACHE, "--no-audit", "--no-fund", CHP],
                       capture_output=True, text=True, timeout=300)
    if r.returncode != 0 or not os.access(cached, os.X_OK):
        pytest.fail(f"`npm install --prefix {NPM_CACHE} {CHP}` failed: {r.stderr[-1500:]}")
    return cached


def pids_of_uid(uid):
    out = []
    for pid in (int(p) for p in os.listdir("/proc") if p.isdigit()):
        try:
            with open(f"/proc/{pid}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        except (OSError, StopIteration):
            continue
        if str(uid) in uids and alive(pid):
            out.append(pid)
    return out


def remove_student(name):
    """Remove one of *our* users (named in STUDENTS), with what it left. Returns what had to
    be killed (nothing, when the hub stopped everything)."""
    assert name in STUDENTS
    try:
        pw = pwd.getpwnam(name)
    except KeyError:
        return []
    killed = pids_of_uid(pw.pw_uid)
    for pid in killed:
        os.kill(pid, signal.SIGKILL)
    deadline = time.time() + 5
    while pids_of_uid(pw.pw_uid) and time.time() < deadline:
        time.sleep(0.05)
    subprocess.run(["userdel", "--remove", name], capture_output=True)
    shutil.rmtree(f"/tmp/container-kernel-{pw.pw_uid}", ignore_errors=True)
    for path in ("/etc/subuid", "/etc/subgid"):  # userdel removes them; make sure
        try:
            with open(path) as f:
                lines = f.readlines()
        except OSError:
            continue
        keep = [line for line in lines if not line.startswith(name + ":")]
        if keep != lines:
            with open(path, "w") as f:
                f.writelines(keep)
    return [f"process {pid} of {name}" for pid in killed]


@pytest.fixture(scope="module")
def students():
    if not IS_ROOT:
        pytest.skip("needs root to create the students and run the hub as root")
    for tool, package in (("useradd", "passwd"), ("userdel", "passwd")):
        if not shutil.which(tool):
            pytest.skip(f"needs {tool} (apt-get install {package})")
    if not traversable(CK):
        pytest.skip(f"the venv ({BIN}) is not reachable by other users (a parent dir lacks o+x): "
                    "clone the project under a world-readable dir")
    for name in STUDENTS:
        remove_student(name)  # a crashed earlier run's
    made = []
    try:
        for name in STUDENTS:
            # A normal user: useradd gives it /etc/subuid and /etc/subgid ranges.
            subprocess.run(["useradd", "--create-home", "--shell", "/bin/bash", name], check=True,
                           capture_output=True)
            made.append(name)
            pw = pwd.getpwnam(name)
            os.chmod(pw.pw_dir, 0o700)  # what docs/jupyterhub.md asks (Debian's default is 0755)
        yield {name: pwd.getpwnam(name) for name in STUDENTS}
    finally:
        left = [x for name in made for x in remove_student(name)]
        for name in made:
            with open("/etc/subuid") as f:
                assert not any(line.startswith(name + ":") for line in f)
        assert not left, f"left running after the hub stopped: {left}"


class Hub:
    """A running hub: url, the admin service's api(), its temp dir and log, phase timings."""

    def __init__(self, tmp, port, token, proc, log):
        self.tmp, self.url, self.token, self.proc, self.log = tmp, f"http://127.0.0.1:{port}", token, proc, log
        self.pids = {"hub": proc.pid}
        self.timings = {}

    def api(self, method, path, **kw):
        import requests
        return requests.request(method, f"{self.url}/hub/api{path}",
                                headers={"Authorization": f"token {self.token}"}, timeout=60, **kw)

    def log_tail(self, n=3000):
        with open(self.log) as f:
            return f.read()[-n:]


def hub_config(tmp, port, token, chp):
    """The test's config: the docs' example, then ports, paths and the DummyAuthenticator."""
    prefix = os.path.join(tmp, "prefix")
    return f"""
load_subconfig({DOCS_CONFIG!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{port}/"
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = {free_port()}
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{free_port()}"
c.ConfigurableHTTPProxy.command = [{chp!r}]
c.ConfigurableHTTPProxy.pid_file = {os.path.join(tmp, "proxy.pid")!r}
c.JupyterHub.pid_file = {os.path.join(tmp, "hub.pid")!r}
c.JupyterHub.db_url = "sqlite:///{tmp}/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = {os.path.join(tmp, "cookie_secret")!r}
c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = {PASSWORD!r}
c.Authenticator.allowed_users = {set(STUDENTS)!r}
c.JupyterHub.services = [{{"name": "ck-hub-test", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "ck-hub-test", "services": ["ck-hub-test"],
                             "scopes": ["admin:users", "admin:servers", "list:users"]}}]
c.Spawner.args = [a.replace("container-python", {KERNEL!r}) for a in c.Spawner.args]
c.Spawner.environment.update({{"JUPYTER_PATH": {os.path.join(prefix, "share", "jupyter")!r},
                               "JUPYTER_CONFIG_DIR": {os.path.join(tmp, "student-config")!r}}})
"""


@pytest.fixture(scope="module")
def hub(students):
    pytest.importorskip("jupyterhub", reason="needs jupyterhub (the test extras: pip install -e '.[test]')")
    t0 = time.monotonic()
    chp = proxy_command()
    tmp = tempfile.mkdtemp(prefix="ck-hub-test-")
    os.chmod(tmp, 0o755)  # the students read the kernelspec under it
    os.mkdir(os.path.join(tmp, "student-config"))
    r = subprocess.run([CK, "install", "--prefix", os.path.join(tmp, "prefix"), "--name", KERNEL,
                        "--display-name", DISPLAY, "--memory", f"{MEMORY >> 20}M", "--cpus", "1",
                        "--pids", "128"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    port, token = free_port(), secrets.token_hex(16)
    config = os.path.join(tmp, "jupyterhub_config.py")
    with open(config, "w") as f:
        f.write(hub_config(tmp, port, token, chp))
    log = os.path.join(tmp, "hub.log")
    with open(log, "w") as out:
        proc = subprocess.Popen([os.path.join(BIN, "jupyterhub"), "-f", config], cwd=tmp,
                                stdout=out, stderr=subprocess.STDOUT)
    h = Hub(tmp, port, token, proc, log)
    try:
        deadline = time.time() + 60
        while True:
            if proc.poll() is not None or time.time() > deadline:
                pytest.fail(f"the hub did not come up: {h.log_tail()}")
            try:
                if h.api("GET", "/").status_code == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        with open(os.path.join(tmp, "proxy.pid")) as f:
            h.pids["proxy"] = int(f.read())
        h.timings["hub up"] = time.monotonic() - t0
        yield h
    finally:
        stop_hub(h)
        h.timings["total"] = time.monotonic() - t0
        REPORT.append("hub test timings: " + ", ".join(f"{k} {v:.1f} s" for k, v in h.timings.items()))
        print("\n" + REPORT[-1])
        print(f"hub log: {h.log} (removed)")
        shutil.rmtree(tmp, ignore_errors=True)


def stop_hub(h):
    """SIGTERM the hub (it stops the servers and the proxy), then check each PID it held."""
    proc = h.proc
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    left = []
    for what, pid in h.pids.items():
        if what != "hub" and alive(pid):
            left.append(f"{what} {pid}")
            os.kill(pid, signal.SIGKILL)
    assert not left, f"the hub left these running (killed now): {left}\n{h.log_tail()}"


def login(url, name, password=PASSWORD):
    """Log in through the hub's login form; returns the requests Session holding its cookie,
    or None when the hub refuses."""
    import requests
    s = requests.Session()
    r = s.get(f"{url}/hub/login", timeout=30)
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', r.text)
    assert r.status_code == 200 and xsrf, r.text[:500]
    r = s.post(f"{url}/hub/login", data={"username": name, "password": password, "_xsrf": xsrf.group(1)},
               allow_redirects=False, timeout=30)
    return s if r.status_code == 302 else None
