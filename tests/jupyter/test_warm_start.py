"""The warm start (kernel/template.py): kernels forked from one pre-imported template per
server, which look from inside as a cold one does, and hold nothing their launcher read."""
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

from tests.helpers import RUN_BASE, alive, leftovers, within
from tests.jupyter.test_kernel import kernel, run

# What a cell sees of its own process: all of it should be the same, warm or cold.
LOOK = textwrap.dedent("""
    import json, os, signal, sys
    status = dict(l.split(":", 1) for l in open("/proc/self/status"))
    def target(fd):
        try:
            return os.readlink(f"/proc/self/fd/{fd}").split(":")[0]
        except OSError:  # the listing's own fd, closed by now
            return None
    fds = sorted((int(fd), target(fd)) for fd in os.listdir("/proc/self/fd"))
    fds = [f for f in fds if f[1] is not None and "/.ipython/" not in f[1]]
    print(json.dumps({
        "warm": "container_kernel.runtime.seed" in sys.modules,
        "env": sorted(k for k in os.environ),
        "env_values": {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "TERM", "container")},
        "path": sys.path, "argv0": sys.argv[0], "orig_argv": sys.orig_argv[:4] + sys.orig_argv[5:],  # not the connection file
        "cwd": os.getcwd(), "pid": os.getpid(), "ppid": os.getppid(),
        "ids": [os.getuid(), os.getgid(), os.getgroups()],
        "status": {k: status[k].strip() for k in ("CapEff", "CapBnd", "CapPrm", "NoNewPrivs", "Seccomp")},
        "fds": fds,
        "signals": {s: str(signal.getsignal(getattr(signal, s))) for s in ("SIGINT", "SIGTERM", "SIGPIPE", "SIGXFSZ", "SIGCHLD")},
        "blocked": sorted(signal.pthread_sigmask(signal.SIG_BLOCK, [])),
        "cmdline": open("/proc/self/cmdline").read().split("\\0")[1:4],
        "init_cmdline": open("/proc/1/cmdline").read().split("\\0")[1:4],
        "environ_file": sorted(x.split("=")[0] for x in open("/proc/self/environ").read().split("\\0") if x),
        "main": sys.modules["__main__"].__name__,
        "comm": open("/proc/self/comm").read(),
    }))
""")


@pytest.fixture(scope="module")
def cold_kernelspec(kernel_prefix):
    """ck-test-default with the provisioner's warm_start off (kernel.json metadata config)."""
    kernels = kernel_prefix / "share/jupyter/kernels"
    spec = json.loads((kernels / "ck-test-default/kernel.json").read_text())
    spec["metadata"]["kernel_provisioner"]["config"] = {"warm_start": False}
    (kernels / "ck-test-cold").mkdir(exist_ok=True)
    (kernels / "ck-test-cold/kernel.json").write_text(json.dumps(spec))
    spec["metadata"]["kernel_provisioner"]["config"] = {}
    spec["env"] = {"PYTHONDONTWRITEBYTECODE": "1"}  # an interpreter reads it as it starts
    (kernels / "ck-test-pyenv").mkdir(exist_ok=True)
    (kernels / "ck-test-pyenv/kernel.json").write_text(json.dumps(spec))
    return "ck-test-cold"


def look(kc):
    # Once ipykernel has settled: its threads open their sockets as they start, and
    # IPython's history database is open only while it writes.
    run(kc, "import time; time.sleep(1)")
    reply, out = run(kc, LOOK)
    assert reply["status"] == "ok", out
    return json.loads(out["stdout"])


def test_a_warm_kernel_is_a_fork_of_the_template(kernel_prefix):
    with kernel("ck-test-default") as (km, kc):
        assert km.provisioner.start_kind == "warm"
        seen = look(kc)
        assert seen["warm"], "the kernel was exec'd, not forked from the template"
        launcher = psutil.Process(km.provisioner.process.pid)
        template = launcher.parent()
        assert template.cmdline()[1:3] == ["-m", "container_kernel.kernel.template"]
        assert template.parent().pid == os.getpid()  # the server's: here, this test process
        reply, out = run(kc, "print(sum(range(10)))")
        assert out["stdout"] == "45\n"


def test_warm_and_cold_kernels_look_the_same_from_inside(kernel_prefix, cold_kernelspec):
    with kernel("ck-test-default") as (km, kc):
        warm = look(kc)
    with kernel(cold_kernelspec) as (km, kc):
        assert km.provisioner.start_kind == "cold"
        cold = look(kc)
    assert warm.pop("warm") and not cold.pop("warm")
    # What the template's exec left: /proc/self/environ is the block it was exec'd with, the
    # kernels' default variables with the template's values, and nothing of the server's.
    assert set(warm.pop("environ_file")) <= {"HOME", "HOSTNAME", "LANG", "PATH", "container", "TERM",
                                             "JPY_PARENT_PID", "PYTHONPATH"}
    cold.pop("environ_file")
    # The same fds: 0-2 as set, then what ipykernel's threads open, in their order.
    warm_fds, cold_fds = warm.pop("fds"), cold.pop("fds")
    assert warm_fds[:3] == cold_fds[:3] == [[0, "/dev/null"], [1, "pipe"], [2, "pipe"]]
    assert sorted(t for _, t in warm_fds) == sorted(t for _, t in cold_fds), json.dumps([warm_fds, cold_fds])
    assert warm == cold


