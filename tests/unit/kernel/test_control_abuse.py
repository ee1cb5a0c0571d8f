"""The control server under abuse (issue: the control socket is an attack surface): what
untrusted code inside may throw at it, against the stand-in container of test_control.py.
It must survive with bounded memory, serve the magics again at once, and never lift a
limit above the ceiling."""

import contextlib
import json
import os
import resource
import socket
import stat
import threading
import time

import pytest

from container_kernel import protocol
from container_kernel.kernel import control, control_server

MiB = 1 << 20
NCPU = os.cpu_count() or 1


def one_line(e):
    text = str(e)
    return text and len(text.splitlines()) == 1 and "\n" not in text and "\r" not in text


from tests.unit.kernel.stand_in import MiB, NCPU, ask, one_line, send, server  # noqa: F401,F811


# ---- abuse: what untrusted code inside may throw at the socket ------------------------------
# The server runs as root on the host, in a thread of the launcher (here: of this test
# process). Each abuse must leave its memory bounded, its limits within the ceiling, and
# the magics served again at once.

STATS = b'{"op": "stats"}\n'


def status_kib(field):
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith(field + ":"))


@contextlib.contextmanager
def peak_rss():
    """Yields a function: how far this process's RSS peaked above its level at the start."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM (the peak) to the current RSS
    base = status_kib("VmRSS")
    yield lambda: (status_kib("VmHWM") - base) * 1024


@contextlib.contextmanager
def open_files(n):
    """RLIMIT_NOFILE raised to at least n for the block (idle connections take one fd each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < n:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard} here: {n} connections need more")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, n), hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def connect(srv):
    """A connection as an attacker would make it: connect() waits while the backlog is full."""
    s = socket.socket(socket.AF_UNIX)
    s.connect(srv.path)
    s.settimeout(10)
    return s


def timed_stats(srv):
    """A legitimate request, as the magics send it: (seconds to its answer, the reply)."""
    t = time.monotonic()
    reply = ask(srv, op="stats")
    return time.monotonic() - t, reply


def assert_serves(srv):
    seconds, reply = timed_stats(srv)
    assert reply["ok"] and reply["stats"]["memory"]["limit"] == 512 * MiB
    # Not a timing of the server (benchmarks/ are): a server that waited on one of the
    # abusive clients would take at least its protocol.TIMEOUT; serving what was queued
    # first took up to 1.7 s on this 2-core machine under load.
    assert seconds < protocol.TIMEOUT, f"a stats request took {seconds:.2f} s"


def test_a_burst_of_10000_requests(server):
    """10,000 requests at once from 8 threads, half of them hanging up before their reply:
    a burst must neither grow the server's memory nor stop it serving the magics."""
    errors = []

    def client(n):
        for i in range(n):
            with connect(server) as s:
                s.sendall(STATS)
                if i % 2:
                    continue  # gone before its reply: the server's write meets EPIPE
                reply = json.loads(protocol.read_line(s, protocol.MAX_REPLY))
                if not reply.get("ok"):
                    errors.append(reply)

    with peak_rss() as growth:
        threads = [threading.Thread(target=client, args=(1250,)) for _ in range(8)]
        t = time.monotonic()
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        print(f"10,000 requests in {time.monotonic() - t:.2f} s")
        assert errors == []
        assert growth() < 50 * MiB
    assert_serves(server)


