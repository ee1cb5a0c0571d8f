"""The host side of a container: its stages, the wait, the cleanup.

    launcher (host)            stays outside: owns the cgroup, forwards signals, cleans up
      └─ intermediate          [unshare(user)], joins the cgroup, unshare(mnt uts ipc net cgroup pid)
           └─ init, PID 1      adopted by the launcher (a child subreaper) when the intermediate exits
                └─ payload, PID 2   fork + exec of the command

Why an intermediate stage? unshare(CLONE_NEWPID) does not move the caller: only
its *next child* is PID 1 of the new namespace (seed note 10). And the caller of
unshare(CLONE_NEWUSER) must be single-threaded, which only a fresh fork of a
single-threaded launcher is guaranteed to be (youki: main -> intermediate -> init;
runc runs its nsenter C code before the Go runtime starts threads).

The launcher and its children talk over two pipes, one short line at a time.
"""

import os
# The C module under `signal` (which only wraps it to hand out IntEnums): importing
# enum would cost ~2.5 ms of a container's start.
import _signal as signal

from . import cgroups, idmap, init, mounts, namespaces
from . import syscalls as sc
from .errors import RUNTIME, ContainerError
from .spec import human_bytes


class Container:
    def __init__(self, spec, pass_fds=(), memory_above_start=False):
        """memory_above_start: for a rootless fallback, let the payload set its own
        RLIMIT_AS once started (CK_RLIMIT_AS_ABOVE_START in its env): an interpreter
        like ipykernel maps ~800 MB of address space before it runs any code."""
        self.spec = spec
        self.memory_above_start = memory_above_start
        self.pass_fds = tuple(pass_fds)
        self.cgroup = None
        self.init_pid = None
        self.steps = None
        self.final_stats = None
        self.stop_requested = False  # a SIGTERM/SIGHUP/SIGQUIT came from outside

    # ---- start ----------------------------------------------------------------------------
    def start(self):
        """Create the container and return once its command has been exec'd."""
        spec = self.spec
        collect_stale(spec.run_base)
        cgroup_mounts = ()
        self.enforced = {}
        if spec.rootless:
            spec = self.spec = self._rootless(spec)
        if spec.rootless and self.cgroup:
            cgroup_mounts = [("", "cgroup2", None)]
        elif not spec.rootless:
            version = cgroups.detect()
            if version is None and spec.resources.any():
                raise ContainerError("cgroup limits were asked for but this host has no cgroup "
                                     "filesystem at /sys/fs/cgroup (see: container-kernel doctor)")
            if version:
                self.cgroup = cgroups.open_cgroup(spec.id, version)
                # Show only the hierarchies the container has its own cgroup in: in the
                # others its cgroup namespace would be rooted at the host's cgroup.
                paths = self.cgroup.paths().values()
                cgroup_mounts = [m for m in mounts.host_cgroup_mounts()
                                 if any(mounts.under(p, "/sys/fs/cgroup/" + m[0]) for p in paths)]
                self.enforced = {k: f"cgroup {version}" for k in _asked(spec.resources)}
        root = os.path.join(spec.run_dir, "root")
        self.steps = mounts.plan(spec, root, cgroup_mounts)
        _make_run_dir(spec)
        try:
            if self.cgroup:
                self.cgroup.create(spec.resources)
            signal.pthread_sigmask(signal.SIG_BLOCK, init.WAITED)
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
            self._fork_stages(root)
            _write_state(self)
        except BaseException:
            self.cleanup()
            raise

    def _rootless(self, spec):
        """A user's container: its ID maps, and limits with what this host allows.

        On cgroup v2 with a delegated subtree, limits are cgroups as for root.
        Elsewhere the container still runs and falls back to what works without
        cgroups: RLIMIT_AS for memory (a MemoryError, not an OOM kill), RLIMIT_NPROC
        for processes, nothing for CPU and I/O. What is not enforced is said, never claimed.
        """
        uid, gid = idmap.current_user()
        self.uid_map, self.gid_map, self.mapping = idmap.rootless_maps(
            uid, gid, keep_id=spec.process.uid != 0)
        asked = _asked(spec.resources)
        base, why = cgroups.delegated_base()
        if base:
            self.cgroup = cgroups.open_cgroup(spec.id, "v2", base=base)
            self.enforced = {k: "cgroup v2 (delegated)" for k in asked}
            return spec
        import resource
        rlimits, res, env = [], spec.resources, ()
        if res.memory is not None and self.memory_above_start:
            env = (("CK_RLIMIT_AS_ABOVE_START", str(res.memory)),)
            self.enforced["memory"] = (f"RLIMIT_AS: {human_bytes(res.memory)} of address space above "
                                       "the kernel's start, per process (MemoryError, no OOM kill)")
        elif res.memory is not None:
            rlimits.append((resource.RLIMIT_AS, res.memory, res.memory))
            self.enforced["memory"] = (f"RLIMIT_AS of {human_bytes(res.memory)} per process "
                                       "(allocations fail with MemoryError, no OOM kill)")
        if res.pids is not None:
            rlimits.append((resource.RLIMIT_NPROC, res.pids, res.pids))
            self.enforced["pids"] = (f"RLIMIT_NPROC of {res.pids} (threads count too; "
                                     "fork fails with EAGAIN)")
        for field in asked:
            if field not in self.enforced:
                self.enforced[field] = "NOT enforced"
                os.write(2, f"container-kernel: warning: the {field} limit is not enforced: "
                            f"{why}\n".encode())
        return spec._replace(process=spec.process._replace(rlimits=tuple(rlimits),
                                                           env=spec.process.env + env))

    def _fork_stages(self, root):
        spec = self.spec
        to_child_r, to_child = os.pipe()
        from_child, from_child_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # ---- the intermediate stage ----
            os.close(to_child)
            os.close(from_child)
            _intermediate(spec, self.steps, root, to_child_r, from_child_w, self.pass_fds)
        os.close(to_child_r)
        os.close(from_child_w)
        self._to_child, self._from_child = to_child, from_child
        try:
            self._expect("unshared")
            if spec.rootless:
                idmap.write_maps(pid, self.uid_map, self.gid_map)
            if self.cgroup:
                self.cgroup.add(pid)
            os.write(to_child, b"go\n")
            self.init_pid = int(self._expect("init"))
        except BaseException:
            os.close(to_child)  # EOF tells a waiting stage to give up
            os.waitpid(pid, 0)
            raise
        os.waitpid(pid, 0)  # the intermediate exits: init is now our child (subreaper)
        os.write(to_child, b"go\n")
        self._expect("ready")
        os.close(from_child)

    def _expect(self, word):
        line = _read_line(self._from_child)
        head, _, rest = line.partition(" ")
        if head == word:
            return rest
        if head == "error":
            code, _, message = rest.partition(" ")
            raise ContainerError(message, int(code))
        raise ContainerError(f"the container's {word!r} stage died before it could report "
                             f"({line or 'no message'})")

    # ---- wait -----------------------------------------------------------------------------
    def wait(self):
        """Forward signals to init until it exits; return the container's exit code."""
        while True:
            info = signal.sigwaitinfo(init.WAITED)
            if info.si_signo != signal.SIGCHLD:
                if info.si_signo in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT):
                    self.stop_requested = True
                try:
                    os.kill(self.init_pid, info.si_signo)
                except ProcessLookupError:
                    pass
                continue
            try:
                pid, status = os.waitpid(self.init_pid, os.WNOHANG)
            except ChildProcessError:
                return RUNTIME
            if pid:
                return init.exit_code(status)

    def run(self):
        try:
            code = self.wait()
            self.report_oom(code)
            return code
        finally:
            self.cleanup()

    def report_oom(self, code):
        """One line on stderr when the OOM killer acted, read from the cgroup's own counters.

        Returns the cgroup's final stats (None without a cgroup)."""
        if not self.cgroup:
            return None
        stats = self.final_stats = self.cgroup.stats()
        mem = stats.get("memory") or {}
        if not mem.get("oom_kills"):
            return stats
        limit, peak = human_bytes(mem.get("limit")), human_bytes(mem.get("peak") or mem.get("usage"))
        if code == 128 + signal.SIGKILL:
            msg = f"killed by the OOM killer (memory limit {limit}, peak {peak})"
        else:
            msg = (f"the OOM killer killed {mem['oom_kills']} process(es) in the container "
                   f"(memory limit {limit}, peak {peak})")
        os.write(2, f"container-kernel: {msg}\n".encode())
        return stats

    # ---- cleanup --------------------------------------------------------------------------
    def cleanup(self):
        """Remove all the container left on the host. Safe to call twice."""
        if self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
                os.waitpid(self.init_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.init_pid = None
        if self.cgroup:
            self.cgroup.destroy()
        remove_tree(self.spec.run_dir)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, init.WAITED)


