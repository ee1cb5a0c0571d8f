"""The launcher's control server (kernel/control.py, its socket loop control_server.py)
with a stand-in container, spoken to over its socket as the kernel does: only the wire
(protocol.py) and the server's published bounds are assumed. Every request gets a
one-line reply, a refused one changes nothing, and no abuse outlasts itself.
"""

import os
import socket

import pytest

from container_kernel import protocol

from tests.unit.kernel.stand_in import MiB, NCPU, ask, one_line, send, server  # noqa: F401,F811


def test_set_within_the_ceiling_reads_back(server):
    reply = ask(server, op="set", controller="memory", value="100M")
    assert reply["ok"] and reply["limit"] == 100 * MiB and reply["text"] == "100 MiB"
    assert server.fake.cat("memory", "memory.memsw.limit_in_bytes") == str(100 * MiB)
    assert ask(server, op="set", controller="cpu", value="0.5")["limit"] == 0.5
    assert ask(server, op="set", controller="pids", value="64")["limit"] == 64


def test_above_the_ceiling_is_refused_and_changes_nothing(server):
    server.fake.writes.clear()
    for controller, value, says in (("memory", "600M", "ceiling of 512 MiB"), ("pids", "101", "ceiling of 100"),
                                    ("memory", "lots", "invalid size")):
        reply = ask(server, op="set", controller=controller, value=value)
        assert says in reply["error"]
    if NCPU > 1:
        assert "ceiling of 1 CPU" in ask(server, op="set", controller="cpu", value="2")["error"]
    assert server.fake.writes == []


def test_max_goes_back_to_the_ceiling_or_lifts(server):
    ask(server, op="set", controller="memory", value="100M")
    assert ask(server, op="set", controller="memory", value="max")["limit"] == 512 * MiB
    server.ceiling = protocol.Ceiling()
    assert ask(server, op="set", controller="pids", value="max")["limit"] is None


def test_io_on_the_workspace_disk(server):
    st = os.stat(server.container.spec.process.cwd)
    if os.major(st.st_dev) == 0 or not os.path.exists(f"/sys/dev/block/{os.major(st.st_dev)}:{os.minor(st.st_dev)}"):
        pytest.skip("the temp dir is not on a block device here")
    reply = ask(server, op="set", controller="io", direction="write", value="10M/s")
    assert reply["limit"] == 10 * MiB
    ask(server, op="set", controller="io", direction="read", value="1M")
    reply = ask(server, op="set", controller="io", direction="write", value="max")
    assert reply["limit"] is None
    limits = server.container.cgroup.stats().io.limits
    assert [(l.rbps, l.wbps) for l in limits] == [(MiB, None)]  # the read rule stayed


def test_io_needs_a_disk(server):
    server.container.spec.process.cwd = "/proc"  # a filesystem with no block device
    assert "no block device" in ask(server, op="set", controller="io", direction="read", value="1M")["error"]
    reply = ask(server, op="set", controller="io", direction="read", value="1M", device="/dev/null")
    assert "'/dev/null' is not a block device" in reply["error"]


@pytest.mark.parametrize("data, says", [
    (b"not json\n", "not a JSON line"),
    (b"[1, 2]\n", 'JSON object with "op"'),
    (b'{"op": 3}\n', 'JSON object with "op"'),
    (b'{"op": "reboot"}\n', "unknown op 'reboot'"),
    (b'{"op": "__init__"}\n', "unknown op"),
    (b'{"op": "set", "controller": "swap", "value": "1"}\n', "unknown controller 'swap'"),
    (b'{"op": "sandbox", "pid": 2}\n', "invalid pid 2"),
    (b'{"op": "sandbox_end", "name": "../x"}\n', "no sandbox"),
    (b"\xff\xfe\n", "not a JSON line"),
])
def test_bad_requests_get_one_line(server, data, says):
    reply = send(server, data)
    assert says in reply["error"] and one_line(reply["error"])


def test_the_socket_survives_bad_clients(server):
    assert "longer than" in send(server, b"x" * (protocol.MAX_LINE + 10))["error"]
    assert "not a JSON line" in send(server, b"{")["error"]
    with socket.socket(socket.AF_UNIX) as s:  # connects, says nothing, leaves
        s.connect(server.path)
    reply = send(server, b'{"op": "stats"}\n')
    assert reply["ok"] and reply["stats"]["memory"]["limit"] == 512 * MiB
    assert oct(os.stat(server.path).st_mode & 0o777) == "0o600"
    server.stop()
    assert not os.path.exists(server.path)