def test_an_interpreter_option_in_the_env_means_exec_in_the_clean_stage(kernel_prefix, cold_kernelspec):
    with kernel("ck-test-pyenv") as (km, kc):
        assert km.provisioner.start_kind == "warm"  # forked from the template...
        seen = look(kc)
        assert not seen["warm"]  # ...but the kernel exec'd its own interpreter
        assert "PYTHONDONTWRITEBYTECODE" in seen["env"]


def scan(pid, needle):
    """Is needle anywhere in the readable memory of pid? (root reads any /proc/PID/mem)"""
    with open(f"/proc/{pid}/maps") as maps, open(f"/proc/{pid}/mem", "rb", 0) as mem:
        for line in maps:
            fields = line.split()
            if "r" not in fields[1] or (len(fields) > 5 and fields[5] in ("[vvar]", "[vsyscall]", "[vvar_vclock]")):
                continue
            start, end = (int(x, 16) for x in fields[0].split("-"))
            try:
                mem.seek(start)
                if needle in mem.read(end - start):
                    return True
            except (OSError, OverflowError, ValueError):
                continue
    return False


def test_nothing_the_launcher_read_is_in_the_kernels_memory(kernel_prefix):
    """The server's environment reaches the launcher (jupyter_client passes it), never the
    kernel: the launcher forked the kernel's ancestor before it read its request (seed.py)."""
    secret = f"ck-secret-{os.urandom(8).hex()}"
    os.environ["CK_TEST_SERVER_SECRET"] = secret
    try:
        with kernel("ck-test-default") as (km, kc):
            assert look(kc)["warm"]
            launcher = km.provisioner.process.pid
            assert scan(launcher, secret.encode()), "the premise: the launcher holds the secret"
            kernel_pid = [p for p in psutil.Process(launcher).children(recursive=True)
                          if p.name().startswith("python") and "ipykernel_launcher" in " ".join(p.cmdline())]
            assert len(kernel_pid) == 1
            assert not scan(kernel_pid[0].pid, secret.encode()), "the kernel's memory holds the secret"
            # The same search finds what is there: bytes a cell made, never in its source.
            mine = os.urandom(8).hex()
            reply, out = run(kc, f"mine = bytes.fromhex({mine!r}) * 2")
            assert reply["status"] == "ok", out
            assert scan(kernel_pid[0].pid, bytes.fromhex(mine) * 2)
    finally:
        del os.environ["CK_TEST_SERVER_SECRET"]


SERVER = textwrap.dedent("""
    import os, sys, time
    from jupyter_client import KernelManager
    km = KernelManager(kernel_name="ck-test-default")
    km.start_kernel()
    kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
    print(km.provisioner.start_kind, km.provisioner.process.pid, flush=True)
    time.sleep(600)
""")


def test_the_template_ends_with_its_server_and_leaves_nothing(kernel_prefix):
    server = subprocess.Popen([sys.executable, "-c", SERVER], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ))
    try:
        kind, launcher = server.stdout.readline().split()
        assert kind == "warm"
        template = psutil.Process(int(launcher)).parent()
        tdirs = [d for d in os.listdir(RUN_BASE) if d.startswith("t-")]
        assert any(open(os.path.join(RUN_BASE, d, "owner")).read().split()[0] == str(template.pid)
                   for d in tdirs)
    finally:
        server.send_signal(signal.SIGKILL)
        server.wait()
    deadline = time.time() + 10
    while time.time() < deadline and (alive(template.pid) or alive(int(launcher))):
        time.sleep(0.1)
    assert not alive(template.pid) and not alive(int(launcher))
    # The launcher's reaper and the template's own exit clean up after them: give them 10 s.
    assert within(10, lambda: not [x for x in leftovers() if "/t-" in x or launcher in x]), \
        leftovers()


def test_a_template_that_cannot_start_means_a_cold_start(kernel_prefix, tmp_path):
    """The kernelspec's interpreter is a wrapper that refuses to be a template: the kernel
    still starts, cold, and the client's handle says why there was no template."""
    wrapper = tmp_path / "python"
    wrapper.write_text(f'#!/bin/sh\n[ "$2" = container_kernel.kernel.template ] && exit 3\n'
                       f'exec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    kernels = kernel_prefix / "share/jupyter/kernels"
    spec = json.loads((kernels / "ck-test-default/kernel.json").read_text())
    spec["argv"][0] = str(wrapper)
    (kernels / "ck-test-wrapped").mkdir(exist_ok=True)
    (kernels / "ck-test-wrapped/kernel.json").write_text(json.dumps(spec))
    with kernel("ck-test-wrapped") as (km, kc):
        assert km.provisioner.start_kind == "cold"
        assert not look(kc)["warm"]
    from container_kernel.kernel.warm_start import Client
    assert Client.of(str(wrapper)).problem == "the warm-start template did not start (exit 3)"


def test_a_deleted_notebook_dir_is_the_start_requests_one_line_error(kernel_prefix, tmp_path):
    from jupyter_client import KernelManager
    gone = tmp_path / "notebooks"
    gone.mkdir()
    km = KernelManager(kernel_name="ck-test-default")
    gone.rmdir()
    with pytest.raises(RuntimeError, match="the notebook's directory has been deleted") as e:
        km.start_kernel(cwd=str(gone))
    assert "\n" not in str(e.value)
    km.cleanup_resources()