def _asked(resources):
    names = {"memory": "memory", "memory_swap": "memory", "cpus": "cpus", "pids": "pids",
             "io_read_bps": "io", "io_write_bps": "io"}
    return sorted({names[k] for k, v in resources._asdict().items() if v not in (None, ())})


def run(spec, pass_fds=()):
    container = Container(spec, pass_fds)
    container.start()
    return container.run()


# ---- the intermediate stage -----------------------------------------------------------------

def _intermediate(spec, steps, root, from_launcher, to_launcher, pass_fds):
    """In the fork between launcher and init. Never returns."""
    try:
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if "user" in spec.namespaces:
            sc.unshare(sc.CLONE_NEWUSER)
        os.write(to_launcher, b"unshared\n")
        if os.read(from_launcher, 3) != b"go\n":
            os._exit(RUNTIME)
        # The cgroup was joined just before: the new cgroup namespace is rooted there.
        sc.unshare(namespaces.flags(k for k in spec.namespaces if k != "user"))
        pid = os.fork()
        if pid == 0:
            init.main(spec, steps, root, from_launcher, to_launcher, pass_fds)
        os.write(to_launcher, f"init {pid}\n".encode())
        os._exit(0)
    except BaseException as e:
        detail = os.strerror(e.errno) if isinstance(e, OSError) and e.errno else str(e)
        if "user" in spec.namespaces and isinstance(e, OSError) and e.errno in (1, 28):
            # EPERM: forbidden by sysctl or AppArmor; ENOSPC: the user namespace limit is 0.
            detail += (" (unprivileged user namespaces are not allowed here; "
                       "`container-kernel doctor` says how to enable them)")
        os.write(to_launcher, f"error {RUNTIME} cannot create the namespaces: {detail}\n".encode())
        os._exit(RUNTIME)


