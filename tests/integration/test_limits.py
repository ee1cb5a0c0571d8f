"""cgroup limits of `container-kernel run`, measured from the cgroup's own counters.

These run on whatever cgroup version the host has: v1 here, v2 in the VM harness.
"""
import os
import textwrap

import pytest

from tests.helpers import FORK_UNTIL_REFUSED, ck, requires_cgroups, whole_disk

pytestmark = requires_cgroups


def py(*parts):
    return ["python3", "-c", "\n".join(textwrap.dedent(p) for p in parts)]


# Read the container's own cgroup from inside (its cgroup namespace roots it at /).
READ_CGROUP = """
import os
def cg(name, v1_dir):
    for path in (f'/sys/fs/cgroup/{name}', f'/sys/fs/cgroup/{v1_dir}/{name}'):
        if os.path.exists(path):
            return open(path).read()
    raise FileNotFoundError(name)
def cpu_usage_s():
    try:
        return int(cg('cpuacct.usage', 'cpuacct')) / 1e9               # v1: ns
    except FileNotFoundError:
        stat = dict(l.split() for l in cg('cpu.stat', 'cpu').splitlines())
        return int(stat['usage_usec']) / 1e6                            # v2: us
"""


def test_memory_limit_oom_kills_with_exit_137_and_one_line():
    r = ck("run", "--memory", "50M", "--", *py("""
        chunks = []
        for _ in range(200):
            chunks.append(bytearray(1024 * 1024))   # touch 200 MiB, 1 MiB at a time
        print('survived')
        """))
    assert r.returncode == 137, (r.returncode, r.stdout, r.stderr)
    assert "survived" not in r.stdout
    lines = [l for l in r.stderr.splitlines() if l.startswith("container-kernel:")]
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith("container-kernel: killed by the OOM killer (memory limit 50 MiB, peak ")
    peak = lines[0].rsplit("peak ", 1)[1].rstrip(")")
    assert peak.endswith("MiB") and 40 <= float(peak.split()[0]) <= 50


def test_memory_limit_is_in_the_cgroup_and_swap_is_no_escape():
    r = ck("run", "--memory", "100M", "--", *py(READ_CGROUP, """
        try:
            print(cg('memory.max', 'memory').strip(), cg('memory.swap.max', 'memory').strip())
        except FileNotFoundError:
            print(cg('memory.limit_in_bytes', 'memory').strip(),
                  cg('memory.memsw.limit_in_bytes', 'memory').strip())
        """))
    assert r.returncode == 0, r.stderr
    mem, swap = r.stdout.split()
    assert int(mem) == 100 * 2**20
    # v1: memory+swap total = memory; v2: swap.max = 0
    assert int(swap) in (100 * 2**20, 0)


def test_pids_limit_makes_fork_fail_with_eagain_and_exits_cleanly():
    r = ck("run", "--pids", "20", "--", *py(FORK_UNTIL_REFUSED))
    assert r.returncode == 0, r.stderr
    err, n = r.stdout.split()
    assert err == "EAGAIN"
    assert int(n) == 20 - 2  # init and the payload count too


def test_cpu_quota_half_a_core_measured_by_the_cgroup():
    r = ck("run", "--cpus", "0.5", "--", *py(READ_CGROUP, """
        import os, time
        t0, u0 = time.monotonic(), cpu_usage_s()
        pids = []
        for _ in range(2):
            pid = os.fork()
            if pid == 0:
                end = time.monotonic() + 2.0
                while time.monotonic() < end:
                    pass
                os._exit(0)
            pids.append(pid)
        for pid in pids:
            os.waitpid(pid, 0)
        print((cpu_usage_s() - u0) / (time.monotonic() - t0))
        """), timeout=60)
    assert r.returncode == 0, r.stderr
    ratio = float(r.stdout)
    assert 0.45 <= ratio <= 0.55, ratio


def test_io_write_limit_on_a_real_block_device(tmp_path_factory):
    base = "/var/tmp"
    disk = whole_disk(base)
    if disk is None:
        pytest.skip(f"{base} is not on a real block device here: the write rate cannot be measured")
    work = tmp_path_factory.mktemp("io", numbered=True)
    work = os.path.join(base, f"ck-io-{os.getpid()}")
    os.makedirs(work, exist_ok=True)
    rate = 4 * 2**20
    try:
        r = ck("run", "-v", f"{work}:/data", "--io-write-bps", f"{disk[0]}:{disk[1]}:4M", "--", *py("""
            import mmap, os, time
            buf = mmap.mmap(-1, 1 << 20)           # page-aligned, as O_DIRECT wants
            buf.write(b'x' * (1 << 20))
            fd = os.open('/data/out', os.O_WRONLY | os.O_CREAT | os.O_DIRECT)
            t0 = time.monotonic()
            for _ in range(16):
                os.write(fd, buf)
            os.fsync(fd)
            print(16 * (1 << 20) / (time.monotonic() - t0))
            """), timeout=120)
        if r.returncode != 0 and "Invalid argument" in r.stderr:
            pytest.skip(f"O_DIRECT is not supported on {base}'s filesystem here")
        assert r.returncode == 0, r.stderr
        measured = float(r.stdout)
        # the first chunk may pass before throttling settles: 16 MiB at 4 MiB/s takes >= ~3.7 s
        assert measured <= rate * 1.25, f"{measured / 2**20:.1f} MiB/s with a 4 MiB/s limit"
        assert measured >= rate * 0.5
    finally:
        for name in os.listdir(work):
            os.unlink(os.path.join(work, name))
        os.rmdir(work)


def test_read_limit_is_written_to_the_cgroup():
    disk = whole_disk("/usr")
    if disk is None:
        pytest.skip("/usr is not on a real block device here")
    r = ck("run", "--io-read-bps", f"{disk[0]}:{disk[1]}:10M", "--", *py(READ_CGROUP, """
        try:
            print(cg('io.max', 'io').strip())
        except FileNotFoundError:
            print(cg('blkio.throttle.read_bps_device', 'blkio').strip())
        """))
    assert r.returncode == 0, r.stderr
    out = r.stdout.strip()
    assert out.startswith(f"{disk[0]}:{disk[1]} ")
    assert str(10 * 2**20) in out


def test_root_inside_cannot_lift_its_own_limits():
    """The cgroup files are read-only, and the capabilities that could change that are gone."""
    r = ck("run", "--memory", "64M", "--", *py(READ_CGROUP, """
        import ctypes, errno, os
        libc = ctypes.CDLL(None, use_errno=True)
        out = []
        for target in ('/sys/fs/cgroup', '/sys/fs/cgroup/memory'):
            if os.path.ismount(target):   # v1 has both; v2 only the first
                rc = libc.mount(None, target.encode(), None, 32, None)  # MS_REMOUNT, read-write
                out.append(errno.errorcode[ctypes.get_errno()] if rc else 'remounted!')
        for name in ('memory.max', 'memory/memory.limit_in_bytes'):
            path = '/sys/fs/cgroup/' + name
            if os.path.exists(path):
                try:
                    open(path, 'w').write('max')
                    out.append('wrote!')
                except OSError as e:
                    out.append(errno.errorcode[e.errno])
        rc = libc.mount(b'cgroup', b'/tmp', b'cgroup2', 0, None)
        out.append(errno.errorcode[ctypes.get_errno()] if rc else 'mounted!')
        print(' '.join(sorted(set(out))))
        """))
    assert r.returncode == 0, r.stderr
    assert "!" not in r.stdout and set(r.stdout.split()) <= {"EPERM", "EROFS", "EACCES"}, r.stdout
