"""The magics and widgets in real container kernels, checked against the host's own files.

The kernelspec ck-test-ceil has the ceiling --memory 512M --cpus 1 --pids 100. What a
magic says is compared with what this test process (on the host) reads in /proc and
in the container's cgroup directories.
"""
import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest
from jupyter_client import KernelManager

from container_kernel.runtime.procfs import capability_names
from tests.helpers import CK, children, init_of, host_ns, leftovers, whole_disk
from tests.jupyter.test_kernel import kernel, run

MiB = 1 << 20
CEIL = "ck-test-ceil"


def value_of(kc, code):
    """Run code whose last line prints JSON; return it decoded."""
    reply, out = run(kc, code, timeout=60)
    assert reply["status"] == "ok", (reply, out)
    return json.loads(out["stdout"].strip().splitlines()[-1])


def info_of(kc):
    return value_of(kc, "import json\n_i = %container_info --json\nprint(json.dumps(_i))")


def cgroup_file(paths, controller, name):
    """A file of the container's cgroup, as the host sees it (v1: per hierarchy; v2: one dir)."""
    d = paths.get(controller) or paths["unified"]
    with open(os.path.join(d, name)) as f:
        return f.read().strip()


def memory_limit(paths):
    if "unified" in paths:
        return cgroup_file(paths, "memory", "memory.max")
    return cgroup_file(paths, "memory", "memory.limit_in_bytes")


def kernel_host_pid(km):
    init = init_of(km.provisioner.process.pid)
    return init, [p for p in children(init)]


