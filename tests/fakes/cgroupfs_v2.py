"""A fake unified cgroup v2 filesystem in a temp dir, for the v2 driver's unit tests.

FakeV2 stands in for the kernel: a new cgroup gets the controller files its
parent enabled in cgroup.subtree_control (and only those), with the initial
contents a real kernel shows; writes follow the kernel's rules (subtree_control
"+name" tokens, the no-internal-processes rule, io.max keys merged per device).
"""

import errno
import os
import shutil

from container_kernel.runtime import cgroups
from container_kernel.runtime.cgroups import PARENT, units
from container_kernel.runtime.cgroups.v2 import V2Cgroup

MiB = 1 << 20
ORDER = ("cpuset", "cpu", "io", "memory", "hugetlb", "pids", "rdma", "misc")  # the kernel's order

FILES = {
    "memory": {
        "memory.max": "max", "memory.high": "max", "memory.swap.max": "max", "memory.current": "0",
        "memory.peak": "0", "memory.swap.current": "0",
        "memory.events": "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n",
    },
    "cpu": {"cpu.max": "max 100000", "cpu.weight": "100"},
    "pids": {"pids.max": "max", "pids.current": "0", "pids.events": "max 0\n"},
    "io": {"io.max": "", "io.stat": "", "io.weight": "default 100\n"},
}
CPU_STAT = "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"
CPU_STAT_CONTROLLER = "nr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n"


class FakeV2:
    def __init__(self, tmp, controllers="cpuset cpu io memory hugetlb pids rdma misc",
                 cgroup_kill=True, swap=True):
        self.root = os.path.join(str(tmp), "cgroup")
        self.cgroup_kill = cgroup_kill
        self.swap = swap
        self.writes = []
        self.fail = {}
        self.busy = 0
        os.makedirs(self.root)
        for name, text in (("cgroup.controllers", controllers + "\n"), ("cgroup.subtree_control", ""),
                           ("cgroup.procs", "1\n"), ("cpu.stat", CPU_STAT)):
            self.put(os.path.join(self.root, name), text)
        self.mountinfo = os.path.join(str(tmp), "mountinfo")
        with open(self.mountinfo, "w") as f:
            f.write(f"31 23 0:28 / {self.root} rw,nosuid,nodev,noexec - cgroup2 cgroup2 "
                    "rw,nsdelegate,memory_recursiveprot\n")

    def install(self, monkeypatch):
        real_write = V2Cgroup._write
        fake = self

        def _write(cg, path, text):
            fake.writes.append((os.path.relpath(path, fake.root), text))
            fake.write(path, text, lambda t: real_write(cg, path, t))

        monkeypatch.setattr(V2Cgroup, "_write", _write)
        monkeypatch.setattr(V2Cgroup, "_mkdir", lambda cg, path: fake.mkdir(path))
        monkeypatch.setattr(V2Cgroup, "_rmdir", lambda cg, path: fake.rmdir(path))
        return self

    def open(self, cid="c1", base=None):
        return cgroups.open_cgroup(cid, root=self.root, base=base, mountinfo=self.mountinfo)

    # -- the kernel's side --
    def mkdir(self, path):
        os.mkdir(path)
        files = {"cgroup.subtree_control": "", "cgroup.procs": "",
                 "cgroup.events": "populated 0\nfrozen 0\n", "cgroup.freeze": "0", "cpu.stat": CPU_STAT}
        if self.cgroup_kill:
            files["cgroup.kill"] = ""
        for name, text in files.items():
            self.put(os.path.join(path, name), text)
        self.grant(path)

    def grant(self, path):
        """Give a cgroup the controllers its parent enables for children: files appear."""
        enabled = self.read(os.path.join(os.path.dirname(path), "cgroup.subtree_control")).split()
        self.put(os.path.join(path, "cgroup.controllers"), " ".join(enabled) + "\n")
        files = {}
        for controller in enabled:
            files.update(FILES.get(controller, {}))
        if "cpu" in enabled and "nr_periods" not in self.read(os.path.join(path, "cpu.stat")):
            files["cpu.stat"] = CPU_STAT + CPU_STAT_CONTROLLER
        for name, text in files.items():
            if self.swap or ".swap." not in name:
                if not os.path.exists(os.path.join(path, name)) or name == "cpu.stat":
                    self.put(os.path.join(path, name), text)

    def rmdir(self, path):
        if not os.path.isdir(path):
            raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
        if self.busy or self.read(os.path.join(path, "cgroup.procs")).split() or \
                any(e.is_dir() for e in os.scandir(path)):
            self.busy = max(0, self.busy - 1)
            raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
        shutil.rmtree(path)

    def write(self, path, text, plain):
        name, d = os.path.basename(path), os.path.dirname(path)
        if name in self.fail:
            raise OSError(self.fail[name], os.strerror(self.fail[name]), path)
        if name == "cgroup.subtree_control":
            available = self.read(os.path.join(d, "cgroup.controllers")).split()
            enabled = set(self.read(path).split())
            for token in text.split():
                if token[1:] not in available:
                    raise OSError(errno.ENOENT, os.strerror(errno.ENOENT), path)
                (enabled.add if token[0] == "+" else enabled.discard)(token[1:])
            # Only leaves may hold processes once controllers go to children; the root is exempt.
            if enabled and d != self.root and self.read(os.path.join(d, "cgroup.procs")).split():
                raise OSError(errno.EBUSY, os.strerror(errno.EBUSY), path)
            plain(" ".join(c for c in ORDER if c in enabled) + "\n")
            for child in os.scandir(d):
                if child.is_dir():
                    self.grant(child.path)
        elif name == "io.max":
            dev, *pairs = text.split()
            rules = dict(units.nested(self.read(path)))
            keys = rules.get(tuple(int(x) for x in dev.split(":")), {})
            keys = {k: keys.get(k) for k in ("rbps", "wbps", "riops", "wiops")}
            for pair in pairs:
                key, _, value = pair.partition("=")
                if key not in keys:
                    raise OSError(errno.EINVAL, "Invalid argument", path)
                keys[key] = None if value == "max" else int(value)
            rules[tuple(int(x) for x in dev.split(":"))] = keys
            plain("".join(f"{a}:{b} " + " ".join(f"{k}={'max' if v is None else v}" for k, v in keys.items())
                          + "\n" for (a, b), keys in sorted(rules.items())
                          if any(v is not None for v in keys.values())))
        elif name == "cgroup.procs":
            plain(self.read(path) + text + "\n")
        elif name == "cgroup.kill":
            plain("")
            self.put(os.path.join(d, "cgroup.procs"), "")
        elif name in ("memory.max", "memory.swap.max", "pids.max") and text != "max" and \
                not text.isdigit():
            raise OSError(errno.EINVAL, "Invalid argument", path)
        else:
            plain(text)

    def put(self, path, text):
        with open(path, "w") as f:
            f.write(text)

    def read(self, path):
        with open(path) as f:
            return f.read()

    def cat(self, name, cid="c1"):
        return self.read(os.path.join(self.root, PARENT, cid, name)).strip()
