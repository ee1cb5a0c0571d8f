"""The magics' edges, without a kernel: argument parsers, the child cgroups of %%sandbox on
the fake cgroupfs trees, and the launcher's control server with a stand-in container.

Every argument string either parses to a valid value or raises a one-line UsageError;
every control request gets a one-line reply, and a refused one changes nothing.
"""

import errno
import json
import os
import socket
from types import SimpleNamespace

import pytest
from hypothesis import given, settings, strategies as st
from IPython.core.error import UsageError

from container_kernel.jupyter import control, magics
from container_kernel.runtime.cgroups import PARENT
from container_kernel.runtime.cgroups.v2 import LEAF, V2Cgroup
from container_kernel.runtime.spec import MIN_MEMORY, Resources, parse_size
from tests.unit.test_cgroups_v1 import FakeV1
from tests.unit.test_cgroups_v2 import FakeV2

MiB = 1 << 20
NCPU = os.cpu_count() or 1


def one_line(e):
    text = str(e)
    return text and len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text


# Strings that look like arguments often enough to reach the parsers' insides.
WORDS = st.sampled_from(["memory", "cpu", "pids", "io", "read", "write", "max", "MAX", "100M",
                         "1.5g", "0.5", "64", "10M/s", "/dev/vda", "8:0", "-1", "0", "1e3", "nan",
                         "inf", "5", "6m", "1_0", "", "=", "memory=50M", "cpu=0.5", "pids=16"])
ARGS = st.lists(st.one_of(WORDS, st.text(max_size=12)), max_size=5).map(" ".join)
ANY = st.one_of(ARGS, st.text(max_size=60))


# ---- %cgroup_set --------------------------------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(ANY)
def test_cgroup_set_parses_or_says_one_line(line):
    try:
        req = magics.parse_cgroup_set(line)
    except UsageError as e:
        assert one_line(e) and str(e).startswith("%cgroup_set: ")
        return
    c = req["controller"]
    assert c in control.CONTROLLERS
    if c == "io":
        assert req["direction"] in ("read", "write")
        rate = control.parse_rate(req["direction"], req["value"])
        assert rate is None or rate > 0
    else:
        value = control.parse_limit(c, req["value"])
        if value is not None:
            if c == "memory":
                assert value >= MIN_MEMORY
            elif c == "cpu":
                assert 0.01 <= value <= NCPU
            else:
                assert value >= 2 and isinstance(value, int)


@pytest.mark.parametrize("line, req", [
    ("memory 100M", {"controller": "memory", "value": "100M"}),
    ("memory max", {"controller": "memory", "value": "max"}),
    ("CPU 0.5", {"controller": "cpu", "value": "0.5"}),
    ("pids 64", {"controller": "pids", "value": "64"}),
    ("io write 10M/s", {"controller": "io", "direction": "write", "value": "10M/s"}),
    ("io read max 254:0", {"controller": "io", "direction": "read", "value": "max", "device": "254:0"}),
])
def test_cgroup_set_examples(line, req):
    assert magics.parse_cgroup_set(line) == req


@pytest.mark.parametrize("line, says", [
    ("", "no controller given"),
    ("swap 1G", "unknown controller 'swap'"),
    ("memory", "memory takes one value"),
    ("memory 1M", "too small"),
    ("memory lots", "invalid size 'lots'"),
    ("cpu 0", "from 0.01 to"),
    ("pids 1", "at least 2"),
    ("io write", "io takes a direction"),
    ("io sideways 1M", "unknown direction 'sideways'"),
    ("io write 0", "must be more than 0"),
    ("io write 1M sda", "io device 'sda'"),
])
def test_cgroup_set_refusals_name_the_value(line, says):
    with pytest.raises(UsageError, match=says) as e:
        magics.parse_cgroup_set(line)
    assert one_line(e.value)


# ---- %%sandbox and %container_monitor -----------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(ANY)
def test_sandbox_args_parse_or_say_one_line(line):
    try:
        limits = magics.parse_sandbox(line)
    except UsageError as e:
        assert one_line(e) and str(e).startswith("%%sandbox: ")
        return
    assert set(limits) <= {"memory", "cpus", "pids"}
    assert limits.get("memory", MIN_MEMORY) >= MIN_MEMORY
    assert 0.01 <= limits.get("cpus", 1) <= NCPU
    assert limits.get("pids", 2) >= 2


