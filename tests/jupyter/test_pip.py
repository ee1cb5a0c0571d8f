"""%pip in a container kernel: a build sibling installs into the kernelspec's package layer, from
an index on this machine (tests/pip_index.py); the kernel keeps no network and a read-only Python."""
import json
import os
import shutil
import socket
import subprocess
import threading
import time

import pytest

from container_kernel.runtime import package_layer

from tests import pip_index
from tests.helpers import ck
from tests.jupyter.test_kernel import kernel, run

KS = "ck-test-pip"
pytestmark = pytest.mark.skipif(not shutil.which("slirp4netns"),
                                reason="needs slirp4netns (apt-get install slirp4netns)")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """A store of our own (CK_STORE) for the layers, and the kernelspec."""
    path = tmp_path_factory.mktemp("ck-test-store")
    old = os.environ.get("CK_STORE")
    os.environ["CK_STORE"] = str(path)
    yield path
    if old is None:
        os.environ.pop("CK_STORE")
    else:
        os.environ["CK_STORE"] = old


@pytest.fixture(scope="module")
def pip_kernel(kernel_prefix, store):
    r = ck("install", "--prefix", str(kernel_prefix), "--name", KS, "--display-name", "CK test pip",
           "--memory", "1G", "--cpus", "1", "--pids", "200")
    assert r.returncode == 0, r.stderr
    return KS


@pytest.fixture(scope="module")
def index(tmp_path_factory):
    d = tmp_path_factory.mktemp("ck-test-index")
    pip_index.wheel(d, "ck_hello", "1.0", "GREETING = 'hello from the layer'\n")
    pip_index.sdist(d, "ck_slow", "1.0", "import time; time.sleep(8)\nraise SystemExit('slow ends')\n")
    idx = pip_index.Index(d).start()
    yield idx
    idx.stop()


def layer(store):
    return store / "packages" / KS / "prefix"


def pip(kc, line, timeout=120):
    reply, out = run(kc, f"%pip {line}", timeout=timeout)
    return reply, out


def test_install_survives_a_restart_and_reset_removes_it(pip_kernel, index, store):
    with kernel(pip_kernel) as (km, kc):
        reply, out = pip(kc, f"install --find-links {index.url} --trusted-host {index.addr} --no-index ck_hello")
        assert reply["status"] == "ok", out
        assert "Successfully installed ck_hello-1.0" in out["stdout"], out
        reply, out = run(kc, "import ck_hello; print(ck_hello.GREETING, ck_hello.__file__)")
        assert out["stdout"].startswith("hello from the layer /run/container-kernel/packages/"), out
        km.restart_kernel(now=False)
        kc.wait_for_ready(timeout=60)
        reply, out = run(kc, "import ck_hello, sys; print(ck_hello.GREETING); "
                             "print(sys.path.index(ck_hello.__file__.rsplit('/', 1)[0]) == len(sys.path) - 1)")
        assert out["stdout"].split("\n")[:2] == ["hello from the layer", "True"], out  # after the kernel's own
        # The kernel still has no network, and its layer is read-only to it.
        reply, out = run(kc, "import os; print(os.listdir('/sys/class/net'), "
                             "os.access('/run/container-kernel/packages', os.W_OK))")
        assert out["stdout"].strip() == "['lo'] False", out
        reply, out = run(kc, "%container_info")
        assert "packages: /run/container-kernel/packages" in out["stdout"] + json.dumps(out["display"])
    assert list(layer(store).glob("lib/python3*/site-packages/ck_hello.py"))
    r = ck("packages", "ls", "--json")
    assert any(x["name"] == KS and x["size"] > 0 for x in json.loads(r.stdout)), r.stdout
    r = ck("packages", "reset", KS)
    assert r.returncode == 0, r.stderr
    assert not list(layer(store).glob("lib/python3*/site-packages/ck_hello.py"))
    with kernel(pip_kernel) as (km, kc):
        reply, out = run(kc, "import ck_hello")
        assert reply["status"] == "error" and reply["ename"] == "ModuleNotFoundError"


