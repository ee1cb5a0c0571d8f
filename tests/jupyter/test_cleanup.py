"""A kernel that ends however it ends leaves nothing: the provisioner cleans what a killed
launcher could not. And jupyter_client's extra arguments reach ipykernel."""
import glob
import json
import os
import subprocess
import sys
import time

from jupyter_client import KernelManager

RUN_BASE = "/run/container-kernel"


def left_of(km, cid):
    return (glob.glob(f"{RUN_BASE}/{cid}") + glob.glob(f"/sys/fs/cgroup/*/container-kernel/{cid}")
            + ([km.provisioner.socket_dir] if km.provisioner and km.provisioner.socket_dir
               and os.path.exists(km.provisioner.socket_dir) else []))


def test_shutdown_now_sigkills_the_launcher_and_still_leaves_nothing(kernel_prefix):
    """shutdown_kernel(now=True) SIGKILLs the launcher (jupyter_client's forced shutdown)."""
    for _ in range(5):
        km = KernelManager(kernel_name="ck-test-default")
        km.start_kernel()
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        cid, launcher = km.provisioner.container_id, km.provisioner.process.pid
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        assert left_of(km, cid) == [], cid  # at once: the provisioner removed it
        assert not os.path.exists(f"/proc/{launcher}/stat") or \
            open(f"/proc/{launcher}/stat").read().split()[2] == "Z"


def test_jupyter_run_passes_the_file_to_ipykernel(kernel_prefix, tmp_path):
    """`jupyter run --kernel K file.py` adds file.py after the kernel's own argv."""
    script = tmp_path / "hello.py"
    script.write_text("import socket\nprint('ran-in', socket.gethostname())\n")
    run = os.path.join(os.path.dirname(sys.executable), "jupyter-run")
    r = subprocess.run([run, "--kernel", "ck-test-default", str(script)], capture_output=True,
                       text=True, timeout=120, cwd=str(tmp_path))
    assert r.returncode == 0 and "ran-in" in r.stdout, (r.stdout, r.stderr)


def test_extra_arguments_reach_ipykernel(kernel_prefix):
    km = KernelManager(kernel_name="ck-test-default")
    km.start_kernel(extra_arguments=["--IPKernelApp.log_level=10"])
    texts = []
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        reply = kc.execute_interactive(
            "import sys; print(sys.argv)", timeout=30,
            output_hook=lambda m: texts.append(m["content"].get("text", "")))
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    assert reply["content"]["status"] == "ok"
    assert "--IPKernelApp.log_level=10" in "".join(texts)


# A server that starts its kernel from a thread which then ends, as a server's executor
# threads do, and goes on: the kernel must live on. PR_SET_PDEATHSIG fires at the end of
# that thread, not of the server (and again at each thread's end when the server is
# SIGKILLed): the launcher must take it for a hint only.
THREAD_SERVER = """
import json, os, sys, threading, time
from jupyter_client import KernelManager
out = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
km = KernelManager(kernel_name=sys.argv[1])
starter = threading.Thread(target=km.start_kernel)
starter.start(); starter.join()
idle = [threading.Thread(target=time.sleep, args=(300,), daemon=True) for _ in range(8)]
for t in idle: t.start()
time.sleep(1.5)  # the hint came and went
kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
reply = kc.execute_interactive("print(6 * 7)", timeout=30, output_hook=lambda msg: None)
p = km.provisioner
out.write(json.dumps([reply["content"]["status"], p.container_id, p.socket_dir, km.connection_file]) + "\\n")
out.flush()
time.sleep(300)
"""


def test_the_end_of_the_thread_that_started_a_kernel_is_not_the_end_of_the_server(kernel_prefix):
    """The kernel outlives the thread that started it; when the whole server is SIGKILLed
    (its threads dying one by one), the launcher still sees it, and leaves nothing: not
    the socket dir or the connection file, which only the server would have removed."""
    for _ in range(3):
        server = subprocess.Popen([sys.executable, "-c", THREAD_SERVER, "ck-test-default"],
                                  stdout=subprocess.PIPE, text=True)
        try:
            status, cid, socket_dir, connection_file = json.loads(server.stdout.readline())
        finally:
            server.kill()
            server.wait()
        assert status == "ok"
        deadline = time.monotonic() + 5
        while True:
            left = [p for p in [socket_dir, connection_file, f"{RUN_BASE}/{cid}"]
                    + glob.glob(f"/sys/fs/cgroup/*/container-kernel/{cid}") if os.path.exists(p)]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert left == [], cid