def proc_status(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return line.split(":", 1)[1].split()


def subdirs(paths):
    """The sandbox cgroups under the container's. (On v2 the container's own processes
    move to a leaf "main" at the first sandbox: the no-internal-processes rule.)"""
    return sorted({e.name for d in set(paths.values()) for e in os.scandir(d)
                   if e.is_dir() and e.name != "main"})


def comm_updates(kc, seconds):
    """The widget state updates the kernel sends on iopub for a while: [(comm_id, state)]."""
    out, deadline = [], time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            msg = kc.get_iopub_msg(timeout=0.2)
        except Exception:  # queue.Empty
            continue
        if msg["msg_type"] == "comm_msg" and msg["content"]["data"].get("method") == "update":
            out.append((msg["content"]["comm_id"], msg["content"]["data"]["state"]))
    return out


@pytest.fixture(scope="module")
def ceil_kernel(kernel_prefix, tmp_path_factory):
    """One kernel for the views that change nothing."""
    with kernel(CEIL, tmp_path_factory.mktemp("nb")) as (km, kc):
        yield km, kc


# ---- %container_info ----------------------------------------------------------------------

def test_container_info_json_is_what_the_host_sees(ceil_kernel):
    km, kc = ceil_kernel
    info = info_of(kc)
    host = info["host"]
    init, kids = kernel_host_pid(km)
    assert info["kernel"] == "container-kernel" and info["contained"] and info["warning"] is None
    # PIDs: the kernel is PID 2 inside, init's child on the host; init is the launcher's child.
    assert host["launcher_pid"] == km.provisioner.process.pid
    assert host["init_pid"] == init and kids == [host["kernel_pid"]]
    assert info["pid"] == 2 and proc_status(host["kernel_pid"], "NSpid") == [str(host["kernel_pid"]), "2"]
    # Namespaces: inside = the kernel's /proc/PID/ns on the host; host = ours.
    for row in info["namespace_table"]:
        kind = row["type"]
        assert row["inside"] == info["namespaces"][kind] == host_ns(kind, host["kernel_pid"])
        assert row["host"] == host_ns(kind)
        assert row["isolated"] is (host_ns(kind, host["kernel_pid"]) != host_ns(kind))
    assert {r["type"] for r in info["namespace_table"] if not r["isolated"]} == {"user"}  # rootful
    # Names
    assert info["hostname"] == host["id"][:12] and host["host_hostname"] == socket.gethostname()
    # Users: the maps as the host reads them.
    with open(f"/proc/{host['kernel_pid']}/uid_map") as f:
        assert info["uid_map"] == [list(map(int, l.split())) for l in f if l.strip()]
    assert host["uid_map"] == open(f"/proc/{host['kernel_pid']}/uid_map").read()
    assert info["users"][0] == "root inside is uid 0 on the host"
    # Mounts, capabilities, no_new_privs, seccomp: the kernel's own /proc entries.
    with open(f"/proc/{host['kernel_pid']}/mountinfo") as f:
        assert len(info["mounts"]) == len(f.read().splitlines())
    assert info["capabilities"] == capability_names(proc_status(host["kernel_pid"], "CapEff")[0])
    assert info["no_new_privs"] == (proc_status(host["kernel_pid"], "NoNewPrivs") == ["1"])
    assert info["seccomp"] == {"0": "disabled", "1": "strict", "2": "filter"}[
        proc_status(host["kernel_pid"], "Seccomp")[0]]
    assert info["interfaces"] == ["lo"] and host["network"] == "none"
    # The cgroup: its files on the host, its limits the ceiling.
    cg = info["cgroup"]
    assert cg["seen_from"] == "the host" and cg["ceiling"] == {"memory": 512 * MiB, "cpu": 1.0, "pids": 100}
    assert cg["version"] in (1, 2) and cg["stats"]["paths"] == cg["paths"]
    for d in cg["paths"].values():
        assert os.path.isdir(d) and f"/container-kernel/{host['id']}" in d
    assert str(host["kernel_pid"]) in cgroup_file(cg["paths"], "memory", "cgroup.procs").split()
    assert int(memory_limit(cg["paths"])) == cg["stats"]["memory"]["limit"] == 512 * MiB
    assert cgroup_file(cg["paths"], "pids", "pids.max") == "100"


def test_container_info_view(ceil_kernel):
    km, kc = ceil_kernel
    reply, out = run(kc, "%container_info")
    assert reply["status"] == "ok"
    assert re.match(r"Container \w+: the kernel is PID 2 inside, PID \d+ on the host; 6 of 7 namespace "
                    r"inodes differ from the host's\.", out["stdout"])
    (data,) = out["display"]
    text, page = data["text/plain"], data["text/html"]
    for title in ("Namespaces", "Names and PIDs", "Users", "Filesystem", "cgroup", "Security", "Network"):
        assert title + ":" in text and title in page
    assert "root inside is uid 0 on the host" in text
    assert re.search(r"user +\d+ +\d+ +NO \(shared with the host\)", text)
    assert "<tr style='background:#fff3cd'><td style='text-align:left'>user</td>" in page  # marked
    assert re.search(r"memory +512 MiB +512 MiB", text)
    reply, _ = run(kc, "%container_info --yaml")
    assert reply["status"] == "error" and reply["ename"] == "UsageError"


# ---- %cgroup, %container_ps ---------------------------------------------------------------

def test_cgroup_view_and_json(ceil_kernel):
    km, kc = ceil_kernel
    data = value_of(kc, "import json\n_s = %cgroup --json\nprint(json.dumps(_s))")
    stats, paths = data["stats"], data["stats"]["paths"]
    assert data["ceiling"] == {"memory": 512 * MiB, "cpu": 1.0, "pids": 100}
    assert stats["memory"]["limit"] == int(memory_limit(paths))
    assert stats["pids"]["limit"] == int(cgroup_file(paths, "pids", "pids.max"))
    reply, out = run(kc, "%cgroup")
    text = out["display"][0]["text/plain"]
    assert re.search(r"memory +512 MiB +512 MiB .*OOM kills \d+", text)
    assert re.search(r"cpu +1 CPU +1 CPU .*throttled \d+ of \d+ periods", text)
    assert re.search(r"pids +100 +100 +\d+ .*forks refused \d+", text)
    assert "<table>" in out["display"][0]["text/html"]


def test_container_ps_lists_the_cgroup_with_host_pids(ceil_kernel):
    km, kc = ceil_kernel
    procs = value_of(kc, "import json\n_p = %container_ps --json\nprint(json.dumps(_p))")
    info = info_of(kc)
    paths = info["cgroup"]["paths"]
    in_cgroup = {int(p) for p in cgroup_file(paths, "memory", "cgroup.procs").split()}
    assert {p["host_pid"] for p in procs} == in_cgroup
    by_pid = {p["pid"]: p for p in procs}
    assert by_pid[1]["host_pid"] == info["host"]["init_pid"]
    assert by_pid[2]["host_pid"] == info["host"]["kernel_pid"] and by_pid[2]["ppid"] == 1
    for p in procs:
        with open(f"/proc/{p['host_pid']}/cmdline", "rb") as f:
            assert p["cmdline"] == f.read().decode().split("\0")[:-1]
        assert p["user"] == "root" and p["cgroup"] == "/"
    reply, out = run(kc, "%container_ps")
    assert re.search(r"host PID +PID +PPID +user", out["display"][0]["text/plain"])


# ---- %cgroup_set --------------------------------------------------------------------------

def test_cgroup_set_memory_kills_a_subprocess_and_the_kernel_survives(kernel_prefix, tmp_path):
    with kernel(CEIL, tmp_path) as (km, kc):
        paths = info_of(kc)["cgroup"]["paths"]
        run(kc, "x = 41")
        reply, out = run(kc, "%cgroup_set memory 100M")
        assert out["stdout"] == "memory: 100 MiB (read back from the cgroup)\n"
        assert int(memory_limit(paths)) == 100 * MiB
        reply, out = run(kc, "import subprocess\n"
                             "r = subprocess.run(['python3', '-c', \"b = b'1' * (150 << 20); print('done')\"],"
                             " capture_output=True, text=True)\nprint(r.returncode, repr(r.stdout))")
        assert out["stdout"] == "-9 ''\n", out  # SIGKILL, before it could print
        reply, out = run(kc, "print(x + 1)")
        assert out["stdout"] == "42\n"  # the kernel survived, with its variables
        stats = value_of(kc, "import json\n_s = %cgroup --json\nprint(json.dumps(_s))")["stats"]
        assert stats["memory"]["oom_kills"] >= 1


def test_cgroup_set_refuses_above_the_ceiling_and_max_returns_to_it(kernel_prefix, tmp_path):
    with kernel(CEIL, tmp_path) as (km, kc):
        paths = info_of(kc)["cgroup"]["paths"]
        run(kc, "%cgroup_set memory 200M")
        for line, says in (("memory 600M", "above this kernel's ceiling of 512 MiB"),
                           ("pids 101", "above this kernel's ceiling of 100"),
                           ("memory lots", "invalid size 'lots'"),
                           ("swap 1G", "unknown controller 'swap'")):
            reply, out = run(kc, f"%cgroup_set {line}")
            assert reply["status"] == "error" and reply["ename"] == "UsageError"
            assert says in out["stderr"] and len(out["stderr"].strip().splitlines()) == 1
            assert int(memory_limit(paths)) == 200 * MiB  # unchanged
            assert cgroup_file(paths, "pids", "pids.max") == "100"
        if (os.cpu_count() or 1) > 1:
            reply, out = run(kc, "%cgroup_set cpu 2")
            assert "ceiling of 1 CPU" in out["stderr"]
        reply, out = run(kc, "%cgroup_set memory max")
        assert out["stdout"].startswith("memory: 512 MiB")
        assert int(memory_limit(paths)) == 512 * MiB
        run(kc, "%cgroup_set cpu 0.5")
        if "cpu" in paths:
            assert cgroup_file(paths, "cpu", "cpu.cfs_quota_us") == "50000"
        reply, out = run(kc, "%cgroup_set cpu max")
        assert out["stdout"].startswith("cpu: 1 CPU")
        run(kc, "%cgroup_set pids 64")
        assert cgroup_file(paths, "pids", "pids.max") == "64"
        run(kc, "%cgroup_set pids max")
        assert cgroup_file(paths, "pids", "pids.max") == "100"
        reply, out = run(kc, "%cgroup_set io write 10M/s")
        if whole_disk(tmp_path) is None:  # e.g. the v2 VM's overlay /tmp: said, not faked
            assert "no block device" in out["stderr"] and "name a disk" in out["stderr"]
            return
        assert reply["status"] == "ok", out
        dev = re.search(r"on (\d+):(\d+)", out["stdout"])
        assert out["stdout"].startswith("io write: 10 MiB/s on ")
        if "blkio" in paths:
            assert f"{dev[1]}:{dev[2]} {10 * MiB}" in cgroup_file(paths, "blkio",
                                                                "blkio.throttle.write_bps_device")
        run(kc, "%cgroup_set io write max")
        if "blkio" in paths:
            assert cgroup_file(paths, "blkio", "blkio.throttle.write_bps_device") == ""


def test_the_control_socket_survives_bad_requests(ceil_kernel):
    km, kc = ceil_kernel
    path = value_of(kc, "import os, json\nprint(json.dumps(os.environ['CK_CONTROL']))")
    for data in (b"garbage\n", b"{" * 100000, b'{"op": "shutdown"}\n', b"\n"):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(path)  # the same path on the host: the socket dir is bound in
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            reply = json.loads(s.makefile("rb").readline())
            assert "error" in reply and "\n" not in reply["error"]
    reply, out = run(kc, "%cgroup")
    assert reply["status"] == "ok" and "memory" in out["display"][0]["text/plain"]


# ---- %%sandbox ----------------------------------------------------------------------------

def test_sandbox_oom_leaves_the_kernel_and_its_variables(kernel_prefix, tmp_path):
    with kernel(CEIL, tmp_path) as (km, kc):
        paths = info_of(kc)["cgroup"]["paths"]
        run(kc, "x = 41")
        reply, out = run(kc, "%%sandbox memory=50M\nprint('inside', x)\nb = b'1' * (200 << 20)\nprint('after')")
        assert reply["status"] == "ok"
        assert out["stdout"] == "inside 41\n"
        assert "killed by the OOM killer at 50 MiB" in out["stderr"]
        reply, out = run(kc, "print(x + 1)")
        assert out["stdout"] == "42\n"
        assert subdirs(paths) == []  # the sandbox's child cgroup is gone
        # A cell that ends normally: its output streams back, its variables stay behind.
        reply, out = run(kc, "%%sandbox memory=100M cpu=0.5 pids=16\n"
                             "y = x + 1\nimport os, subprocess\nsubprocess.run(['echo', 'from a child'])\n"
                             "print(open('/proc/self/cgroup').read().count('/sandbox-'))\ny")
        assert out["stdout"] == f"from a child\n{len([p for p in paths if p != 'unified']) or 1}\n42\n", out
        assert out["stderr"] == ""
        reply, out = run(kc, "print('y' in dir())")
        assert out["stdout"] == "False\n"
        reply, out = run(kc, "%%sandbox pids=1000\n1")
        assert "above the container's own limit of 100" in out["stderr"]
        reply, out = run(kc, "%%sandbox\n1 / 0")
        assert "ZeroDivisionError" in out["stderr"] and 'File "<sandbox>", line 1' in out["stderr"]
        # What the cell leaves running goes with the sandbox, and does not hold the cell open.
        reply, out = run(kc, "%%sandbox\nimport subprocess\nsubprocess.Popen(['sleep', '300'])", timeout=20)
        assert "1 process(es) the cell left running were killed" in out["stderr"]
        assert not any("sleep" in " ".join(p["cmdline"]) for p in value_of(
            kc, "import json\n_p = %container_ps --json\nprint(json.dumps(_p))"))
        assert subdirs(paths) == []


def test_a_sigkilled_launcher_leaves_its_sandbox_to_the_next_start(kernel_prefix, tmp_path):
    km = KernelManager(kernel_name=CEIL)
    km.start_kernel(cwd=str(tmp_path))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
        paths = info_of(kc)["cgroup"]["paths"]
        kc.execute("%%sandbox memory=50M\nimport time\ntime.sleep(300)")
        deadline = time.monotonic() + 10
        while subdirs(paths) != ["sandbox-1"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert subdirs(paths) == ["sandbox-1"]
        os.kill(km.provisioner.process.pid, signal.SIGKILL)
        km.provisioner.process.wait()
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
    subprocess.run([CK, "run", "--", "true"], check=True)  # collects the stale cgroup, children first
    assert not any(os.path.exists(d) for d in paths.values())


# ---- widgets ------------------------------------------------------------------------------

def test_monitor_sends_live_values_and_its_sliders_set_limits(kernel_prefix, tmp_path):
    with kernel(CEIL, tmp_path) as (km, kc):
        paths = info_of(kc)["cgroup"]["paths"]
        ids = value_of(kc, "import json\nm = %container_monitor\ndisplay(m)\n"
                           "print(json.dumps({k: getattr(m, k).model_id for k in "
                           "('memory', 'pids', 'oom', 'memory_limit', 'pids_limit', 'status')}))")
        run(kc, "%cgroup_set pids 64")
        updates = comm_updates(kc, 3)
        mem = [s["value"] for c, s in updates if c == ids["memory"]]
        pids = [s["value"] for c, s in updates if c == ids["pids"]]
        assert mem and all("of 512 MiB" in v for v in mem)
        assert any(re.search(r"\d+ of 64, forks refused", v) for v in pids), pids
        current = int(re.search(r"(\d+) of 64", pids[-1])[1])
        assert abs(current - int(cgroup_file(paths, "pids", "pids.current"))) <= 2
        assert [s["value"] for c, s in updates if c == ids["pids_limit"]] == [64]  # the slider follows
        # The frontend moves the memory slider: the same path as %cgroup_set.
        kc.shell_channel.send(kc.session.msg("comm_msg", {
            "comm_id": ids["memory_limit"],
            "data": {"method": "update", "state": {"value": 200}, "buffer_paths": []}}))
        deadline = time.monotonic() + 10
        while int(memory_limit(paths)) != 200 * MiB and time.monotonic() < deadline:
            time.sleep(0.1)
        assert int(memory_limit(paths)) == 200 * MiB
        updates = comm_updates(kc, 2)
        assert any("of 200 MiB" in s["value"] for c, s in updates if c == ids["memory"])
        assert any("memory: 200 MiB" in s["value"] for c, s in updates if c == ids["status"])
        # Closed, it stops.
        reply, out = run(kc, "m.close()\nm._thread.join(5)\nprint(m._thread.is_alive())")
        assert out["stdout"] == "False\n"
        assert comm_updates(kc, 2) == []


def test_namespaces_widget(ceil_kernel):
    km, kc = ceil_kernel
    value = value_of(kc, "import container_kernel, json\nw = container_kernel.namespaces_widget()\n"
                         "print(json.dumps(w.value))")
    assert "<tr style='background:#fff3cd'><td style='text-align:left'>user</td>" in value
    assert "Marked: shared with the host" in value and value.count("fff3cd") == 1


# ---- in any other kernel ------------------------------------------------------------------

def test_load_ext_in_a_plain_ipykernel(kernel_prefix, tmp_path):
    with kernel("python3", tmp_path) as (km, kc):
        reply, out = run(kc, "%load_ext container_kernel")
        assert reply["status"] == "ok"
        assert "not started by container-kernel" in out["stdout"]
        info = info_of(kc)
        assert info["kernel"] == "other" and info["contained"] is False and info["host"] is None
        assert "not contained by this project" in info["warning"]
        reply, out = run(kc, "%container_info")
        assert reply["status"] == "ok" and out["display"][0]["text/plain"].startswith("!! This kernel")
        reply, out = run(kc, "%cgroup")  # read-only, what it can see
        assert reply["status"] == "ok"
        for magic in ("%cgroup_set memory 100M", "%container_ps", "%container_monitor", "%%sandbox\n1"):
            reply, out = run(kc, magic)
            assert reply["ename"] == "UsageError" and "not a container kernel" in out["stderr"], magic
        value = value_of(kc, "import container_kernel, json\n"
                             "print(json.dumps(container_kernel.namespaces_widget().value))")
        assert "unknown here" in value


def test_nothing_left(kernel_prefix):
    assert [l for l in leftovers() if "sandbox" in l] == []
