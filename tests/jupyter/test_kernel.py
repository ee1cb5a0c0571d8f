"""The container kernel through jupyter_client: real kernels, both connection modes."""
import contextlib
import json
import os
import signal
import subprocess
import sys
import time

import pytest
from jupyter_client import KernelManager

from tests.helpers import CK, SLOW, alive, children, host_ns, leftovers

BOTH = pytest.mark.parametrize("name", ["ck-test-default", "ck-test-tcp"], ids=["ipc", "tcp"])


@contextlib.contextmanager
def kernel(name, cwd=None):
    km = KernelManager(kernel_name=name)
    km.start_kernel(cwd=str(cwd) if cwd else None)
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        yield km, kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


def run(kc, code, timeout=30 * SLOW, allow_stdin=False, stdin_hook=None):
    """Execute code; return (reply content, stdout text, stderr text, [display data])."""
    out = {"stdout": "", "stderr": "", "display": [], "error": None}

    def hook(msg):
        t, c = msg["msg_type"], msg["content"]
        if t == "stream":
            out[c["name"]] += c["text"]
        elif t in ("display_data", "execute_result"):
            out["display"].append(c["data"])
        elif t == "error":
            out["error"] = c["ename"]

    kw = {"stdin_hook": stdin_hook} if stdin_hook else {}
    reply = kc.execute_interactive(code, timeout=timeout, output_hook=hook, allow_stdin=allow_stdin, **kw)
    return reply["content"], out


@pytest.fixture
def notebook_dir(tmp_path):
    d = tmp_path / "notebooks"
    d.mkdir()
    (d / "data.txt").write_text("notebook data")
    (tmp_path / "sibling-secret.txt").write_text("not for the kernel")
    return d


@BOTH
def test_protocol(kernel_prefix, notebook_dir, name):
    with kernel(name, notebook_dir) as (km, kc):
        assert km.transport == ("ipc" if name == "ck-test-default" else "tcp")
        # The provisioner's start ended on the extension's word that the kernel is ready, not
        # on the sockets alone (a client would then ask a half-started kernel every second).
        assert getattr(km.provisioner, "start_ended", None) == ("ready" if name == "ck-test-default" else None)
        reply, out = run(kc, "x = 41\nprint(x + 1)")
        assert reply["status"] == "ok" and out["stdout"] == "42\n"
        # display_data
        reply, out = run(kc, "from IPython.display import display, HTML\ndisplay(HTML('<b>hi</b>'))")
        assert out["display"][0]["text/html"] == "<b>hi</b>"
        # complete and inspect
        msg_id = kc.complete("import o", 8)
        c = kc.get_shell_msg(timeout=10)["content"]
        assert c["status"] == "ok" and "os" in c["matches"]
        kc.inspect("len", 3)
        c = kc.get_shell_msg(timeout=10)["content"]
        assert c["found"] and "Return the number of items" in c["data"]["text/plain"]
        # history
        kc.history(hist_access_type="tail", n=10)
        c = kc.get_shell_msg(timeout=10)["content"]
        assert any("x = 41" in h[2] for h in c["history"])
        # stdin: input()
        def answer(msg):
            kc.input("from the client")
        reply, out = run(kc, "print('got', input('say: '))", allow_stdin=True, stdin_hook=answer)
        assert out["stdout"].strip().endswith("got from the client")
        # a widget's comm opens (ipywidgets inside the container)
        reply, out = run(kc, "import ipywidgets as w\ns = w.IntSlider(value=3)\ndisplay(s)\nprint(s.comm.comm_id)")
        assert reply["status"] == "ok" and out["display"][0]["application/vnd.jupyter.widget-view+json"]
        # interrupt a busy loop within 1 s
        # (stop_on_error=False: else ipykernel aborts requests queued behind the error,
        # with a plain kernel too)
        msg_id = kc.execute("while True: pass", stop_on_error=False)
        time.sleep(0.5)
        t0 = time.monotonic()
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=10)
        elapsed = time.monotonic() - t0
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert elapsed < 1.0, elapsed
        reply, out = run(kc, "print(x)")
        assert out["stdout"] == "41\n"  # the kernel survived its interrupt
        # restart: a fresh container
        before = json.loads(run(kc, "import json\ninfo = %container_info --json\nprint(json.dumps(info))")[1]["stdout"])
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        assert getattr(km.provisioner, "start_ended", None) == ("ready" if name == "ck-test-default" else None)
        reply, out = run(kc, "print('x' in dir())")
        assert out["stdout"] == "False\n"
        after = json.loads(run(kc, "import json\ninfo = %container_info --json\nprint(json.dumps(info))")[1]["stdout"])
        # A new container: a new id (its hostname). (Namespace inode numbers are
        # recycled once the old namespace is gone, so they prove nothing here.)
        assert after["hostname"] != before["hostname"]
        for kind in ("pid", "net", "mnt"):
            assert after["namespaces"][kind] != host_ns(kind)


