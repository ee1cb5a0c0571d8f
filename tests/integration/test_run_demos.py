"""What the teaching demos need from `container-kernel run`, as docker has it: --no-init,
--userns auto, --network container:ID and private:NAME, --cgroup-parent, --state-file."""
import json
import os
import signal
import time

from tests.helpers import ck, kill_tree, requires_root, start, state_of, within

pytestmark = requires_root


def netns(state):
    return state["namespace_inodes"]["net"]


def test_no_init_makes_the_command_pid_1_and_pid_1_ignores_an_unhandled_sigterm():
    assert ck("run", "--no-init", "--", "sh", "-c", "echo $$").stdout == "1\n"
    assert ck("run", "--", "sh", "-c", "echo $$").stdout == "2\n"
    assert ck("run", "--no-init", "--", "sh", "-c", "exit 3").returncode == 3
    p = start("run", "--no-init", "--", "sleep", "30")
    try:
        state = state_of(p.pid)
        assert state["init"] is False
        p.send_signal(signal.SIGTERM)  # forwarded to PID 1, which has no handler: ignored
        time.sleep(1)
        assert p.poll() is None
    finally:
        kill_tree(p)
    with_init = start("run", "--", "sleep", "30")
    try:
        state_of(with_init.pid)
        with_init.send_signal(signal.SIGTERM)  # init forwards it to sleep, which dies of it
        assert with_init.wait(10) == 128 + signal.SIGTERM
    finally:
        kill_tree(with_init)


def test_userns_auto_maps_root_inside_to_an_unprivileged_range():
    r = ck("run", "--userns", "auto", "--", "sh", "-c", "id -u; cat /proc/self/uid_map")
    assert r.returncode == 0, r.stderr
    uid, line = r.stdout.splitlines()
    inside, outside, count = map(int, line.split())
    assert uid == "0" and inside == 0 and outside >= 100000 and count == 65536
    p = start("run", "--userns", "auto", "--", "sleep", "30")
    try:
        state = state_of(p.pid)
        with open(f"/proc/{state['init_pid']}/status") as f:
            uids = next(l for l in f if l.startswith("Uid:")).split()[1:]
        assert all(int(u) == outside for u in uids)  # the host sees no one it knows
        assert state["namespace_inodes"]["user"] != os.stat("/proc/self/ns/user").st_ino
    finally:
        kill_tree(p)


def test_network_container_and_private_join_a_running_namespace(tmp_path):
    first = start("run", "--network", "private:ck-test-net", "--", "sleep", "30")
    other = start("run", "--network", "private:ck-test-other", "--", "sleep", "30")
    try:
        a, b = state_of(first.pid), state_of(other.pid)
        assert netns(a) != netns(b) != os.stat("/proc/self/ns/net").st_ino
        state_file = str(tmp_path / "state.json")
        r = ck("run", "--network", "private:ck-test-net", "--state-file", state_file, "--",
               "cat", "/sys/class/net/lo/operstate")
        assert r.returncode == 0, r.stderr
        with open(state_file) as f:
            joined = json.load(f)
        assert netns(joined) == netns(a) and "net" not in joined["namespaces"]
        assert r.stdout.strip() in ("unknown", "up")  # the first member's lo, already up
        r = ck("run", "--network", f"container:{a['id']}", "--state-file", state_file, "--", "true")
        with open(state_file) as f:
            assert netns(json.load(f)) == netns(a)
    finally:
        kill_tree(first)
        kill_tree(other)


def test_cgroup_parent_nests_the_cgroup_and_the_parents_limit_holds():
    parent = start("run", "--memory", "64M", "--", "sleep", "30")
    try:
        p = state_of(parent.pid)
        r = ck("run", "--cgroup-parent", p["id"], "--", "python3", "-c",
               "x = bytearray(200 << 20)")  # no limit of its own: the parent's 64M holds
        assert r.returncode == 128 + signal.SIGKILL, r.stderr
        child = start("run", "--cgroup-parent", p["id"], "--", "sleep", "30")
        try:
            c = state_of(child.pid)
            assert all(path.endswith(f"/{p['id']}/{c['id']}") for path in c["cgroup"].values())
        finally:
            kill_tree(child)
        assert within(5, lambda: not any(os.path.exists(path) for path in c["cgroup"].values()))
    finally:
        kill_tree(parent)
