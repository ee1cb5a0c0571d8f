"""The magics' argument parsers (inside/args.py), without a kernel: every argument string
either parses to a valid value or raises a one-line UsageError.
"""

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from IPython.core.error import UsageError

from container_kernel import protocol
from container_kernel.inside import args
from container_kernel.runtime.spec import MIN_MEMORY, parse_size

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
        req = args.parse_cgroup_set(line)
    except UsageError as e:
        assert one_line(e) and str(e).startswith("%cgroup_set: ")
        return
    c = req["controller"]
    assert c in protocol.CONTROLLERS
    assert set(req) <= set(protocol.REQUESTS["set"])  # what the server's check lets through
    if c == "io":
        assert req["direction"] in protocol.IO_DIRECTIONS
        rate = protocol.parse_rate(req["direction"], req["value"])
        assert rate is None or rate > 0
    else:
        value = protocol.parse_limit(c, req["value"])
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
    assert args.parse_cgroup_set(line) == req


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
        args.parse_cgroup_set(line)
    assert one_line(e.value)


# ---- %%sandbox and %container_monitor -----------------------------------------------------

@settings(max_examples=500, deadline=None)
@given(ANY)
def test_sandbox_args_parse_or_say_one_line(line):
    try:
        limits = args.parse_sandbox(line)
    except UsageError as e:
        assert one_line(e) and str(e).startswith("%%sandbox: ")
        return
    assert set(limits) <= set(protocol.SETTABLE)  # the controllers' names, as the request's fields
    assert limits.get("memory", MIN_MEMORY) >= MIN_MEMORY
    assert 0.01 <= limits.get("cpu", 1) <= NCPU
    assert limits.get("pids", 2) >= 2


@given(st.builds(lambda m, c, p: f"memory={m}M cpu={c} pids={p}",
                 st.integers(6, 10**6), st.sampled_from(["0.01", "0.5", "1"]), st.integers(2, 10**6)))
def test_sandbox_valid_args(line):
    limits = args.parse_sandbox(line)
    assert limits["memory"] == parse_size(line.split()[0].split("=")[1])
    assert set(limits) == {"memory", "cpu", "pids"}


def test_sandbox_refusals():
    for line, says in (("memory=50", "too small"), ("memory=max", "not max"), ("mem 50M", "invalid argument"),
                       ("memory=50M memory=60M", "given twice"), ("swap=1G", "invalid argument"),
                       ("cpu=0.5 cpus=0.5", "cpus given twice")):
        with pytest.raises(UsageError, match=says):
            args.parse_sandbox(line)
    assert args.parse_sandbox("") == {}
    assert args.parse_sandbox("cpus=0.5 PIDS=16") == {"cpu": 0.5, "pids": 16}  # docker's --cpus word


@given(ANY)
def test_monitor_interval(line):
    try:
        interval = args.parse_interval(line)
    except UsageError as e:
        assert one_line(e)
        return
    assert 0.2 <= interval <= 60


def test_flags():
    assert args.flags(" --json ", "%cgroup") == {"--json"}
    with pytest.raises(UsageError, match="unknown argument '--yaml'"):
        args.flags("--yaml", "%cgroup")