def test_inside_the_kernel(kernel_prefix, notebook_dir):
    token = f"/root/ck-kernel-marker-{os.getpid()}"
    open(token, "w").close()
    try:
        with kernel("ck-test-default", notebook_dir) as (km, kc):
            reply, out = run(kc, f"""
import os, socket, json
print(json.dumps({{
  "ns": {{k: os.stat(f'/proc/self/ns/{{k}}').st_ino for k in ['pid','mnt','net','uts','ipc','cgroup']}},
  "ifs": [n for _, n in socket.if_nameindex()],
  "cwd": os.getcwd(),
  "data": open('data.txt').read(),
  "marker": os.path.exists({token!r}),
  "around": os.listdir({str(notebook_dir.parent)!r}),
  "env": sorted(os.environ),
  "ppid": os.getppid(),
}}))
open('written-inside.txt', 'w').write('ok')
""")
            assert reply["status"] == "ok", out
            facts = json.loads(out["stdout"])
    finally:
        os.unlink(token)
    for kind, ino in facts["ns"].items():
        assert ino != host_ns(kind), kind
    assert facts["ifs"] == ["lo"]
    assert facts["cwd"] == str(notebook_dir) and facts["data"] == "notebook data"
    assert (notebook_dir / "written-inside.txt").read_text() == "ok"
    assert facts["marker"] is False
    assert (notebook_dir.parent / "sibling-secret.txt").exists()
    assert facts["around"] == [notebook_dir.name]  # only the notebook dir of the tree around it
    assert facts["ppid"] == 1
    assert not {"JUPYTER_RUNTIME_DIR", "SSH_AUTH_SOCK", "PWD", "OLDPWD"} & set(facts["env"])
    assert "CK_READY_FILE" not in facts["env"]  # the extension's word is said once, not by the cells


def test_oom_kills_the_kernel_and_the_restarted_kernel_says_so(kernel_prefix, notebook_dir):
    with kernel("ck-test-m200", notebook_dir) as (km, kc):
        kc.execute("x = bytearray(400 * 1024 * 1024)")
        deadline = time.time() + 30
        while km.is_alive() and time.time() < deadline:
            time.sleep(0.1)
        assert not km.is_alive()
        assert km.provisioner.process.returncode == 137
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        reply, out = run(kc, "print('hello')")
        assert out["stdout"] == "hello\n"
        assert "The previous kernel was killed by the OOM killer: memory limit 200 MiB reached" \
            in out["stderr"]
        reply, out = run(kc, "print('again')")
        assert out["stderr"] == ""  # said once


def test_20_cycles_5_sigkilled_leave_nothing(kernel_prefix, notebook_dir):
    for i in range(20):
        km = KernelManager(kernel_name="ck-test-default")
        km.start_kernel(cwd=str(notebook_dir))
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        if i % 4 == 3:
            launcher = km.provisioner.process.pid
            inside = children(launcher) + [c for p in children(launcher) for c in children(p)]
            os.kill(launcher, signal.SIGKILL)
            km.provisioner.process.wait()
            deadline = time.time() + 2
            while any(alive(p) for p in inside) and time.time() < deadline:
                time.sleep(0.02)
            assert not any(alive(p) for p in inside)
            kc.stop_channels()
            km.shutdown_kernel(now=True)
        else:
            kc.stop_channels()
            km.shutdown_kernel(now=False)
    subprocess.run([CK, "run", "--", "true"], check=True)  # collects what SIGKILL left
    left = leftovers()
    assert left == [], left


def test_nbclient_executes_a_notebook(kernel_prefix, tmp_path):
    import nbformat
    from nbclient import NotebookClient
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import socket\nprint([n for _, n in socket.if_nameindex()])"),
                nbformat.v4.new_code_cell("%container_info")]
    NotebookClient(nb, kernel_name="ck-test-default", timeout=60,
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert nb.cells[0].outputs[0]["text"] == "['lo']\n"
    texts = [o.get("text") or o.get("data", {}).get("text/plain", "") for o in nb.cells[1].outputs]
    htmls = [o.get("data", {}).get("text/html", "") for o in nb.cells[1].outputs]
    assert any("namespace" in t for t in texts) and any("<table" in h for h in htmls)


def test_jupyter_console_smoke(kernel_prefix):
    console = os.path.join(os.path.dirname(sys.executable), "jupyter-console")
    r = subprocess.run([console, "--kernel", "ck-test-default", "--simple-prompt", "-y"],
                       input="import socket; print('hostname-is', socket.gethostname())\nexit\n",
                       capture_output=True, text=True, timeout=120)
    assert "hostname-is" in r.stdout, (r.stdout, r.stderr)
    host = subprocess.run(["hostname"], capture_output=True, text=True).stdout.strip()
    assert f"hostname-is {host}" not in r.stdout