def _read_line(fd):
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()


# ---- the run directory: state for `ps`, leftovers for the next start to collect -------------

def make_run_base(run_base):
    """Create the dir holding run dirs, and refuse one we do not own.

    A rootless base may sit in /tmp under a predictable name: another user could
    have made it first to watch or swap our sockets, so check, as ssh-agent does."""
    os.makedirs(run_base, 0o711 if os.geteuid() == 0 else 0o700, exist_ok=True)
    dirs = [run_base]
    if os.path.basename(os.path.dirname(run_base)).startswith("container-kernel-"):
        dirs.append(os.path.dirname(run_base))  # /tmp/container-kernel-UID
    for d in dirs:
        st = os.lstat(d)
        if st.st_uid != os.geteuid() or st.st_mode & 0o022 or not os.path.isdir(d) or os.path.islink(d):
            raise ContainerError(f"{d} is not a private directory of this user "
                                 f"(owner uid {st.st_uid}, mode {oct(st.st_mode & 0o777)}): remove it "
                                 "or set XDG_RUNTIME_DIR")


def _make_run_dir(spec):
    make_run_base(spec.run_base)
    os.mkdir(spec.run_dir, 0o700)
    os.mkdir(os.path.join(spec.run_dir, "root"), 0o755)
    write_owner(spec.run_dir)


def write_owner(path, pid=None):
    """Record which live process owns a run dir: when it is gone, the dir is stale."""
    pid = pid or os.getpid()
    with open(os.path.join(path, "owner"), "w") as f:
        f.write(f"{pid} {_start_time(pid)}\n")


def _write_state(container):
    spec = container.spec
    state = {
        "id": spec.id, "hostname": spec.hostname, "launcher_pid": os.getpid(),
        "init_pid": container.init_pid, "command": list(spec.process.args),
        "rootfs": spec.rootfs, "network": spec.network, "rootless": spec.rootless,
        "namespaces": list(spec.namespaces),
        "limits": {k: v for k, v in spec.resources._asdict().items() if v not in (None, ())},
        "cgroup": container.cgroup.paths() if container.cgroup else None,
        "cgroup_version": container.cgroup.version if container.cgroup else None,
        "enforced": container.enforced,
        "mapping": getattr(container, "mapping", None),
    }
    path = os.path.join(spec.run_dir, "state.json")
    with open(path + ".tmp", "w") as f:
        f.write(to_json(state))
    os.rename(path + ".tmp", path)


def to_json(value):
    """JSON for plain data. (The json module imports re: 5 ms on a 30 ms start path.)"""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{to_json(str(k))}: {to_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(to_json(v) for v in value) + "]"
    if isinstance(value, str):
        return '"' + "".join(c if c.isprintable() and c not in '"\\' else f"\\u{ord(c):04x}"
                             for c in value) + '"'
    if value is None or isinstance(value, bool):
        return {None: "null", True: "true", False: "false"}[value]
    return repr(value)


def _start_time(pid):
    """Field 22 of /proc/PID/stat: tells a live launcher from a reused PID."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[19]
    except OSError:
        return None


def owner_alive(run_dir):
    try:
        with open(os.path.join(run_dir, "owner")) as f:
            pid, start = f.read().split()
    except (OSError, ValueError):
        return False
    return _start_time(int(pid)) == start


def collect_stale(run_base):
    """Remove the run dirs and cgroups of containers whose owner is gone (e.g. SIGKILLed).

    A run dir's "owner" file names the process that made it (a launcher, or the
    Jupyter server for a kernel's socket dir) with its start time, so a reused
    PID does not keep a stale dir alive."""
    removed = []
    try:
        names = os.listdir(run_base)
    except FileNotFoundError:
        names = []
    for name in names:
        if not owner_alive(os.path.join(run_base, name)):
            remove_tree(os.path.join(run_base, name))
            removed.append(name)
    if os.geteuid() == 0:
        alive = set(os.listdir(run_base)) if os.path.isdir(run_base) else set()
        removed += cgroups.collect_stale(lambda cid: cid in alive)
    return removed


def remove_tree(path):
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        os.unlink(path)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if os.path.ismount(entry.path):  # never delete through a mount point
                continue
            remove_tree(entry.path)
        else:
            os.unlink(entry.path)
    os.rmdir(path)