def test_a_hostile_build_step_reads_writes_and_connects_nothing(pip_kernel, index, store, tmp_path):
    marker = tmp_path / "ck-test-marker"  # the notebook's dir: bound into the kernel, not the sibling
    marker.write_text("host secret")
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    port = listener.getsockname()[1]
    host_addrs = sorted(a for a in pip_index.ip("-j", "-4", "addr").stdout and
                        {x["local"] for link in json.loads(pip_index.ip("-j", "-4", "addr").stdout)
                         for x in link.get("addr_info", ())})
    hostile = pip_index.HOSTILE_SETUP.format(marker=str(marker), pth="ck_evil.pth", port=port,
                                             addrs=", ".join(repr(a) for a in ["10.0.2.2"] + host_addrs),
                                             after="")
    pip_index.sdist(index.directory, "ck_evil", "1.0", hostile)
    before = sorted(os.listdir(layer(store))) if layer(store).exists() else []
    with kernel(pip_kernel, cwd=tmp_path) as (km, kc):
        reply, out = pip(kc, f"install --find-links {index.url} --trusted-host {index.addr} --no-index --no-build-isolation ck_evil")
        text = out["stdout"] + out["stderr"]
        assert "CK-BLOCKED read" in text and "CK-BLOCKED write" in text, text
        assert "CK-LEAK" not in text and "host secret" not in text, text
        assert text.count("CK-BLOCKED connect") == len(host_addrs) + 1, text
        assert "failed" in out["stderr"] and "this kernel is unchanged" in out["stderr"]
        reply, out = run(kc, "print('alive')")
        assert out["stdout"] == "alive\n"
    try:
        listener.accept()
        raise AssertionError("the build step reached a listener on the host")
    except socket.timeout:
        pass
    finally:
        listener.close()
    import sys
    assert not any(os.path.exists(os.path.join(p, "ck_evil.pth")) for p in (sys.base_prefix, sys.prefix))
    assert (sorted(os.listdir(layer(store))) if layer(store).exists() else []) == before


def test_bad_input_gets_one_line_and_changes_nothing(pip_kernel, index, store):
    with kernel(pip_kernel) as (km, kc):
        for line, words in (("", "give a command"), ("install --target /tmp ck_hello", "--target is refused"),
                            ("install ./local", "is not a package"),
                            ("install -e .", "-e is refused"),
                            ("uninstall ck_absent", "is not in the package layer")):
            reply, out = pip(kc, line)
            assert reply["status"] == "error" and words in reply["evalue"], (line, reply["evalue"])
            assert "\n" not in reply["evalue"]
        # !pip install, from a subprocess: one line saying to use %pip.
        reply, out = run(kc, "!pip install ck_hello")
        assert "use %pip install" in out["stdout"] + out["stderr"], out
        # The first connection out: the notice, once; %container_info repeats it.
        reply, out = run(kc, "import socket\nfor _ in range(2):\n    try:\n"
                             "        socket.create_connection(('192.0.2.1', 80), timeout=1)\n"
                             "    except OSError as e:\n        print(e.errno)")
        assert out["stderr"].count("this kernel has no network (kernelspec network: none)") == 1, out
        reply, out = run(kc, "%container_info")
        assert "this kernel has no network" in out["stdout"]
    prefix = layer(store)
    for options, words in (("ro,size=1m", "is not writable"), ("size=1m", "is full")):
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "ck-test-pip", str(prefix)], check=True)
        try:
            with kernel(pip_kernel) as (km, kc):
                reply, out = pip(kc, f"install --find-links {index.url} --trusted-host {index.addr} --no-index ck_hello")
                assert reply["status"] == "error" and words in reply["evalue"], reply["evalue"]
                assert "\n" not in reply["evalue"]
        finally:
            subprocess.run(["umount", str(prefix)], check=True)


def test_a_second_kernel_on_the_layer_waits_its_turn(pip_kernel, index, store):
    with kernel(pip_kernel) as (km1, kc1), kernel(pip_kernel) as (km2, kc2):
        slow = threading.Thread(target=pip, args=(kc1, f"install --find-links {index.url} --trusted-host {index.addr} --no-index "
                                                        "--no-build-isolation ck_slow"))
        slow.start()
        # The lock held, not the holder file: that one stays, stale, after an earlier %pip.
        layer = str(store / "packages" / KS)
        first = km1.provisioner.container_id
        deadline = time.monotonic() + 60
        while first not in (package_layer.view(layer).holder or "") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert first in (package_layer.view(layer).holder or ""), "the first %pip never took the layer"
        reply, out = pip(kc2, f"install --find-links {index.url} --trusted-host {index.addr} --no-index ck_hello")
        slow.join(60)
        assert reply["status"] == "error" and "is in use by kernel" in reply["evalue"], reply
        assert "one writer at a time" in reply["evalue"] and "\n" not in reply["evalue"]
