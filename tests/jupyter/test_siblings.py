"""Demo containers a notebook starts (container_kernel.demo, %container_run): real siblings of
the kernel's container, started by its launcher, checked from the host's side too."""
import glob
import json
import os
import signal
import time

from tests.helpers import SLOW, init_of
from tests.jupyter.test_kernel import kernel, run

KERNEL = "ck-test-ceil"  # 512M, 1 CPU, 100 pids


def value(kc, code):
    """Run code whose last line prints one JSON value; that value."""
    reply, out = run(kc, code, timeout=90 * SLOW)
    assert reply["status"] == "ok", (reply.get("ename"), reply.get("evalue"), out)
    return json.loads(out["stdout"].strip().splitlines()[-1])


def error_of(kc, code):
    reply, out = run(kc, code, timeout=60 * SLOW)
    assert reply["status"] == "error", out
    return reply["evalue"]


def test_a_sibling_has_namespaces_and_a_hostname_of_its_own_and_nests_in_the_kernels_cgroup(
        kernel_prefix):
    with kernel(KERNEL) as (km, kc):
        r = value(kc, """
import json, socket
from container_kernel import demo
r = demo.run(["sh", "-c", "hostname; echo $$; sleep 0.5"], hostname="box")
print(json.dumps(dict(r._asdict(), kernel_hostname=socket.gethostname(),
                      shared=r.shared_with_kernel())))""")
        assert r["stdout"].split() == ["box", "2"] and r["exit_code"] == 0
        assert r["kernel_hostname"] != "box"
        assert r["shared"] == ["user"]  # every other namespace is its own
        # The host's view: its cgroup is a child of the kernel's, in every hierarchy.
        kid = km.provisioner.container_id
        assert r["cgroup"] and all(f"/container-kernel/{kid}/{r['name']}" in p for p in r["cgroup"].values())
        assert r["processes"] and {p[3] for p in r["processes"]} >= {"sh"}
        assert all(p[2] == 0 for p in r["processes"])  # root outside: no --userns auto
        # Gone when it ended: its run dir and cgroups.
        assert not glob.glob(f"/run/container-kernel/{r['name']}") and \
            not any(os.path.exists(p) for p in r["cgroup"].values())


def test_the_host_sees_the_siblings_namespaces_while_it_runs(kernel_prefix):
    with kernel(KERNEL) as (km, kc):
        r = value(kc, """
import json
from container_kernel import demo
s = demo.start(["sleep", "30"], hostname="box")
while not s.processes:
    s.poll()
print(json.dumps(s.last._asdict()))""")
        init = r["init_pid"]
        assert os.stat(f"/proc/{init}/ns/uts").st_ino == r["namespaces"]["uts"]
        assert os.stat(f"/proc/{init}/ns/uts").st_ino != os.stat("/proc/self/ns/uts").st_ino
        reply, out = run(kc, f"""
from container_kernel.inside import client
print(client.request("run_kill", name={r['name']!r}).state)""")
        assert out["stdout"].strip() == "exited"
        deadline = time.monotonic() + 5
        while os.path.exists(f"/proc/{init}") and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not os.path.exists(f"/proc/{init}")


def test_userns_auto_makes_root_inside_no_one_outside(kernel_prefix):
    with kernel(KERNEL) as (km, kc):
        r = value(kc, """
import json
from container_kernel import demo
r = demo.run(["sh", "-c", "id -u; sleep 0.5"], user_ns=True)
print(json.dumps(dict(r._asdict(), shared=r.shared_with_kernel())))""")
        assert r["stdout"].strip() == "0"  # root inside
        assert r["processes"] and all(p[2] >= 100000 for p in r["processes"]), r["processes"]
        assert r["uid_map"][0][0] == 0 and r["uid_map"][0][1] >= 100000
        assert r["shared"] == []  # a user namespace of its own too


def test_no_init_makes_the_command_pid_1(kernel_prefix):
    with kernel(KERNEL) as (km, kc):
        r = value(kc, """
import json
from container_kernel import demo
a = demo.run(["sh", "-c", "echo $$"], init=False)
b = demo.run(["sh", "-c", "echo $$"])
# PID 1 with no handler ignores SIGTERM: the time limit's SIGTERM does nothing, its SIGKILL ends it
c = demo.run(["sleep", "60"], init=False, timeout=1)
print(json.dumps([a.stdout, b.stdout, c.timed_out, c.exit_code]))""")
        assert r[0].strip() == "1" and r[1].strip() == "2"
        assert r[2] is True and r[3] == -signal.SIGKILL


