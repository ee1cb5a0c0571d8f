"""--network egress without a container: the option, the plan's resolv.conf, the missing
tool's error, and the reaper's kill list (the integration tests run slirp4netns itself)."""
import os
import subprocess

import pytest

from container_kernel.runtime import egress, mounts, reaper
from container_kernel.runtime import spec as S
from container_kernel.runtime.errors import ContainerError


def build(*opts):
    options = {"network": ("--network", opts[0])} if opts else {}
    return S.build(options, ["true"], cid="abc")


def test_egress_is_a_network_mode_with_a_namespace_of_its_own():
    spec = build("egress")
    assert spec.network == "egress" and "net" in spec.namespaces
    with pytest.raises(ContainerError, match="egress"):
        S.parse_network("egres")


def test_the_plan_names_slirps_dns_and_only_with_egress(tmp_path):
    def resolv(spec):
        return [s for s in mounts.plan(spec, str(tmp_path)) if s.target == "/etc/resolv.conf"]
    steps = resolv(build("egress"))
    assert steps == [mounts.Step("file", "/etc/resolv.conf", "nameserver 10.0.2.3\n")]
    assert all(s.kind in ("copy", "symlink") for s in resolv(build()))


def test_a_missing_slirp4netns_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(ContainerError) as e:
        egress.check(build("egress"))
    assert "apt-get install slirp4netns" in str(e.value) and "\n" not in str(e.value)
    assert egress.check(build()) is None


def test_the_reaper_kills_a_helper_by_pid_and_start_time_only():
    p = subprocess.Popen(["sleep", "30"])
    try:
        r, w = os.pipe()
        reaper.also_kill(w, p.pid)
        os.close(w)
        said = os.read(r, 100)
        reaper._kill_helpers(said.replace(b" ", b" 1"))  # another start time: a reused PID
        assert p.poll() is None
        reaper._kill_helpers(said)
        assert p.wait(5) == -9
    finally:
        p.kill()
