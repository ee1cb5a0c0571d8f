"""A fake cgroup v1 filesystem in a temp dir, for the v1 driver's unit tests.

FakeV1 stands in for the kernel: it lays out the hierarchies and a mountinfo
naming them, fills each new cgroup with the files a real kernel makes (with
their real initial contents), and enforces the rules the driver must respect
(limit <= memsw, page rounding, one blkio rule per write, rmdir only when empty).
"""

import errno
import os
import shutil

from container_kernel.runtime import cgroups
from container_kernel.runtime.cgroups import PARENT, units
from container_kernel.runtime.cgroups.v1 import V1Cgroup

UNLIMITED = "9223372036854771712"  # PAGE_COUNTER_MAX * 4096: what -1 reads back as
PAGE = 4096
MiB = 1 << 20

FILES = {
    "memory": {
        "memory.limit_in_bytes": UNLIMITED,
        "memory.memsw.limit_in_bytes": UNLIMITED,
        "memory.usage_in_bytes": "0",
        "memory.max_usage_in_bytes": "0",
        "memory.memsw.usage_in_bytes": "0",
        "memory.failcnt": "0",
        "memory.memsw.failcnt": "0",
        "memory.oom_control": "oom_kill_disable 0\nunder_oom 0\noom_kill 0\n",
        "memory.use_hierarchy": "1",
    },
    "cpu": {
        "cpu.cfs_period_us": "100000",
        "cpu.cfs_quota_us": "-1",
        "cpu.shares": "1024",
        "cpu.stat": "nr_periods 0\nnr_throttled 0\nthrottled_time 0\nnr_bursts 0\nburst_time 0\n",
    },
    "cpuacct": {"cpuacct.usage": "0", "cpuacct.stat": "user 0\nsystem 0\n"},
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0\n", "pids.peak": "0"},
    "blkio": {
        "blkio.throttle.read_bps_device": "",
        "blkio.throttle.write_bps_device": "",
        "blkio.throttle.io_service_bytes": "Total 0\n",
    },
    "devices": {"devices.allow": "", "devices.deny": "", "devices.list": "a *:* rwm\n"},
}
COMMON = {"cgroup.procs": "", "tasks": "", "notify_on_release": "0", "cgroup.clone_children": "0"}


class FakeV1:
    """A v1 host: separate hierarchies (like this project's CI host) or cpu,cpuacct comounted."""

    def __init__(self, tmp, comount=False, memsw=True, devices=False):
        self.root = os.path.join(str(tmp), "cgroup")
        self.memsw = memsw
        self.writes = []   # (path relative to root, text) in order
        self.fail = {}     # file name -> errno the "kernel" answers with
        self.busy = 0      # rmdir answers EBUSY this many more times
        names = ["cpu,cpuacct", "memory", "pids", "blkio", "freezer"] if comount else \
                ["cpu", "cpuacct", "memory", "pids", "blkio", "freezer"]
        names += ["devices"] if devices else []
        lines = [f"31 23 0:28 / {self.root} rw,nosuid - tmpfs tmpfs rw,mode=755"]
        for i, name in enumerate(names):
            os.makedirs(os.path.join(self.root, name))
            lines.append(f"{40 + i} 31 0:{40 + i} / {self.root}/{name} rw,relatime - cgroup cgroup rw,{name}")
        if comount:
            for alias in ("cpu", "cpuacct"):  # the host's convenience symlinks
                os.symlink("cpu,cpuacct", os.path.join(self.root, alias))
        os.makedirs(os.path.join(self.root, "systemd"))
        lines.append(f"50 31 0:50 / {self.root}/systemd rw - cgroup cgroup rw,xattr,name=systemd")
        os.makedirs(os.path.join(self.root, "unified"))
        lines.append(f"51 31 0:51 / {self.root}/unified rw - cgroup2 cgroup2 rw,nsdelegate")
        lines.append("60 23 254:0 / /tmp rw - ext4 /dev/vda rw")
        self.mountinfo = os.path.join(str(tmp), "mountinfo")
        with open(self.mountinfo, "w") as f:
            f.write("\n".join(lines) + "\n")

    def install(self, monkeypatch):
        real_write = V1Cgroup._write
        fake = self

        def _write(cg, path, text):
            fake.writes.append((os.path.relpath(path, fake.root), text))
            fake.write(path, text, lambda t: real_write(cg, path, t))

        monkeypatch.setattr(V1Cgroup, "_write", _write)
        monkeypatch.setattr(V1Cgroup, "_mkdir", lambda cg, path: fake.mkdir(path))
        monkeypatch.setattr(V1Cgroup, "_rmdir", lambda cg, path: fake.rmdir(path))
        return self

    def open(self, cid="c1"):
        return cgroups.open_cgroup(cid, root=self.root, mountinfo=self.mountinfo)

    # -- the kernel's side --
    def mkdir(self, path):
        os.mkdir(path)
        hierarchy = os.path.relpath(path, self.root).split("/")[0]
        files = dict(COMMON)
        for controller in hierarchy.split(","):
            files.update(FILES.get(controller, {}))
        if not self.memsw:
            files = {k: v for k, v in files.items() if ".memsw." not in k}
        for name, text in files.items():
            self.put(os.path.join(path, name), text)

    def rmdir(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        procs = os.path.join(path, "cgroup.procs")
        if self.busy or os.path.exists(procs) and self.read(procs).split() or \
                any(e.is_dir() for e in os.scandir(path)):
            self.busy = max(0, self.busy - 1)
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        shutil.rmtree(path)

    def write(self, path, text, plain):
        name = os.path.basename(path)
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]), path)
        d = os.path.dirname(path)
        if name in ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"):
            value = int(text) if text.lstrip("-").isdigit() else None
            if value is None or value < -1:
                raise OSError(errno.EINVAL, "Invalid argument", path)
            value = int(UNLIMITED) if value == -1 else value // PAGE * PAGE
            limit = int(self.read(os.path.join(d, "memory.limit_in_bytes")))
            memsw_file = os.path.join(d, "memory.memsw.limit_in_bytes")
            memsw = int(self.read(memsw_file)) if os.path.exists(memsw_file) else None
            # mem_cgroup_resize_max(): the kernel keeps limit <= memsw at all times.
            if memsw is not None and (name == "memory.limit_in_bytes" and value > memsw
                                      or name == "memory.memsw.limit_in_bytes" and value < limit):
                raise OSError(errno.EINVAL, "Invalid argument", path)
            plain(str(value))
        elif name in ("blkio.throttle.read_bps_device", "blkio.throttle.write_bps_device"):
            rules = units.v1_throttle(self.read(path))
            dev, bps = text.split()
            major, minor = (int(x) for x in dev.split(":"))
            if int(bps) == 0:
                rules.pop((major, minor), None)
            else:
                rules[major, minor] = int(bps)
            plain("".join(f"{a}:{b} {v}\n" for (a, b), v in sorted(rules.items())))
        elif name == "cgroup.procs":
            plain(self.read(path) + text + "\n")
        elif name == "cpu.cfs_quota_us" and not (text == "-1" or int(text) >= 1000):
            raise OSError(errno.EINVAL, "Invalid argument", path)
        else:
            plain(text)

    def put(self, path, text):
        with open(path, "w") as f:
            f.write(text)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def file(self, hierarchy, name, cid="c1"):
        return os.path.join(self.root, hierarchy, PARENT, cid, name)

    def cat(self, hierarchy, name, cid="c1"):
        return self.read(self.file(hierarchy, name, cid)).strip()