@given(st.builds(lambda m, c, p: f"memory={m}M cpu={c} pids={p}",
                 st.integers(6, 10**6), st.sampled_from(["0.01", "0.5", "1"]), st.integers(2, 10**6)))
def test_sandbox_valid_args(line):
    limits = magics.parse_sandbox(line)
    assert limits["memory"] == parse_size(line.split()[0].split("=")[1])


def test_sandbox_refusals():
    for line, says in (("memory=50", "too small"), ("memory=max", "not max"), ("mem 50M", "invalid argument"),
                       ("memory=50M memory=60M", "given twice"), ("swap=1G", "invalid argument")):
        with pytest.raises(UsageError, match=says):
            magics.parse_sandbox(line)
    assert magics.parse_sandbox("") == {}


@given(ANY)
def test_monitor_interval(line):
    try:
        interval = magics.parse_interval(line)
    except UsageError as e:
        assert one_line(e)
        return
    assert 0.2 <= interval <= 60


def test_flags():
    assert magics._flags(" --json ", "%cgroup") == {"--json"}
    with pytest.raises(UsageError, match="unknown argument '--yaml'"):
        magics._flags("--yaml", "%cgroup")


def test_views_helpers():
    assert magics.capabilities("0000000000000003") == ["chown", "dac_override"]
    assert magics.users([(0, 1001, 1)], [(0, 1001, 1)])[0] == "root inside is uid 1001 on the host"
    assert magics.users([(0, 0, 4294967295)], [])[0] == "root inside is uid 0 on the host"
    assert magics.users([(1000, 1000, 1)], [])[0].startswith("root inside is not mapped")
    assert magics.where({"memory": "/c/memory/ck/x", "pids": "/c/pids/ck/x"}) == "/c/{memory,pids}/ck/x"
    text = magics.text_table(("a", "bb"), [(1, 2), ("long", 3)])
    assert text.splitlines()[2].split() == ["long", "3"]
    assert "<tr style='background:#fff3cd'>" in magics.html_table(("a",), [("<x>",)], {0})
    assert "&lt;x&gt;" in magics.html_table(("a",), [("<x>",)])


# ---- child cgroups: what %%sandbox asks of the drivers -------------------------------------

class MovingFakeV2(FakeV2):
    """FakeV2, plus the rules a child cgroup meets: a PID written to cgroup.procs *moves*
    (it leaves its old cgroup), a cgroup that hands controllers down may not take
    processes, and cgroup.kill empties the whole subtree."""

    def write(self, path, text, plain):
        name, d = os.path.basename(path), os.path.dirname(path)
        if name == "cgroup.procs":
            if d != self.root and self.read(os.path.join(d, "cgroup.subtree_control")).split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
            for top, _, files in os.walk(self.root):
                if "cgroup.procs" in files and top != d:
                    procs = self.read(os.path.join(top, "cgroup.procs")).split()
                    if text in procs:
                        procs.remove(text)
                        self.put(os.path.join(top, "cgroup.procs"), "".join(p + "\n" for p in procs))
        if name == "cgroup.kill":
            for top, _, files in os.walk(d):
                self.put(os.path.join(top, "cgroup.procs"), "")
            return plain("")
        return super().write(path, text, plain)


def test_v2_child_moves_the_container_into_a_leaf(tmp_path, monkeypatch):
    fake = MovingFakeV2(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=512 * MiB, pids=100))
    for pid in (101, 102):
        cg.add(pid)
    child = cg.create_child("sandbox-1", Resources(memory=50 * MiB, memory_swap=50 * MiB, pids=16))
    assert isinstance(child, V2Cgroup) and child.path == os.path.join(cg.path, "sandbox-1")
    # The no-internal-processes rule: <id> holds nothing now, its processes are in <id>/main.
    assert fake.cat("cgroup.procs") == ""
    assert fake.cat(f"{LEAF}/cgroup.procs").split() == ["101", "102"]
    assert fake.cat("cgroup.subtree_control").split() == ["cpu", "io", "memory", "pids"]
    assert fake.cat("sandbox-1/memory.max") == str(50 * MiB) and fake.cat("sandbox-1/pids.max") == "16"
    child.add(103)
    assert cg.procs() == [] and cg.procs(recursive=True) == [101, 102, 103]
    assert child.procs() == [103]
    # A second sandbox does not move anything again.
    fake.writes.clear()
    second = cg.create_child("sandbox-2", Resources(pids=8))
    assert not [p for p, _ in fake.writes if p.endswith("cgroup.procs") or "subtree" in p]
    second.destroy()
    assert not os.path.exists(second.path)
    # destroy() of the container removes main and the sandboxes too.
    cg.destroy()
    assert [e.name for e in os.scandir(os.path.join(fake.root, PARENT)) if e.is_dir()] == []


