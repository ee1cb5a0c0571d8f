"""The spec's parsers: any string parses to a valid value or raises the one-line error."""
import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from container_kernel.runtime import mounts
from container_kernel.runtime import spec as S
from container_kernel.runtime.errors import ContainerError


@pytest.mark.parametrize("text,value", [
    ("100M", 100 * 2**20), ("100m", 100 * 2**20), ("100MB", 100 * 2**20), ("100MiB", 100 * 2**20),
    ("1.5g", int(1.5 * 2**30)), ("1G", 2**30), ("7340032", 7340032), ("512k", 512 * 1024),
    ("100 M", 100 * 2**20),
])
def test_docker_sizes(text, value):
    assert S.parse_size(text) == value


@pytest.mark.parametrize("text", ["banana", "", "M", "-5M", "1.2.3M", "10X", "1e3M", "１００M"])
def test_bad_sizes(text):
    with pytest.raises(ContainerError) as e:
        S.parse_memory(text)
    assert e.value.exit_code == 2 and "\n" not in str(e.value)


def test_memory_swap_defaults_and_rules():
    assert S.parse_memory_swap("-1", 64 * 2**20) == -1
    assert S.parse_memory_swap("128M", 64 * 2**20) == 128 * 2**20
    with pytest.raises(ContainerError):
        S.parse_memory_swap("32M", 64 * 2**20)


def test_cpus_and_pids_ranges():
    assert S.parse_cpus("0.5") == 0.5
    assert S.parse_cpus(str(os.cpu_count())) == os.cpu_count()
    for bad in ("0", "-1", "0.001", str(os.cpu_count() + 1), "nan", "inf", "x"):
        with pytest.raises(ContainerError):
            S.parse_cpus(bad)
    assert S.parse_pids("64") == 64
    for bad in ("0", "1", "-1", "2.5", "many"):
        with pytest.raises(ContainerError):
            S.parse_pids(bad)


def test_human_bytes():
    assert S.human_bytes(100 * 2**20) == "100 MiB"
    assert S.human_bytes(1536) == "1.5 KiB"
    assert S.human_bytes(None) == "unlimited"


PARSERS = [S.parse_memory, S.parse_cpus, S.parse_pids, S.parse_network, S.parse_hostname,
           lambda t: S.parse_rate(t, "--rate"), lambda t: S.parse_env(t)]


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(range(len(PARSERS))), st.text(max_size=30))
def test_any_string_parses_or_raises_one_line(i, text):
    try:
        PARSERS[i](text)
    except ContainerError as e:
        assert e.exit_code == 2
        assert "\n" not in str(e) and str(e)


def test_plan_is_printable_and_ends_in_pivot_root(tmp_path):
    spec = S.Spec(id="abc", hostname="abc", process=S.Process(("true",), ()),
                  resources=S.Resources())
    steps = mounts.plan(spec, str(tmp_path / "root"))
    kinds = [s.kind for s in steps]
    assert kinds[0] == "private" and kinds[-1] == "pivot-root" and kinds[-2] == "remount-ro"
    assert kinds.index("proc") < kinds.index("pivot-root")
    text = mounts.describe(steps)
    assert "ro-bind    /usr <- /usr" in text
    etc = {s.target: s.source for s in steps if s.kind in ("file", "copy")}
    assert "/etc/shadow" not in etc and "root:x:0:0" in etc["/etc/passwd"]
    assert not any(s.target.startswith("/home") or s.target == "/etc/ssl/private" for s in steps)
