"""08-the-kernel-you-are-in explains restart (a notebook cannot restart its own kernel
and see the result); here it is shown from the client's side, as Kernel > Restart does it."""
import json

import pytest
from jupyter_client import KernelManager

CODE = "import json\ni = %container_info --json\nprint(json.dumps({k: i['host'][k] for k in ('id', 'launcher_pid', 'init_pid', 'kernel_pid')}))"


def host_view(kc):
    out = []
    kc.execute_interactive(CODE, timeout=60, output_hook=lambda m: out.append(
        m["content"]["text"]) if m["msg_type"] == "stream" else None)
    return json.loads("".join(out))


@pytest.mark.timeout(180)
def test_restart_makes_a_new_container_and_interrupt_does_not(notebook_kernel, workdir):
    km = KernelManager(kernel_name="container-python")
    km.start_kernel(cwd=str(workdir))
    try:
        kc = km.client()
        kc.start_channels()
        kc.wait_for_ready(timeout=60)
        before = host_view(kc)
        # Interrupt a running cell, as Kernel > Interrupt does. Not an idle kernel: its
        # interrupt can land in the next cell (a CI-like run lost that race). Not at "busy"
        # either: ipykernel arms its SIGINT handler only after it said busy, so wait for
        # the cell's own word that it runs.
        msg_id = kc.execute("import time; print('sleeping', flush=True); time.sleep(60)")
        while not (lambda m: m["parent_header"].get("msg_id") == msg_id and m["msg_type"] == "stream"
                   and "sleeping" in m["content"]["text"])(kc.get_iopub_msg(timeout=30)):
            pass
        km.interrupt_kernel()
        reply = kc.get_shell_msg(timeout=30)
        assert reply["parent_header"]["msg_id"] == msg_id
        assert reply["content"]["status"] == "error" and reply["content"]["ename"] == "KeyboardInterrupt"
        assert host_view(kc) == before
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        after = host_view(kc)
        kc.stop_channels()
    finally:
        km.shutdown_kernel(now=True)
    assert after["id"] != before["id"]
    assert not set(after.values()) & {before[k] for k in ("launcher_pid", "init_pid", "kernel_pid")}
