"""`container-kernel install`: the kernelspec it writes carries sane ceilings unless told otherwise."""
import json
import os
import subprocess
import sys

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


# What jupyter_server itself makes of a config dir: its own loading, in a fresh process.
SERVER_DEFAULT = """
from jupyter_server.serverapp import ServerApp
app = ServerApp()
app.initialize(argv=["--allow-root", "--port=0"], find_extensions=False, new_httpserver=False)
km = app.kernel_manager
print(type(km).__name__, km.default_kernel_name, km.kernel_spec_manager.get_kernel_spec(km.default_kernel_name).display_name)
"""


def server_default(tmp_path, prefix):
    env = dict(os.environ, JUPYTER_CONFIG_PATH=str(prefix / "etc/jupyter"),
               JUPYTER_PATH=str(prefix / "share/jupyter"), JUPYTER_CONFIG_DIR=str(tmp_path / "user"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    r = subprocess.run([sys.executable, "-c", SERVER_DEFAULT], capture_output=True, text=True,
                       env=env, timeout=60, cwd=tmp_path, check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    return r.stdout.strip()


def test_default_is_what_jupyter_server_reads(tmp_path):
    prefix = tmp_path / "prefix"
    r = ck("install", "--prefix", str(prefix), "--name", "ck-default", "--default", "--memory", "512M")
    assert r.returncode == 0, r.stderr
    conf = prefix / "etc/jupyter/jupyter_server_config.json"
    assert f"in {conf}" in r.stdout  # it says which file it wrote
    assert json.loads(conf.read_text()) == {"MappingKernelManager": {"default_kernel_name": "ck-default"}}
    assert server_default(tmp_path, prefix) == \
        "AsyncMappingKernelManager ck-default Python 3 (container, 512 MiB)"


def test_default_keeps_the_config_it_finds_and_refuses_a_broken_one(tmp_path):
    prefix = tmp_path / "prefix"
    conf = prefix / "etc/jupyter/jupyter_server_config.json"
    conf.parent.mkdir(parents=True)
    conf.write_text('{"ServerApp": {"root_dir": "/srv"}, "MappingKernelManager": {"cull_idle_timeout": 600}}')
    assert ck("install", "--prefix", str(prefix), "--default").returncode == 0
    assert json.loads(conf.read_text()) == {
        "ServerApp": {"root_dir": "/srv"},
        "MappingKernelManager": {"cull_idle_timeout": 600, "default_kernel_name": "container-python"}}
    conf.write_text("{not json")
    r = ck("install", "--prefix", str(prefix), "--default")
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert f"cannot read {conf}" in r.stderr and conf.read_text() == "{not json"


def test_display_name_shows_the_limits_that_differ_from_the_defaults(tmp_path):
    def shown(*args):
        prefix = tmp_path / str(len(os.listdir(tmp_path)))
        assert ck("install", "--prefix", str(prefix), "--name", "ck", *args).returncode == 0
        return json.loads((prefix / "share/jupyter/kernels/ck/kernel.json").read_text())["display_name"]
    assert shown() == "Python 3 (container)"
    assert shown("--memory", "512M") == "Python 3 (container, 512 MiB)"
    assert shown("--memory", "0.5g", "--cpus", "0.5", "--pids", "1024") == "Python 3 (container, 512 MiB, 0.5 CPUs)"
    assert shown("--pids", "max") == "Python 3 (container, unlimited pids)"
    assert shown("--memory", "512M", "--display-name", "Mine") == "Mine"
