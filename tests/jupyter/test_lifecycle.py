"""Kernel lifecycle beyond the protocol: deaths told to the next kernel, a server crash,
and hosts that cannot create containers."""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

from tests.helpers import CK, alive, children, init_of, leftovers
from tests.jupyter.test_kernel import kernel, run


def test_a_death_by_signal_is_told_to_the_next_kernel(kernel_prefix, tmp_path):
    with kernel("ck-test-default", tmp_path) as (km, kc):
        kc.execute("import os, signal; os.kill(os.getpid(), signal.SIGSEGV)")
        deadline = time.time() + 20
        while km.is_alive() and time.time() < deadline:
            time.sleep(0.05)
        assert not km.is_alive()
        km.restart_kernel(now=True)
        kc.wait_for_ready(timeout=60)
        reply, out = run(kc, "1")
        assert "The previous kernel died: killed by signal 11 (SIGSEGV)." in out["stderr"]


def test_a_normal_restart_leaves_no_notice(kernel_prefix, tmp_path):
    with kernel("ck-test-default", tmp_path) as (km, kc):
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        reply, out = run(kc, "1")
        assert out["stderr"] == ""


SERVER = """
import sys, time
from jupyter_client import KernelManager
km = KernelManager(kernel_name="ck-test-default")
km.start_kernel()
kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
print(km.provisioner.process.pid, flush=True)
time.sleep(120)
"""


def test_a_server_killed_with_sigkill_takes_its_containers_along(kernel_prefix):
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    try:
        launcher = int(server.stdout.readline())
        init = init_of(launcher)
        kernel_pid = children(init)[0]
        server.kill()
        server.wait()
        deadline = time.time() + 3
        while time.time() < deadline and any(alive(p) for p in (launcher, init, kernel_pid)):
            time.sleep(0.02)
        assert not any(alive(p) for p in (launcher, init, kernel_pid))
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()
    # The launcher got SIGTERM and cleaned its container; the provisioner's socket dir
    # (its owner, the server, is gone) is collected by the next start.
    subprocess.run([CK, "run", "--", "true"], check=True)
    assert leftovers() == []


# ---- a host that cannot create containers -----------------------------------------------------
# bubblewrap's --disable-userns gives a process a user namespace in which no further
# user namespace can be made: a real host condition (like Docker's default seccomp or
# Ubuntu's AppArmor), without changing this host's sysctls.

CLIENT = """
import json, sys
from jupyter_client import KernelManager
km = KernelManager(kernel_name=sys.argv[1])
try:
    km.start_kernel()
except Exception as e:
    print(json.dumps({"start_error": str(e)})); sys.exit(0)
kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
out = {"stderr": "", "stdout": ""}
def hook(m):
    if m["msg_type"] == "stream": out[m["content"]["name"]] += m["content"]["text"]
kc.execute_interactive("import json\\ninfo = %container_info --json\\nprint(json.dumps({k: info[k] for k in ('contained', 'warning')}))", output_hook=hook, timeout=30)
kc.stop_channels(); km.shutdown_kernel(now=False)
print(json.dumps(out))
"""


@pytest.fixture
def no_userns_host(kernel_prefix):
    bwrap = shutil.which("bwrap")
    if not bwrap:
        pytest.skip("needs bubblewrap (apt-get install bubblewrap) to make a host without user namespaces")
    probe = subprocess.run([bwrap, "--dev-bind", "/", "/", "--unshare-user", "--uid", "4242",
                            "--disable-userns", "--", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"this bubblewrap cannot --disable-userns: {probe.stderr.strip()}")
    d = tempfile.mkdtemp(prefix="ck-nouserns-")
    os.chmod(d, 0o755)
    subprocess.run([CK, "install", "--prefix", d, "--name", "ck-strict"], check=True, capture_output=True)
    subprocess.run([CK, "install", "--prefix", d, "--name", "ck-degraded", "--allow-unconfined"],
                   check=True, capture_output=True)

    def client(name):
        r = subprocess.run([bwrap, "--dev-bind", "/", "/", "--unshare-user", "--uid", "4242", "--gid", "4242",
                            "--disable-userns", "--setenv", "JUPYTER_PATH", f"{d}/share/jupyter",
                            "--setenv", "JUPYTER_RUNTIME_DIR", f"{d}/runtime", "--setenv", "HOME", d,
                            "--", sys.executable, "-c", CLIENT, name],
                           capture_output=True, text=True, timeout=120, cwd=d)
        assert r.returncode == 0, r.stderr[-3000:]
        return json.loads(r.stdout.strip().splitlines()[-1]), r.stderr

    yield client
    shutil.rmtree(d)
    shutil.rmtree("/tmp/container-kernel-4242", ignore_errors=True)


def test_without_allow_unconfined_the_start_fails_with_the_reason(no_userns_host):
    result, log = no_userns_host("ck-strict")
    assert "start_error" in result
    assert "could not start" in result["start_error"]
    assert "user namespaces are not allowed here" in result["start_error"]


def test_with_allow_unconfined_the_kernel_says_loudly_it_is_not_contained(no_userns_host):
    result, log = no_userns_host("ck-degraded")
    assert "start_error" not in result, result
    assert "WARNING: this kernel is NOT contained" in result["stderr"]  # at the first execution
    info = json.loads(result["stdout"])
    assert info["contained"] is False and "NOT contained" in info["warning"]
    assert "NOT contained" in log  # and in the server's log
