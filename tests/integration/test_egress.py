"""--network egress: out through slirp4netns, but never to the host itself. Only addresses of
this machine are used: a listener in a network namespace this test makes stands for "the
internet"; listeners on the host's loopback and on its own addresses must stay out of reach."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time

import pytest

from tests.helpers import CK, ck, requires_root, start, state_of
from tests.rootless.test_rootless import as_user, user  # noqa: F401  (the test user, a fixture)

pytestmark = [requires_root, pytest.mark.skipif(not shutil.which("slirp4netns"),
                                                reason="needs slirp4netns (apt-get install slirp4netns)")]

NETNS = "ck-test-egress"          # every name this test makes starts with ck-test-
VETH_HOST, VETH_NS = "ck-test-eg0", "ck-test-eg1"
HOST_ADDR, NS_ADDR = "10.213.7.1", "10.213.7.2"  # a /30 of our own, on the test's veth only


def ip(*args, check=True):
    return subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


def host_addresses():
    out = json.loads(ip("-j", "addr").stdout)
    return sorted({a["local"] for link in out for a in link.get("addr_info", ())
                   if a["family"] == "inet" and not a["local"].startswith("127.")})


def serve_forever(argv_prefix=(), host="0.0.0.0"):
    """A TCP server (in our netns, or through argv_prefix in another) that answers "hello"."""
    code = textwrap.dedent(f"""
        import socket, sys
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(({host!r}, 0)); s.listen(16); print(s.getsockname()[1], flush=True)
        while True:
            c, _ = s.accept(); c.sendall(b"hello"); c.close()""")
    p = subprocess.Popen([*argv_prefix, sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    return p, int(p.stdout.readline())


@pytest.fixture(scope="module")
def outside():
    """A network namespace standing for the outside world: a veth to it, a server in it."""
    if not shutil.which("ip"):
        pytest.skip("needs ip (apt-get install iproute2)")
    ip("netns", "del", NETNS, check=False)  # a previous run's, by our own name only
    ip("netns", "add", NETNS)
    server = None
    try:
        ip("link", "add", VETH_HOST, "type", "veth", "peer", "name", VETH_NS, "netns", NETNS)
        ip("addr", "add", f"{HOST_ADDR}/30", "dev", VETH_HOST)
        ip("link", "set", VETH_HOST, "up")
        for cmd in (("addr", "add", f"{NS_ADDR}/30", "dev", VETH_NS), ("link", "set", VETH_NS, "up"),
                    ("link", "set", "lo", "up")):
            ip("-n", NETNS, *cmd)
        server, port = serve_forever(("ip", "netns", "exec", NETNS))
        yield port
    finally:
        if server:
            server.kill()
            server.wait()
        ip("netns", "del", NETNS, check=False)  # takes the veth pair with it
        ip("link", "del", VETH_HOST, check=False)


def connect_all(targets, opts=()):
    """Try each (addr, port) from an egress container; {addr:port: "hello" or the errno name}."""
    code = textwrap.dedent("""
        import errno, json, socket, sys
        out = {}
        for addr, port in json.loads(sys.argv[1]):
            try:
                out[f"{addr}:{port}"] = socket.create_connection((addr, port), timeout=3).recv(5).decode()
            except OSError as e:
                out[f"{addr}:{port}"] = errno.errorcode.get(e.errno, str(e))
        print(json.dumps(out))""")
    r = ck("run", "--network", "egress", *opts, "--", "python3", "-c", code, json.dumps(targets))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_a_server_outside_is_reachable_and_the_hosts_own_are_not(outside):
    loop, loop_port = serve_forever(host="127.0.0.1")
    every, every_port = serve_forever(host="0.0.0.0")
    try:
        assert socket.create_connection(("127.0.0.1", every_port), timeout=3).recv(5) == b"hello"
        targets = [(NS_ADDR, outside), ("10.0.2.2", loop_port), ("10.0.2.2", every_port),
                   ("127.0.0.1", loop_port)] + [(a, every_port) for a in host_addresses()]
        seen = connect_all(targets)
    finally:
        for p in (loop, every):
            p.kill()
            p.wait()
    assert seen.pop(f"{NS_ADDR}:{outside}") == "hello", seen
    assert HOST_ADDR in {k.split(":")[0] for k in seen}  # the veth's host end is the host too
    assert all(v != "hello" for v in seen.values()), seen


def test_dns_names_slirps_forwarder_and_the_payload_cannot_lift_the_block(outside):
    r = ck("run", "--network", "egress", "--", "sh", "-c",
           "cat /etc/resolv.conf; ip route; ip route del unreachable " + host_addresses()[0]
           + "; echo del=$?")
    assert r.returncode == 0, r.stderr
    assert "nameserver 10.0.2.3" in r.stdout
    assert f"unreachable {host_addresses()[0]}" in r.stdout and "default via 10.0.2.2" in r.stdout
    assert "del=2" in r.stdout and "Operation not permitted" in r.stderr


def test_slirp_dies_with_the_container_and_with_a_sigkilled_launcher(outside):
    assert not _slirps()
    ck("run", "--network", "egress", "--", "true")
    assert not _slirps()
    p = start("run", "--network", "egress", "--", "sleep", "60")
    try:
        state = state_of(p.pid)
        deadline = time.monotonic() + 5
        while not _slirps() and time.monotonic() < deadline:
            time.sleep(0.05)
        (slirp,) = _slirps()
        assert f"{state['init_pid']}" in open(f"/proc/{slirp}/cmdline").read().split("\0")
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        deadline = time.monotonic() + 10
        while (_slirps() or os.path.exists(f"/run/container-kernel/{state['id']}")) \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _slirps() and not os.path.exists(f"/run/container-kernel/{state['id']}")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_a_missing_slirp4netns_is_named(tmp_path):
    r = ck("run", "--network", "egress", "--", "true",
           env={**os.environ, "PATH": os.path.dirname(sys.executable)})  # no /usr/bin
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "apt-get install slirp4netns" in r.stderr


def _slirps():
    """Our slirp4netns processes (ours: a child of a container-kernel launcher, or orphaned)."""
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == "slirp4netns" and "tap0" in open(f"/proc/{pid}/cmdline").read():
                    out.append(int(pid))
        except OSError:
            continue
    return out


def test_rootless_egress_reaches_out_and_not_the_host(outside, user):
    every, every_port = serve_forever(host="0.0.0.0")
    code = ("import socket, sys\n"
            "for a, p in [(sys.argv[1], int(sys.argv[2])), (sys.argv[3], int(sys.argv[4]))]:\n"
            "    try: print(socket.create_connection((a, p), timeout=3).recv(5).decode())\n"
            "    except OSError as e: print(e.errno)")
    try:
        r = as_user(user, CK, "run", "--network", "egress", "--", "python3", "-c", code,
                    NS_ADDR, str(outside), host_addresses()[0], str(every_port))
    finally:
        every.kill()
        every.wait()
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["hello", "113"]  # EHOSTUNREACH: the host's own address
