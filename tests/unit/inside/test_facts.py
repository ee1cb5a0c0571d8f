"""inside/facts.py: what the kernel sees for itself, the host's view merged in, and the
--json form of %container_info (plain data, the one vocabulary)."""

import json

import pytest

from container_kernel import protocol
from container_kernel.inside import facts
from container_kernel.runtime import cgroups, procfs
from container_kernel.runtime.cgroups.stats import IO, Cpu, Memory, Pids, Stats

MiB = 1 << 20
STATS = Stats(1, {"memory": "/sys/fs/cgroup/memory/container-kernel/c1"}, Memory(512 * MiB),
              Cpu(1.0), Pids(100), IO())


def info_reply(kernel_ns):
    info = protocol.Info(
        id="c1", host_hostname="laptop", launcher_pid=100, init_pid=101, kernel_pid=102,
        init_children=(protocol.InitChild(102, 2),),
        host_namespaces=dict(kernel_ns, user=kernel_ns["user"], pid=1),
        container_namespaces=kernel_ns, namespaces=["pid"],
        cgroup=protocol.CgroupView(1, STATS.paths, STATS),
        ceiling=protocol.Ceiling(512 * MiB, 1.0, 100), uid_map="0 0 4294967295\n", gid_map="",
        rootfs="host", network="none", rootless=False, workspace="/w",
        enforced={"memory": "cgroup v1"}, mapping=None)
    return protocol.encode_reply(info)


def test_users_in_words():
    assert facts.users([(0, 1001, 1)], [(0, 1001, 1)])[0] == "root inside is uid 1001 on the host"
    assert facts.users([(0, 0, 4294967295)], [])[0] == "root inside is uid 0 on the host"
    assert facts.users([(1000, 1000, 1)], [])[0].startswith("root inside is not mapped")
    assert facts.users([(0, 1001, 1)], [])[1] == "uid 0 inside = uid 1001 on the host"
    assert procfs.capability_names("0000000000000003") == ["chown", "dac_override"]


def test_containment_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("container", "container-kernel")
    monkeypatch.delenv(protocol.UNCONFINED_ENV, raising=False)
    assert facts.in_container() and facts.warning_banner() is None
    monkeypatch.setenv(protocol.UNCONFINED_ENV, "no user namespaces here")
    assert facts.warning_banner() == "WARNING: this kernel is NOT contained: no user namespaces here"
    monkeypatch.delenv(protocol.UNCONFINED_ENV)
    monkeypatch.setenv("container", "podman")
    assert not facts.in_container() and "not started by container-kernel" in facts.warning_banner()
    assert facts.outer_container() == "podman ($container is set, the systemd convention)"


def test_without_a_launcher(monkeypatch):
    monkeypatch.delenv(protocol.CONTROL_ENV, raising=False)
    monkeypatch.delenv("container", raising=False)
    info = facts.container_info()
    assert info.kernel == "other" and info.contained is False and info.host is None
    assert info.host_error is None
    assert all(row.host is None and row.isolated is None for row in info.namespace_table)
    assert info.cgroup is None or (info.cgroup.seen_from == "inside (read-only)" and info.cgroup.ceiling is None)
    assert info.mounts and all(isinstance(m, procfs.Mount) for m in info.mounts)
    data = json.loads(json.dumps(facts.to_json(info)))
    assert set(data["mounts"][0]) == {"target", "fstype", "source", "ro"}
    assert data["interfaces"] == [link["name"] for link in data["links"]]
    if data["cgroup"]:
        assert data["cgroup"]["version"] in (1, 2) and data["cgroup"]["ceiling"] is None
        assert data["cgroup"]["stats"]["paths"] == data["cgroup"]["paths"]


def test_a_launcher_that_does_not_answer(monkeypatch, tmp_path):
    monkeypatch.setenv(protocol.CONTROL_ENV, str(tmp_path / "gone.sock"))
    info = facts.container_info()
    assert info.host is None and info.host_error.startswith("cannot reach the launcher at ")


def test_the_hosts_view_merged_in(launcher):  # noqa: F811
    fake = launcher(info_reply(facts.inodes()))
    info = facts.container_info()
    assert fake.requests == [{"op": "info"}]
    assert isinstance(info.host, protocol.Info) and info.host.kernel_pid == 102
    rows = {row.type: row for row in info.namespace_table}
    assert rows["pid"].isolated is True and rows["user"].isolated is False and rows["user"].host == rows["user"].inside
    assert info.cgroup == facts.CgroupFacts(1, STATS.paths, STATS, protocol.Ceiling(512 * MiB, 1.0, 100), "the host")
    data = json.loads(json.dumps(facts.to_json(info)))
    # the one vocabulary: the ceiling by controller, a Stats' "paths", the version an int
    assert data["cgroup"]["ceiling"] == {"memory": 512 * MiB, "cpu": 1.0, "pids": 100}
    assert data["cgroup"]["version"] == 1 and data["cgroup"]["stats"]["paths"] == STATS.paths
    assert data["cgroup"]["stats"]["memory"]["limit"] == 512 * MiB
    assert data["host"]["init_children"] == [{"host_pid": 102, "pid": 2}]
    assert data["namespace_table"][0] == {"type": "pid", "inside": info.namespaces["pid"], "host": 1,
                                          "isolated": True, "what": facts.KINDS["pid"][1]}


@pytest.mark.parametrize("own", [
    lambda: None,
    lambda: (_ for _ in ()).throw(OSError(13, "Permission denied")),
    lambda: type("Unreadable", (), {"stats": lambda self: int("x")})(),
])
def test_own_stats_is_none_when_unreadable(monkeypatch, own):
    monkeypatch.setattr(cgroups, "open_own", own)
    assert facts.own_stats() is None


def test_own_stats_reads_the_own_cgroup(monkeypatch):
    monkeypatch.setattr(cgroups, "open_own", lambda: type("Own", (), {"stats": lambda self: STATS})())
    assert facts.own_stats() is STATS
    assert facts.cgroup_facts(None) == facts.CgroupFacts(1, STATS.paths, STATS, None, "inside (read-only)")
