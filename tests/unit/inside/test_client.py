"""inside/client.py: one request line out, the op's reply record back, every failure one line."""

import json

import pytest

from container_kernel import protocol
from container_kernel.inside import client

MiB = 1 << 20


def stats_reply():
    return {"ok": True, "stats": {"version": 2, "paths": {"unified": "/sys/fs/cgroup/ck/c1"},
                                  "memory": {"limit": 512 * MiB, "usage": MiB}, "cpu": {"cpus": 0.5},
                                  "pids": {"limit": 100, "current": 3}, "io": {"limits": []}},
            "ceiling": {"memory": 512 * MiB, "cpu": 1.0, "pids": None}, "enforced": {"memory": "cgroup v2"}}


def test_client_without_a_launcher(monkeypatch, tmp_path):
    monkeypatch.delenv(protocol.CONTROL_ENV, raising=False)
    assert client.path() is None
    with pytest.raises(protocol.ControlError, match=r"not a container kernel \(no \$CK_CONTROL\)"):
        client.request("info")
    monkeypatch.setenv(protocol.CONTROL_ENV, str(tmp_path / "gone.sock"))
    with pytest.raises(protocol.ControlError, match="cannot reach the launcher"):
        client.request("info")


def test_a_reply_becomes_the_ops_record(launcher):
    fake = launcher(json.dumps(stats_reply()).encode() + b"\n",
                    b'{"ok": true, "controller": "memory", "limit": 104857600, "text": "100 MiB"}\n')
    reply = client.request("stats")
    assert isinstance(reply, protocol.StatsReply)
    assert reply.stats.memory.limit == 512 * MiB and reply.stats.cpu.cpus == 0.5
    assert reply.stats.version == 2 and reply.stats.paths == {"unified": "/sys/fs/cgroup/ck/c1"}
    assert reply.stats.memory.peak is None  # a missing field reads as None
    assert reply.ceiling == protocol.Ceiling(512 * MiB, 1.0, None)
    reply = client.request("set", controller="memory", value="100M")
    assert isinstance(reply, protocol.SetReply) and reply.text == "100 MiB" and reply.device is None
    assert fake.requests == [{"op": "stats"}, {"op": "set", "controller": "memory", "value": "100M"}]


@pytest.mark.parametrize("line, says", [
    (b'{"error": "memory \'600M\' is above this kernel\'s ceiling"}\n', "above this kernel's ceiling"),
    (b"not json\n", "a reply that is not JSON"),
    (b"", "a reply that is not JSON"),  # the launcher hung up
    (b"[1]\n", r"^\[1\]$"),
])
def test_refusals_and_garbage_are_one_line_errors(launcher, line, says):
    launcher(line)
    with pytest.raises(protocol.ControlError, match=says) as e:
        client.request("stats")
    assert "\n" not in str(e.value)


def test_a_reply_without_end_is_cut_off(launcher, monkeypatch):
    monkeypatch.setattr(protocol, "MAX_REPLY", 1000)
    launcher(b"x" * 5000)
    with pytest.raises(protocol.ControlError, match="reply was too long: a line longer than 1000 bytes"):
        client.request("ps")