def test_a_100_mb_line_costs_one_line(server):
    """A line without end, 100 MB of it: the server must hold at most MAX_LINE of it,
    answer one error line and hang up, not buffer the lot (it would run the host out
    of memory, as root)."""
    chunk, sent = b"x" * MiB, 0
    with peak_rss() as growth, connect(server) as s:
        try:
            while sent < 100 * MiB:
                sent += s.send(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass
        reply = json.loads(protocol.read_line(s, protocol.MAX_REPLY))
        print(f"100 MB line: refused after {sent >> 10} KiB taken, "
              f"RSS peak +{growth() / MiB:.2f} MiB")
        assert growth() < 50 * MiB
    assert reply["error"] == f"bad request: a line longer than {protocol.MAX_LINE} bytes"
    assert sent < 100 * MiB
    assert_serves(server)


def nested(depth):
    return b'{"op": ' * depth + b'"stats"' + b"}" * depth + b"\n"


@pytest.mark.parametrize("data, says", [
    (b"[" * 100000, "longer than"),
    (nested(100000), "longer than"),
    (b"[" * 60000 + b"\n", "not a JSON line"),           # deeper than json's recursion limit
    (nested(5000), "not a JSON line"),
    (nested(200), 'JSON object with "op"'),              # parses: "op" is not a string
    (b'{"op": "sandbox", "pid": ' + b"[" * 900 + b"]" * 900 + b"}\n", "whole number"),
    (b'{"op": "sandbox", "pid": ' + b"9" * 5000 + b"}\n", "not a JSON line"),  # int digits limit
    (b'{"op": "sandbox", "pid": 1e999}\n', "whole number"),
    (b'{"op": "sandbox", "pid": NaN}\n', "whole number"),
    (b'{"op": "stats"}{"op": "stats"}\n', "not a JSON line"),
    (b'{"op": "stats", "' + b"k" * 60000 + b'": 1}\n', "unknown field"),
    (b"\x00" * 1000 + b"\n", "not a JSON line"),
    (b'{"op": "set", "controller": "memory", "value": "' + b"9" * 300 + b'"}\n', "at most 256"),
])
def test_malformed_and_nested_json_get_one_line(server, data, says):
    """Deep nesting (a C parser's stack), huge numbers, garbage: each must cost one
    error line, never a crash of the server or a reply of many lines."""
    reply = send(server, data)
    assert says in reply["error"] and one_line(reply["error"]) and len(reply["error"]) < 400
    assert_serves(server)


def test_only_the_first_line_of_a_connection_is_served(server):
    """Many requests on one connection: one request per connection, the rest unread."""
    server.fake.writes.clear()
    with connect(server) as s:
        s.sendall(STATS + b'{"op": "set", "controller": "pids", "value": "50"}\n' * 1000)
        s.shutdown(socket.SHUT_WR)
        lines = b""
        while chunk := s.recv(65536):
            lines += chunk
    assert lines.count(b"\n") == 1 and json.loads(lines)["ok"]
    assert server.fake.writes == []


def test_1000_idle_connections_do_not_block_the_magics(server):
    """1,000 connections that send nothing: served one at a time with a 5 s timeout each
    they would lock the magics out for 5,000 s. A real request must be answered within
    a second while they are open, and the server must keep only a bounded number."""
    with open_files(4096):
        fds = len(os.listdir("/proc/self/fd"))
        idle = [connect(server) for _ in range(1000)]
        try:
            seconds, reply = timed_stats(server)
            print(f"stats under 1,000 idle connections: {seconds * 1000:.1f} ms")
            assert reply["ok"] and seconds < 1
            # this process holds both ends: the server's share is the rest
            assert len(os.listdir("/proc/self/fd")) - fds - 1000 <= control_server.MAX_CONNECTIONS + 2
        finally:
            for s in idle:
                s.close()
    assert_serves(server)


def test_idle_and_slow_clients_are_dropped_at_their_deadline(server, monkeypatch):
    """A client that says nothing, or trickles a line, holds a connection for
    protocol.TIMEOUT at most; then it gets one error line and the door."""
    monkeypatch.setattr(protocol, "TIMEOUT", 0.3)
    with connect(server) as quiet, connect(server) as slow:
        slow.sendall(b'{"op": ')
        t = time.monotonic()
        for s in (quiet, slow):
            reply = json.loads(protocol.read_line(s, protocol.MAX_REPLY))
            assert reply["error"] == "bad request: no request line within 0.3 s"
            assert s.recv(10) == b""  # closed
        assert time.monotonic() - t < 2
    assert_serves(server)


def big_ps(n, arg_bytes):
    return lambda: protocol.PsReply(tuple(
        protocol.Proc(i, i, 1, "root", [0], 0, "S", 0.0, ["x" * arg_bytes], "/") for i in range(n)))


def test_replies_never_read_are_bounded(server):
    """100 clients ask for a 1 MB ps and never read it: the server must not keep
    100 MB of replies (nor block on one of them), and must answer the magics at once."""
    server.op_ps = big_ps(200, 5000)
    readers = []
    try:
        with open_files(4096), peak_rss() as growth:
            for _ in range(100):
                s = connect(server)
                s.sendall(b'{"op": "ps"}\n')
                readers.append(s)
            assert_serves(server)
            print(f"100 unread 1 MB replies: RSS peak +{growth() / MiB:.1f} MiB")
            assert growth() < 50 * MiB
    finally:
        del server.op_ps
        for s in readers:
            s.close()
    assert_serves(server)


def test_a_reply_past_max_reply_is_one_error_line(server):
    server.op_ps = big_ps(20, MiB)  # ~20 MB of JSON
    try:
        reply = ask(server, op="ps")
    finally:
        del server.op_ps
    assert "longer than" in reply["error"] and str(protocol.MAX_REPLY) in reply["error"]


@pytest.mark.parametrize("device", [
    "/root/secret", "/etc/shadow", "/etc/no-such-file", "/root", "/", "../../x", "x",
    "/dev/../etc/shadow", "/dev/../../dev/null", "/dev/./null", "/dev//null", "/dev/",
    "/dev/null", "/dev/no-such-device", "/dev/fd", "/dev/stdin", "/dev/pts/0", "/proc/self/root/dev/null",
    "/dev/null\n", " /dev/null", "1:3:1", "8:", ":0", "-1:0", "+8:0", "8:0 ", "\u0668:\u0660",
    "99999:99999", "4294967295:0", "1:3", "/dev/" + "a" * 100, "\x00",
])
def test_io_devices_outside_get_one_refusal(server, device):
    """A device string is the one path the container hands the host: it must not let the
    container ask whether a host path exists, is a directory or a device ("../", links,
    /proc/self/root). Only MAJ:MIN and /dev/NAME are looked at, and every refusal is
    the same line whatever the host has there."""
    server.fake.writes.clear()
    reply = ask(server, op="set", controller="io", direction="write", value="10M", device=device)
    assert reply["error"] == (f"io device {device[:40]!r} is not a block device: use MAJ:MIN "
                              "or /dev/NAME of a disk (see lsblk)")
    assert server.fake.writes == []


def test_io_on_a_disk_named_either_way(server):
    disks = [e for e in os.scandir("/dev") if stat.S_ISBLK(e.stat(follow_symlinks=False).st_mode)
             and os.path.exists(f"/sys/block/{e.name}")]  # whole disks
    if not disks:
        pytest.skip("no whole disk in /dev here")
    st = os.stat(disks[0].path)
    number = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
    for device in (disks[0].path, number):
        reply = ask(server, op="set", controller="io", direction="write", value="10M", device=device)
        assert reply["limit"] == 10 * MiB and reply["device"] == number and reply["device_of"] == device


# Host PIDs no process can have (above PID_MAX_LIMIT, 2**22): destroy() SIGKILLs what the
# cgroup.procs files list, and these are in the fake's.
HOST = 1 << 30


@pytest.fixture
def forks(server, monkeypatch):
    """The stand-in container, given a kernel (PID 2 inside) and 20 forks of it (PIDs 3...
    inside), as the launcher's /proc would show them; yields their host PIDs."""
    init, kernel = HOST + 1, HOST + 2
    forks = [HOST + 1000 + i for i in range(3, 23)]
    inside = {init: 1, kernel: 2, **{h: h - HOST - 1000 for h in forks}}
    parent = {kernel: init, **{h: kernel for h in forks}}
    server.container.init_pid = init
    monkeypatch.setattr(control.procfs, "children", lambda pid: [kernel] if pid == init else [])
    monkeypatch.setattr(control.procfs, "nspid", inside.get)
    monkeypatch.setattr(control.procfs, "ppid", parent.get)
    with open(server.fake.file("memory", "cgroup.procs"), "w") as f:
        f.write("\n".join(str(p) for p in [init, kernel] + forks) + "\n")
    yield forks
    for top, _, files in os.walk(server.fake.root):  # empty again, so removing kills nothing
        if "cgroup.procs" in files:
            server.fake.put(os.path.join(top, "cgroup.procs"), "")


@pytest.mark.parametrize("pid, says", [
    (0, "invalid pid 0"), (1, "invalid pid 1"), (2, "invalid pid 2"), (-1, "invalid pid -1"),
    (os.getpid(), "no process with PID"), (2 ** 62, "no process with PID"),
    (HOST + 1003, "no process with PID"),  # a fork's host PID: PIDs are the container's own
    (True, "whole number"), ("3", "whole number"),
])
def test_sandbox_takes_only_a_fork_of_the_kernel(server, forks, pid, says):
    """%%sandbox moves a process into a child cgroup: naming a host process, init or the
    kernel must move nothing (a host process would be put under the container's limits
    and killed with its sandbox)."""
    server.fake.writes.clear()
    reply = ask(server, op="sandbox", pid=pid, memory="100M")
    assert says in reply["error"]
    assert server.fake.writes == [] and not any(
        e.is_dir() for e in os.scandir(os.path.dirname(server.fake.file("memory", "x"))))


def test_sandboxes_are_bounded(server, forks):
    """Each sandbox is a directory on the host: a loop of them must stop at MAX_SANDBOXES,
    and none may be looser than the container."""
    assert "above the container's own limit" in ask(server, op="sandbox", pid=3, memory="600M")["error"]
    replies = [ask(server, op="sandbox", pid=3 + i % len(forks), memory="100M")
               for i in range(control.MAX_SANDBOXES + 5)]
    assert all(r.get("ok") for r in replies[:control.MAX_SANDBOXES])
    assert all("end one first" in r["error"] for r in replies[control.MAX_SANDBOXES:])
    first = replies[0]["name"]
    for d in server.container.cgroup.child(first).paths().values():  # its fork exited
        server.fake.put(os.path.join(d, "cgroup.procs"), "")
    assert ask(server, op="sandbox_end", name=first)["ok"]
    assert ask(server, op="sandbox", pid=3, memory="100M")["ok"]


CEILING_TRICKS = [
    "1e12", "  9999999G", "9" * 200, "9" * 250 + "P", "1" + "0" * 300, "-1", "-0", "0x7fffffff",
    "513M", "512.1M", "0.6G", "1T", "5e8", "1_000_000_000", "1,000M", "inf", "Infinity", "nan",
    "\uff16\uff10\uff10M", "\u0666\u0660\u0660M", "600\u00a0M", "max 600M", "600M max", "maxx",
    "600 M", "600MB", "600mib", "\t600M\n", "1G", "536870913", "600m",
]


def memory_writes_in_range(fake):
    """Every value written to the container's memory limits is within the 512 MiB ceiling."""
    for path, text in fake.writes:
        if path.endswith(("limit_in_bytes",)):
            assert 0 <= int(text) <= 512 * MiB, (path, text)
        if path.endswith("pids.max"):
            assert text != "max" and int(text) <= 100, (path, text)
        if path.endswith("cpu.cfs_quota_us"):
            assert 0 < int(text) <= 100000, (path, text)


@pytest.mark.parametrize("controller, tricks", [
    ("memory", CEILING_TRICKS),
    ("pids", ["101", "1e3", "100.5", "1_000", "\u0661\u0660\u0661", "+101", "-1", "max 101",
              "9" * 256, "inf", "0x65"]),
    ("cpu", ["2", "1.01", "1e1", "inf", "nan", "-1", "\u0662", "1_0", "max", "0"]),
])
def test_the_ceiling_holds_in_every_encoding(server, controller, tricks):
    """A limit above the ceiling, spelled every way a parser might misread it (exponents,
    unicode digits, separators, signs, overflow, "max" then a value): never written."""
    server.fake.writes.clear()
    for text in tricks:
        for first in (None, "max"):  # "max" (back to the ceiling) first, then the trick
            if first:
                assert ask(server, op="set", controller=controller, value=first)["ok"]
            reply = ask(server, op="set", controller=controller, value=text)
            if reply.get("ok"):
                assert reply["limit"] <= getattr(server.ceiling, controller), (text, reply)
            memory_writes_in_range(server.fake)
    stats = server.container.cgroup.stats()
    assert stats.memory.limit <= 512 * MiB and stats.pids.limit <= 100 and stats.cpu.cpus <= 1
    assert_serves(server)
