"""Bad input: one line naming the value and what is allowed, exit 2 (docker's), nothing created."""
import os
import subprocess
import sys

import pytest

from container_kernel.runtime.spec import default_run_base
from tests.helpers import ck, our_cgroups


def snapshot():
    """Our cgroups and this user's run dirs (a user's are under XDG_RUNTIME_DIR or /tmp)."""
    base = default_run_base(os.geteuid() != 0)
    runs = sorted(os.listdir(base)) if os.path.isdir(base) else []
    return sorted(our_cgroups()), runs


CASES = [
    (["--memory", "banana", "--", "true"], 2, ["--memory", "'banana'", "100M"]),
    (["--memory", "1k", "--", "true"], 2, ["--memory", "'1k'", "minimum is 6 MiB"]),
    (["--memory-swap", "10M", "--memory", "20M", "--", "true"], 2, ["--memory-swap", "'10M'"]),
    (["--cpus", "-1", "--", "true"], 2, ["--cpus", "'-1'", "from 0.01 to"]),
    (["--cpus", "lots", "--", "true"], 2, ["--cpus", "'lots'"]),
    (["--pids", "0", "--", "true"], 2, ["--pids", "'0'", "at least 2"]),
    (["--pids", "1.5", "--", "true"], 2, ["--pids", "'1.5'"]),
    (["--io-write-bps", "/dev/nonexistent:1M", "--", "true"], 2, ["--io-write-bps", "'/dev/nonexistent'"]),
    (["--io-read-bps", "8:0", "--", "true"], 2, ["--io-read-bps"]),
    (["--network", "bridge", "--", "true"], 2, ["--network", "'bridge'", "none, host"]),
    (["--network", "private:", "--", "true"], 2, ["--network", "'private:'", "private:NAME"]),
    (["--network", "container:nosuch-ck", "--", "true"], 2, ["container:nosuch-ck", "no running container"]),
    (["--userns", "remap", "--", "true"], 2, ["--userns", "'remap'", "host or auto"]),
    (["--cgroup-parent", "nosuch-ck", "--", "true"], 2, ["--cgroup-parent", "nosuch-ck"]),
    (["--state-file", "relative.json", "--", "true"], 2, ["--state-file", "'relative.json'"]),
    (["--hostname", "bad_name!", "--", "true"], 2, ["--hostname", "'bad_name!'"]),
    (["--volume", "relative:/x", "--", "true"], 2, ["--volume", "'relative:/x'"]),
    (["--volume", "/nonexistent-ck:/x", "--", "true"], 2, ["--volume", "does not exist"]),
    (["--rootfs", "/nonexistent-rootfs", "--", "true"], 2, ["--rootfs", "'/nonexistent-rootfs'"]),
    (["--bogus", "--", "true"], 2, ["unknown option", "'--bogus'"]),
    (["--cap-add", "superpower", "--", "true"], 2, ["--cap-add", "'superpower'", "SYS_ADMIN"]),
    (["--memory"], 2, ["--memory needs a value"]),
    ([], 2, ["no command given"]),
    (["--memory", "64M"], 2, ["no command given"]),
    (["--", "no-such-command-ck"], 127, ["'no-such-command-ck' not found"]),
]


@pytest.mark.parametrize("args,code,words", CASES, ids=[" ".join(c[0]) or "nothing" for c in CASES])
def test_bad_input_gets_one_line_and_creates_nothing(args, code, words):
    before = snapshot()
    r = ck("run", *args)
    assert r.returncode == code, r.stderr
    assert r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("container-kernel: "), r.stderr
    assert "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert snapshot() == before


def test_unknown_command_and_help():
    r = ck("launch")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "'launch'" in r.stderr
    r = ck("run", "--help")
    assert r.returncode == 0 and "--memory" in r.stdout and "--io-write-bps" in r.stdout


def test_version_is_the_same_from_the_script_and_python_m():
    import tomllib
    with open(os.path.join(os.path.dirname(__file__), "..", "..", "pyproject.toml"), "rb") as f:
        version = tomllib.load(f)["project"]["version"]
    script = ck("--version")
    module = subprocess.run([sys.executable, "-m", "container_kernel", "--version"],
                            capture_output=True, text=True, check=False)
    assert script.returncode == module.returncode == 0 and script.stderr == module.stderr == ""
    assert script.stdout == module.stdout == f"container-kernel {version}\n"
    r = ck("--version", "now")
    assert r.returncode == 2 and r.stderr == "container-kernel: --version takes no arguments, got 'now'\n"


def test_install_help_gives_every_option_with_its_default():
    from container_kernel.kernel import kernelspec
    r = ck("install", "--help")
    assert r.returncode == 0 and r.stderr == ""
    rows, name = {}, None
    for line in r.stdout.splitlines():  # an option's row, and the lines it wraps onto
        if line.startswith("  --"):
            name = line.split()[0]
            rows[name] = line
        elif name and line.startswith(" " * 27):
            rows[name] += " " + line.strip()
    options = [o[0] for o in kernelspec.WHERE + kernelspec.OWN] + list(kernelspec.OPTIONS)
    assert sorted(rows) == sorted(options)
    for option in options:
        assert option == "--help" or "default" in rows[option], rows[option]
    assert f"(default: {kernelspec.DEFAULT_PIDS})" in rows["--pids"]


def test_print_plan_creates_nothing():
    before = snapshot()
    r = ck("run", "--print-plan", "--memory", "64M", "--", "true")
    assert r.returncode == 0, r.stderr
    assert "pivot-root" in r.stdout and "ro-bind    /usr" in r.stdout
    assert snapshot() == before


INSTALL_CASES = [
    (["--memory", "banana"], ["--memory", "'banana'"]),
    (["--cpus", "0"], ["--cpus", "'0'"]),
    (["--bogus"], ["install: unknown option '--bogus'"]),
    (["--user", "--prefix", "/tmp/x"], ["exclusive"]),
    (["--name", "bad name"], ["--name", "'bad name'"]),
    (["--name"], ["--name needs a value"]),
    (["--network", "bridge"], ["--network", "'bridge'"]),
    (["extra"], ["unexpected argument 'extra'"]),
    (["--default", "--default"], ["install: --default given twice"]),
    (["--default=yes"], ["--default takes no value", "'--default=yes'"]),
    (["--display-name", "a", "--display-name", "b"], ["install: --display-name given twice"]),
]


@pytest.mark.parametrize("args,words", INSTALL_CASES, ids=[" ".join(c[0]) for c in INSTALL_CASES])
def test_install_bad_input_gets_one_line_and_writes_nothing(tmp_path, args, words):
    prefix = tmp_path / "prefix"
    r = ck("install", "--prefix", str(prefix), *args) if "--prefix" not in args else ck("install", *args)
    assert r.returncode == 2 and r.stdout == "", r.stderr
    assert r.stderr.count("\n") == 1 and "Traceback" not in r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)
    assert not prefix.exists()


def test_kernel_without_a_connection_file_is_a_usage_error():
    r = ck("kernel", "--memory", "64M")
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "-f CONNECTION_FILE is required" in r.stderr
    r = ck("kernel", "-f", "/nonexistent/kernel.json")
    assert r.returncode == 2 and "cannot read the connection file" in r.stderr