def test_siblings_on_one_private_network_talk_and_cannot_reach_the_host(kernel_prefix):
    with kernel(KERNEL) as (km, kc):
        r = value(kc, r"""
import json, time
from container_kernel import demo
server = demo.start(["python3", "-c", '''
import socket
s = socket.socket(); s.bind(("127.0.0.1", 8000)); s.listen(); print("listening", flush=True)
c, _ = s.accept(); c.sendall(b"hello over lo"); c.close()
import time; time.sleep(60)  # alive while the others run: a freed namespace's inode is reused'''],
                      network="private:lab")
while "listening" not in server.stdout and server.poll():
    time.sleep(0.05)
client = demo.run(["python3", "-c", '''
import socket
print(socket.create_connection(("127.0.0.1", 8000), timeout=10).recv(100).decode())
try:
    socket.create_connection(("192.0.2.1", 80), timeout=3)
except OSError as e:
    print("host:", e.errno)'''], network="private:lab")
other = demo.run(["python3", "-c", '''
import socket
try:
    socket.create_connection(("127.0.0.1", 8000), timeout=3)
except OSError as e:
    print(e.errno)'''], network="private:elsewhere")
print(json.dumps([client.stdout, client.namespaces["net"], server.kill().namespaces["net"],
                  other.stdout, other.namespaces["net"], client.kernel_namespaces["net"]]))""")
        out, net, server_net, other_out, other_net, kernel_net = r
        assert out.splitlines() == ["hello over lo", "host: 101"]  # ENETUNREACH: only lo
        assert net == server_net and other_net != net and kernel_net not in (net, other_net)
        assert other_out.strip() == "111"  # ECONNREFUSED: another name, another network


def test_siblings_are_bounded(kernel_prefix):
    with kernel(KERNEL) as (km, kc):
        e = error_of(kc, "%container_run --memory 1G -- true")
        assert "above the kernel's own limit of 512 MiB" in e
        e = error_of(kc, "%container_run --volume /etc:/x -- true")
        assert "--volume is not for a sibling" in e
        e = error_of(kc, "%container_run --network host -- true")
        assert "a sibling's network is none or private:NAME" in e
        e = error_of(kc, "%container_run --memory 5x -- true")
        assert "--memory" in e and "5x" in e
        e = error_of(kc, "%container_run --frobnicate -- true")
        assert "unknown option '--frobnicate'" in e
        r = value(kc, """
import json
from container_kernel import demo
running = [demo.start(["sleep", "60"]) for _ in range(4)]
try:
    demo.start(["true"])
    fifth = None
except Exception as e:
    fifth = str(e)
for s in running:
    s.kill()
after = demo.run(["true"]).exit_code
oom = demo.run(["python3", "-c", "x = bytearray(300 << 20)"], memory="100M")
print(json.dumps([fifth, after, oom.exit_code]))""")
        assert "4 siblings are running already" in r[0] and "at most 4 at once" in r[0]
        assert r[1] == 0
        assert r[2] == 128 + signal.SIGKILL  # its own 100M: the OOM killer, the kernel unharmed
        reply, out = run(kc, "print('alive')")
        assert out["stdout"] == "alive\n"


def test_siblings_are_gone_when_the_kernel_ends_however_it_ends(kernel_prefix):
    for ending in ("shutdown", "sigkill"):
        with kernel(KERNEL) as (km, kc):
            r = value(kc, """
import json
from container_kernel import demo
s = demo.start(["sleep", "300"])
while not s.processes:
    s.poll()
print(json.dumps(s.last._asdict()))""")
            pids = [p[0] for p in r["processes"]] + [r["init_pid"]]
            launcher = km.provisioner.process.pid
            assert init_of(launcher)
            if ending == "sigkill":
                os.kill(launcher, signal.SIGKILL)
        # (the shutdown: kernel()'s own, at the end of the with)
        deadline = time.monotonic() + 3 * SLOW
        while time.monotonic() < deadline:
            left = [p for p in pids if os.path.exists(f"/proc/{p}")] + \
                [p for p in r["cgroup"].values() if os.path.exists(p)] + \
                glob.glob(f"/run/container-kernel/{r['name']}")
            if not left:
                break
            time.sleep(0.05)
        assert not left, (ending, left)


def test_a_sibling_keeps_the_kernels_capabilities_no_more(kernel_prefix):
    """The same hardening as the kernel: its capability set (docker's less MKNOD), not none,
    so a sibling can chroot as the kernel can, and not more."""
    with kernel(KERNEL) as (km, kc):
        r = value(kc, """
import json
from container_kernel import demo
mine = next(l for l in open("/proc/self/status") if l.startswith("CapEff")).split()[1]
theirs = demo.run(["grep", "CapEff", "/proc/self/status"]).stdout.split()[1]
print(json.dumps([mine, theirs]))""")
        assert r[0] == r[1] and int(r[0], 16) != 0
