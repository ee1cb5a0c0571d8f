"""`container-kernel install`: the kernelspec it writes carries sane ceilings unless told otherwise."""
import json
import os

from tests.helpers import ck


def installed(tmp_path, *args):
    prefix = tmp_path / "prefix"
    r = ck("install", "--prefix", str(prefix), "--name", "ck-inst", *args)
    assert r.returncode == 0, r.stderr
    spec = json.loads((prefix / "share/jupyter/kernels/ck-inst/kernel.json").read_text())
    argv = spec["argv"][spec["argv"].index("kernel") + 1:]
    options = dict(zip(argv[::2], argv[1::2]))
    return r.stdout, argv, options


def host_memory():
    with open("/proc/meminfo") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemTotal:"))


def test_without_limits_the_ceiling_is_half_the_ram_all_cpus_and_1024_pids(tmp_path):
    out, _, options = installed(tmp_path)
    assert options["--memory"] == f"{host_memory() // 2 >> 20}M"
    assert options["--cpus"] == str(os.cpu_count())
    assert options["--pids"] == "1024"
    assert f"memory {options['--memory']}, cpus {os.cpu_count()}, pids 1024" in out  # said at install


def test_max_lifts_one_limit_and_given_ones_stay(tmp_path):
    out, argv, options = installed(tmp_path, "--memory", "max", "--pids", "64")
    assert "--memory" not in argv and options["--pids"] == "64" and "--cpus" in options
    assert "memory unlimited" in out


def test_security_opts_are_written_in_order(tmp_path):
    _, argv, _ = installed(tmp_path, "--security-opt", "seccomp=unconfined",
                           "--security-opt", "no-new-privileges=false")
    i = argv.index("--security-opt")
    assert argv[i:i + 4] == ["--security-opt", "seccomp=unconfined", "--security-opt",
                             "no-new-privileges=false"]


def test_a_limit_given_twice_is_one_line(tmp_path):
    r = ck("install", "--prefix", str(tmp_path / "p"), "--memory", "1G", "--memory", "2G")
    assert r.returncode == 2 and r.stderr.strip().endswith("install: --memory given twice")
    assert not (tmp_path / "p").exists()
