"""The launcher's control server with a stand-in container (a fake v1 cgroupfs, a ceiling of
512 MiB, 1 CPU, 100 pids), spoken to over its socket as the kernel does: the `server`
fixture, and send()/ask() to talk to it."""

import json
import os
import socket
from types import SimpleNamespace

import pytest

from container_kernel import protocol
from container_kernel.kernel import control
from container_kernel.runtime.spec import Resources
from tests.fakes.cgroupfs_v1 import FakeV1

MiB = 1 << 20
NCPU = os.cpu_count() or 1


def one_line(e):
    text = str(e)
    return text and len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text



@pytest.fixture
def server(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=512 * MiB, memory_swap=512 * MiB, cpus=1, pids=100))
    spec = SimpleNamespace(id="c1", namespaces=("pid", "mnt"), rootfs="host", network="none",
                           rootless=False, process=SimpleNamespace(cwd=str(tmp_path)))
    container = SimpleNamespace(cgroup=cg, spec=spec, init_pid=None, enforced={}, mapping=None)
    srv = control.ControlServer(container, protocol.Ceiling(memory=512 * MiB, cpu=1.0, pids=100),
                                str(tmp_path / "control.sock")).start()
    srv.fake = fake
    yield srv
    srv.stop()
    cg.destroy()


def send(srv, data):
    """Raw bytes to the server's socket -> its reply, decoded as JSON."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(srv.path)
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before the end of it: the reply says why
        return json.loads(protocol.read_line(s, protocol.MAX_REPLY))


def ask(srv, **req):
    reply = send(srv, protocol.encode_request(**req))
    if "error" in reply:
        assert one_line(reply["error"]), reply
    return reply
