"""The escape suite's host side: what only the host has (markers, a listener, a SysV
segment, a process with a token), and the two kernels every attempt runs in, started once
per session from kernelspecs installed into a temp prefix (`container-kernel install` and
`python -m ipykernel install`, the real ones).

Fixture names start with sec_: tests/security holds other engineers' modules too."""
import ctypes
import fcntl
import json
import os
import platform
import shutil
import socket
import struct
import subprocess
import sys

import pytest

import container_kernel
from tests.helpers import CGROUP, IS_ROOT, ck

from .targets import ENV_VAR, Target, start_kernel

PIDS_CEILING = 1024  # kernelspec.DEFAULT_PIDS: what `container-kernel install` writes by default


def _gate():
    if not IS_ROOT:
        pytest.skip("the escape suite needs root: it starts container kernels as root and "
                    "creates the rootless test user")
    if platform.machine() != "x86_64":
        pytest.skip(f"the escape suite's raw syscalls use x86_64 numbers; this is {platform.machine()}")


def _host_ip():
    """The host's first IPv4 address that is not loopback, or None."""
    for _, name in socket.if_nameindex():
        if name == "lo":
            continue
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            packed = fcntl.ioctl(s.fileno(), 0x8915, struct.pack("256s", name.encode()[:15]))  # SIOCGIFADDR
            return socket.inet_ntoa(packed[20:24])
        except OSError:
            continue
        finally:
            s.close()
    return None


def _memory_ceiling():
    """What `container-kernel install` writes by default: half the host's RAM, in whole MiB."""
    with open("/proc/meminfo") as f:
        total = next(int(line.split()[1]) * 1024 for line in f if line.startswith("MemTotal:"))
    return (total // 2 >> 20) << 20


def _cgroup_mount_option():
    """A v1 hierarchy the host already has (mounting it again makes no new hierarchy)."""
    if CGROUP != 1:
        return "cgroup2"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[sep + 1] == "cgroup" and "memory" in fields[sep + 3].split(","):
                return "memory"
    return "pids"


class _Shm:
    """A SysV shared memory segment of the host's IPC namespace."""
    def __init__(self, key):
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.key = key
        self.id = self.libc.shmget(key, 4096, 0o1000 | 0o600)  # IPC_CREAT
        if self.id < 0:
            raise OSError(ctypes.get_errno(), "shmget")

    def remove(self):
        self.libc.shmctl(self.id, 0, None)  # IPC_RMID


@pytest.fixture(scope="session")
def sec_host(tmp_path_factory):
    """HOST for the attempts (see attempts.py), with everything the markers need, removed after."""
    _gate()
    base = tmp_path_factory.mktemp("security")
    os.chmod(base, 0o755)
    token = f"ck-sec-{os.getpid()}-{os.urandom(4).hex()}"
    notebooks = base / "notebooks"
    notebooks.mkdir()
    markers = [f"/var/tmp/{token}", f"/root/{token}", f"/tmp/{token}", f"/dev/shm/{token}",
               str(base / token)]
    for m in markers:
        with open(m, "w") as f:
            f.write("only the host has this file\n")
        os.chmod(m, 0o644)
    write_dir = f"/var/tmp/{token}-w"
    os.mkdir(write_dir)
    os.chmod(write_dir, 0o777)
    log = open(base / "kernels.log", "w")  # noqa: SIM115 (the kernels write it all session)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(3600)", token])
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))
    listener.listen(64)
    abstract = socket.socket(socket.AF_UNIX)
    abstract.bind("\0" + token)
    abstract.listen(8)
    shm = _Shm(int.from_bytes(os.urandom(3), "big") | 0x5ec00000)
    host_ip = _host_ip()
    st_root = os.stat("/")
    host = {
        "token": token, "markers": markers, "write_dir": write_dir,
        "root": [st_root.st_dev, st_root.st_ino],
        "ns": {k: os.stat(f"/proc/self/ns/{k}").st_ino
               for k in ("pid", "mnt", "net", "uts", "ipc", "cgroup", "user")},
        "hostname": socket.gethostname(), "sleeper_pid": sleeper.pid, "env_var": ENV_VAR,
        "tcp": [["127.0.0.1", listener.getsockname()[1]]]
               + ([[host_ip, listener.getsockname()[1]]] if host_ip else []),
        "host_ip": host_ip, "abstract_socket": token, "shm_key": shm.key,
        "block_devices": sorted(os.listdir("/sys/block")), "cgroup": CGROUP,
        "cgroup_mount_option": _cgroup_mount_option(),
        "memory_ceiling": _memory_ceiling(), "pids_ceiling": PIDS_CEILING,
        "venv": sys.prefix, "package_dir": os.path.dirname(os.path.abspath(container_kernel.__file__)),
        "dev_nodes": {n: [os.stat("/dev/" + n).st_dev, os.stat("/dev/" + n).st_ino]
                      for n in ("null", "zero", "full", "random", "urandom", "tty")
                      if os.path.exists("/dev/" + n)},
        "witnesses": {p: [os.stat(p).st_dev, os.stat(p).st_ino] for p in markers + [log.name]},
    }
    # The Jupyter server's environment is this process's: the marker must not reach a kernel.
    old = os.environ.get(ENV_VAR)
    os.environ[ENV_VAR] = token
    try:
        yield {"facts": host, "base": base, "notebooks": notebooks, "log": log}
    finally:
        if old is None:
            os.environ.pop(ENV_VAR, None)
        else:
            os.environ[ENV_VAR] = old
        sleeper.kill()
        sleeper.wait()
        listener.close()
        abstract.close()
        shm.remove()
        log.close()
        for m in markers:
            os.unlink(m)
        shutil.rmtree(write_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def sec_kernelspecs(sec_host):
    prefix = sec_host["base"] / "prefix"
    name = f"ck-sec-{os.getpid()}"
    r = ck("install", "--prefix", str(prefix), "--name", name, "--display-name", "CK security")
    assert r.returncode == 0, r.stderr
    # TMPDIR: ipykernel install leaves its empty tmpXXXX_kernels dir behind; here, not in /tmp.
    r = subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(prefix),
                        "--name", "plain-sec"], check=False, capture_output=True, text=True,
                       env=dict(os.environ, TMPDIR=str(sec_host["base"])))
    assert r.returncode == 0, r.stderr
    kernels = prefix / "share/jupyter/kernels"
    spec = json.loads((kernels / name / "kernel.json").read_text())
    return {"dir": str(kernels), "container": name, "plain": "plain-sec", "argv": spec["argv"]}


@pytest.fixture(scope="session")
def sec_container_kernel(sec_host, sec_kernelspecs):
    """The container kernel from the default kernelspec (pids 1024, memory half the RAM)."""
    km, kc = start_kernel(sec_host, sec_kernelspecs, "container")
    try:
        yield Target(km, kc, sec_host["facts"], "kernel")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)


@pytest.fixture(scope="session")
def sec_plain_kernel(sec_host, sec_kernelspecs):
    """ipykernel's own kernelspec, on the host (its IPython dir a temp one, not root's)."""
    ipython_dir = sec_host["base"] / "ipython"
    env = dict(os.environ, IPYTHONDIR=str(ipython_dir))
    km, kc = start_kernel(sec_host, sec_kernelspecs, "plain", env=env)
    try:
        yield Target(km, kc, sec_host["facts"], "plain")
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=False)