def test_v2_child_of_an_empty_container_still_gets_a_leaf_free_parent(tmp_path, monkeypatch):
    fake = MovingFakeV2(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources())
    cg.create_child("sandbox-1", Resources(memory=50 * MiB))
    assert fake.cat("sandbox-1/memory.max") == str(50 * MiB)
    cg.destroy()
    assert not os.path.exists(cg.path)


def test_v2_child_names_cannot_climb(tmp_path, monkeypatch):
    fake = MovingFakeV2(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources())
    for name in ("", "..", "a/b"):
        with pytest.raises(Exception, match="invalid child name"):
            cg.create_child(name, Resources())
    cg.destroy()


def test_v1_child_is_a_dir_in_each_hierarchy(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=512 * MiB, memory_swap=512 * MiB))
    child = cg.create_child("sandbox-1", Resources(memory=50 * MiB, memory_swap=50 * MiB, cpus=0.5))
    assert child.paths() == {c: os.path.join(p, "sandbox-1") for c, p in cg.paths().items()}
    assert fake.cat("memory", "sandbox-1/memory.limit_in_bytes") == str(50 * MiB)
    assert fake.cat("cpu", "sandbox-1/cpu.cfs_quota_us") == "50000"
    child.add(7)
    assert cg.procs() == [] and cg.procs(recursive=True) == [7]
    for d in child.paths().values():
        fake.put(os.path.join(d, "cgroup.procs"), "")  # it exited
    cg.destroy()
    assert all(not os.path.exists(d) for d in cg.paths().values())


# ---- the control server, with a stand-in container -----------------------------------------

@pytest.fixture
def server(tmp_path, monkeypatch):
    fake = FakeV1(tmp_path).install(monkeypatch)
    cg = fake.open()
    cg.create(Resources(memory=512 * MiB, memory_swap=512 * MiB, cpus=1, pids=100))
    spec = SimpleNamespace(id="c1", namespaces=("pid", "mnt"), rootfs="host", network="none",
                           rootless=False, process=SimpleNamespace(cwd=str(tmp_path)))
    container = SimpleNamespace(cgroup=cg, spec=spec, init_pid=None)
    srv = control.ControlServer(container, {"memory": 512 * MiB, "cpus": 1.0, "pids": 100},
                                str(tmp_path / "control.sock"))
    srv.fake = fake
    yield srv
    srv.stop()
    cg.destroy()


def ask(srv, **req):
    reply = srv.handle_bytes(json.dumps(req).encode() + b"\n")
    if "error" in reply:
        assert one_line(reply["error"]), reply
    return reply


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
    server.ceiling = {}
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
    limits = server.container.cgroup.stats()["io"]["limits"]
    assert [(l["rbps"], l["wbps"]) for l in limits] == [(MiB, None)]  # the read rule stayed


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
    reply = server.handle_bytes(data)
    assert says in reply["error"] and one_line(reply["error"])


def test_the_socket_survives_bad_clients(server):
    server.start()

    def send(data):
        with socket.socket(socket.AF_UNIX) as s:
            s.settimeout(10)
            s.connect(server.path)
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            return json.loads(control._read_line(s, 1 << 20))

    assert "longer than" in send(b"x" * (control.MAX_LINE + 10))["error"]
    assert "not a JSON line" in send(b"{")["error"]
    with socket.socket(socket.AF_UNIX) as s:  # connects, says nothing, leaves
        s.connect(server.path)
    reply = send(b'{"op": "stats"}\n')
    assert reply["ok"] and reply["stats"]["memory"]["limit"] == 512 * MiB
    assert oct(os.stat(server.path).st_mode & 0o777) == "0o600"
    server.stop()
    assert not os.path.exists(server.path)


def test_client_without_a_launcher(monkeypatch, tmp_path):
    monkeypatch.delenv(control.ENV, raising=False)
    with pytest.raises(control.ControlError, match="not a container kernel"):
        control.request("info")
    monkeypatch.setenv(control.ENV, str(tmp_path / "gone.sock"))
    with pytest.raises(control.ControlError, match="cannot reach the launcher"):
        control.request("info")
