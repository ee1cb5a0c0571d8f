"""inside/sandbox.py: the fork, its requests to the launcher (a fake one here, so no cgroup
is made), its output streamed back, and what the user is told once it is gone."""

import json
import os
import signal
from types import SimpleNamespace

import pytest

from container_kernel import protocol
from container_kernel.inside import sandbox
from container_kernel.runtime.cgroups.stats import IO, Cpu, Memory, Pids, Stats

MiB = 1 << 20


def end(oom_kills=0, limit=50 * MiB, peak=None, left=0):
    stats = Stats(2, {"unified": "/x"}, Memory(limit=limit, usage=MiB, peak=peak, oom_kills=oom_kills),
                  Cpu(), Pids(), IO())
    return protocol.SandboxEnd("sandbox-1", stats, left, True)


def test_notices():
    # wait statuses: exit code N is N << 8, killed by a signal is the signal's number
    assert sandbox.notices(0, end()) == []
    assert sandbox.notices(1 << 8, end()) == []  # exit code 1: the traceback said it already
    assert sandbox.notices(3 << 8, end()) == ["%%sandbox: the cell exited with code 3."]
    assert sandbox.notices(signal.SIGKILL, end(oom_kills=1, peak=50 * MiB)) == [
        "%%sandbox: the cell was killed by the OOM killer at 50 MiB (peak 50 MiB); "
        "the kernel and its variables are untouched."]
    assert sandbox.notices(0, end(oom_kills=2, limit=None)) == [
        "%%sandbox: the OOM killer killed 2 process(es) of the cell at the container's memory limit."]
    assert sandbox.notices(signal.SIGTERM, end(left=1)) == [
        "%%sandbox: the cell was killed by signal 15 (SIGTERM).",
        "%%sandbox: 1 process(es) the cell left running were killed with the sandbox."]
    assert sandbox.notices(None, None) == []  # stopped, and the launcher could not say more


def shell(**ns):
    return SimpleNamespace(transform_cell=lambda cell: cell, user_ns=dict(ns),
                           display_pub=SimpleNamespace(publish=None))


def test_the_cell_runs_in_the_fork_after_the_launcher_placed_it(launcher, capfd):  # noqa: F811
    fake = launcher(b'{"ok": true, "name": "sandbox-1", "host_pid": 4242, "paths": {}, "limits": {}}\n',
                    protocol.encode_reply(end()))
    status, ended = sandbox.run_sandboxed(shell(x=41), "import sys\nprint('inside', x)\n"
                                          "print('oops', file=sys.stderr)\ny = x + 1\ny",
                                          {"memory": 50 * MiB, "cpu": 0.5})
    assert os.waitstatus_to_exitcode(status) == 0 and ended == end()
    out, err = capfd.readouterr()
    assert out == "inside 41\n42\n" and err == "oops\n"
    (req, end_req) = fake.requests
    # the fork's own PID, the limits as strings, only the ones given
    assert req["op"] == "sandbox" and isinstance(req["pid"], int) and req["pid"] > 0
    assert {k: v for k, v in req.items() if k not in ("op", "pid")} == {"memory": str(50 * MiB), "cpu": "0.5"}
    assert protocol.decode_request(json.dumps(req).encode())[0] == "sandbox"  # what the server accepts
    assert end_req == {"op": "sandbox_end", "name": "sandbox-1"}


def test_a_refused_sandbox_runs_nothing(launcher, capfd, tmp_path):  # noqa: F811
    fake = launcher(b'{"error": "pids=1000 is above the container\'s own limit of 100"}\n')
    marker = tmp_path / "ran"
    with pytest.raises(protocol.ControlError, match="above the container's own limit"):
        sandbox.run_sandboxed(shell(), f"open({str(marker)!r}, 'w').write('x')", {"pids": 1000})
    assert not marker.exists() and [r["op"] for r in fake.requests] == ["sandbox"]
