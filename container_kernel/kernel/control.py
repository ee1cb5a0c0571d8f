"""The launcher's control server: the notebook's window on its container, from the host.

It runs in the kernel launcher, outside the container, as root or the user, and
everything it reads comes from untrusted code: protocol.decode_request checks
every field's type and size, and each op checks values against the container's
own objects (its cgroup, its processes, the kernelspec's ceiling) before it acts.
A bad request gets a one-line error and never stops the server; a flood of them,
or clients that never finish, are the socket loop's to bound (control_server.py).
The vocabulary both sides share (ops, fields, reply records) is protocol.py.
"""

import os
import re
import socket
from stat import S_ISBLK

from .. import protocol as P
from ..runtime import devices, namespaces, overlay, procfs
from ..runtime import spec as S
from ..runtime.cgroups import PARENT
from ..runtime.errors import ContainerError
from . import packages
from .control_server import SocketLoop

# A device as MAJ:MIN or a plain name in the host's /dev: no other path is ever looked
# at, so a request cannot ask the host "does /root/x exist?" (nor climb with "..").
DEVICE = re.compile(r"[0-9]{1,9}:[0-9]{1,9}|/dev/[A-Za-z0-9_-]{1,64}")
MAX_SANDBOXES = 16   # live child cgroups: each is a directory on the host
MAX_PS = 4096        # processes listed by ps (pids.max may be lifted to "max")
CMDLINE = 4096       # bytes of each one's argv: a process may make its own as long as it likes


class ControlServer:
    """Serves one container's control socket from a thread of the launcher.

    Started only after container.start(): the launcher must be single-threaded
    while it forks the stages (unshare(CLONE_NEWUSER) refuses a threaded caller).
    The thread inherits the launcher's blocked signals, so signals still go to
    container.wait(). Its SocketLoop (control_server.py) multiplexes the connections
    and bounds each; the requests are handled one at a time: no two cgroup writes race.
    """

    def __init__(self, container, ceiling, sock_path):
        """ceiling: a protocol.Ceiling, the kernelspec's limits."""
        self.container = container
        self.ceiling = ceiling
        self.path = sock_path
        self.sandboxes = {}  # name -> Cgroup of a live %%sandbox
        self.counter = 0
        from .siblings import Siblings
        self.siblings = Siblings(container)  # demo containers (%container_run)
        self._security = None  # the SecurityView, made at the first info: it parses the profile
        self._loop = None  # the SocketLoop (control_server.py) that calls handle_bytes

    def start(self):
        self._loop = SocketLoop(self.path, self.handle_bytes).start()
        return self

    def stop(self):
        """Stop serving, remove the sandboxes left and the socket. Safe to call twice."""
        if self._loop:
            self._loop.stop()
            self._loop = None
        self.siblings.stop()
        for name in list(self.sandboxes):
            try:
                self.sandboxes.pop(name).destroy()
            except ContainerError as e:  # container.cleanup() tries again, recursively
                os.write(2, f"container-kernel: {e}\n".encode())

    # -- requests --
    def handle_bytes(self, data):
        """One request line -> one reply line. Never raises."""
        op = "?"
        try:
            op, fields = P.decode_request(data)
            reply = P.encode_reply(getattr(self, "op_" + op)(**fields))
            if len(reply) > P.MAX_REPLY:  # the client would refuse it anyway (client.py)
                raise ContainerError(f"{op}: the reply ({len(reply)} bytes) is longer than "
                                     f"the {P.MAX_REPLY} a client takes")
            return reply
        except (P.ControlError, ContainerError) as e:
            return P.encode_error(e)
        except Exception as e:  # a bug here must not end the kernel's only window outside
            return P.encode_error(f"internal error in {op}: {type(e).__name__}: {e}")

    def _cgroup(self):
        if self.container.cgroup is None:
            raise ContainerError("this container has no cgroup (rootless without a delegated "
                                 "cgroup v2 subtree): there are no limits to show or change")
        return self.container.cgroup

    def _kernel(self):
        """[InitChild] of init's children: the kernel is PID 2 inside."""
        return [P.InitChild(pid, procfs.nspid(pid)) for pid in procfs.children(self.container.init_pid)]

    def op_info(self):
        c, spec = self.container, self.container.spec
        kids = self._kernel()
        kernel = next((k.host_pid for k in kids if k.pid == 2), kids[0].host_pid if kids else None)
        cg = c.cgroup
        return P.Info(
            id=spec.id, host_hostname=socket.gethostname(), launcher_pid=os.getpid(),
            init_pid=c.init_pid, kernel_pid=kernel, init_children=tuple(kids),
            host_namespaces=namespaces.inodes("self"),
            container_namespaces=namespaces.inodes(kernel) if kernel else None,
            namespaces=list(spec.namespaces),
            cgroup=P.CgroupView(cg.version, cg.paths(), cg.stats()) if cg else None,
            ceiling=self.ceiling,
            uid_map=procfs.read(f"/proc/{kernel}/uid_map") if kernel else None,
            gid_map=procfs.read(f"/proc/{kernel}/gid_map") if kernel else None,
            rootfs=str(spec.rootfs), network=spec.network, rootless=spec.rootless,
            workspace=spec.process.cwd,
            # how each asked-for limit is enforced here: "cgroup v1", or a rootless fallback
            # ("RLIMIT_AS per process ...", "NOT enforced"): said, never claimed
            enforced=c.enforced, mapping=c.mapping, security=self.security(),
            image=P.RootfsView(**view) if (view := overlay.view(spec)) else None,
            packages=P.PackagesView(**layer) if (layer := packages.view(spec)) else None)

    def security(self):
        if self._security is None:
            sec, cg = self.container.spec.security, self.container.cgroup
            self._security = P.SecurityView(
                _seccomp_line(sec), sec.no_new_privs, list(sec.masked_paths),
                list(sec.readonly_paths), devices.policy(cg.version if cg else None))
        return self._security

    def op_stats(self):
        cg = self.container.cgroup
        return P.StatsReply(cg.stats() if cg else None, self.ceiling, self.container.enforced)

    def op_set(self, controller=None, value="", direction=None, device=None):
        cg = self._cgroup()
        if controller == "io":
            return self._set_io(cg, direction, value, device)
        limit = P.parse_limit(controller, value)
        ceiling = getattr(self.ceiling, controller)
        if limit is not None and ceiling is not None and limit > ceiling:
            raise ContainerError(
                f"{controller} {value!r} is above this kernel's ceiling of "
                f"{P.show(controller, ceiling)} (its kernelspec's limit): use at most that, or max")
        target = ceiling if limit is None else limit
        if target is None:
            cg.reset(controller)
        elif controller == "memory":
            # memory+swap too, as at start: the same value means swap is no way around it.
            cg.apply(S.Resources(memory=target, memory_swap=target))
        else:
            cg.apply(S.Resources(**{S.LIMIT_FIELDS[controller][0]: target}))
        effective = _limit_of(cg.stats(), controller)  # read back from the cgroup's own file
        return P.SetReply(controller, effective, P.show(controller, effective), ceiling, cg.paths())

    def _set_io(self, cg, direction, value, device):
        rate = P.parse_rate(direction, value)
        major, minor, where = self._io_device(device)
        key = "rbps" if direction == "read" else "wbps"
        rules = cg.stats().io.limits
        if rate is None:
            # The drivers lift io limits all at once: lift them, then put back the others.
            cg.reset("io")
            reads, writes = [], []
            for rule in rules:
                for k, out in (("rbps", reads), ("wbps", writes)):
                    bps = getattr(rule, k)
                    if bps and ((rule.major, rule.minor) != (major, minor) or k != key):
                        out.append(S.IOLimit(f"{rule.major}:{rule.minor}", rule.major, rule.minor, bps))
            cg.apply(S.Resources(io_read_bps=tuple(reads), io_write_bps=tuple(writes)))
        else:
            cg.apply(S.Resources(**{f"io_{direction}_bps": (S.IOLimit(where, major, minor, rate),)}))
        rule = next((r for r in cg.stats().io.limits if (r.major, r.minor) == (major, minor)), None)
        effective = getattr(rule, key) if rule else None
        return P.SetReply("io", effective, P.show("io", effective), None, cg.paths(),
                          direction, f"{major}:{minor}", where)

    def _io_device(self, device):
        """The whole disk to throttle: the one named, or the one holding the workspace."""
        if device:
            return (*_block_device(device), device)
        cwd = self.container.spec.process.cwd
        dev = os.stat(cwd).st_dev
        if os.major(dev) == 0:
            raise ContainerError(f"io: the workspace {cwd} is on a filesystem with no block device "
                                 "(tmpfs, overlay, btrfs...): name a disk, e.g. io write 10M/s /dev/sda")
        major, minor = S.block_device(f"{os.major(dev)}:{os.minor(dev)}", "io device")
        return major, minor, cwd

    def op_ps(self):
        import psutil  # only here: the launcher's start path stays light
        cg = self.container.cgroup
        if cg:
            pids = cg.procs(recursive=True)[:MAX_PS]
        else:  # rootless without a cgroup: init and everything below it
            pids, todo = [], [self.container.init_pid]
            while todo and len(pids) < MAX_PS:
                pid = todo.pop()
                pids.append(pid)
                todo += procfs.children(pid)
        procs = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                with p.oneshot():
                    procs.append(P.Proc(
                        host_pid=pid, pid=procfs.nspid(pid), ppid=procfs.nspid(p.ppid()),
                        user=p.username(), uids=list(p.uids())[:1], rss=p.memory_info().rss,
                        status=p.status(), cpu_s=round(sum(p.cpu_times()[:2]), 2),
                        cmdline=_cmdline(pid) or [f"[{p.name()}]"],
                        cgroup=cgroup_of(pid, self.container.spec.id)))
            except psutil.Error:
                continue  # it exited while we looked
        procs.sort(key=lambda p: (p.pid is None, p.pid or 0))
        return P.PsReply(tuple(procs))

    def op_sandbox(self, pid=None, memory=None, cpu=None, pids=None):
        """A child cgroup with tighter limits, and the kernel's fork (its PID inside) moved in."""
        cg = self._cgroup()
        if pid is None or pid < 3:
            raise ContainerError(f"invalid pid {pid!r}: give the PID (inside) of a fork of the "
                                 "kernel (init is 1 and the kernel 2: they stay put)")
        if len(self.sandboxes) >= MAX_SANDBOXES:
            raise ContainerError(f"{len(self.sandboxes)} sandboxes are live already "
                                 f"({', '.join(self.sandboxes)}): end one first")
        stats = cg.stats()
        limits = {}
        for controller, text in (("memory", memory), ("cpu", cpu), ("pids", pids)):
            value = None if text is None else P.parse_limit(controller, text)
            if value is None:
                continue
            current = _limit_of(stats, controller)
            if current is not None and value > current:
                raise ContainerError(
                    f"{controller}={P.show(controller, value)} is above the container's own limit "
                    f"of {P.show(controller, current)}: a sandbox can only be tighter")
            limits[controller] = value
        kernel = next((k.host_pid for k in self._kernel() if k.pid == 2), None)
        host = next((h for h in cg.procs(recursive=True)
                     if procfs.nspid(h) == pid and procfs.ppid(h) == kernel), None)
        if host is None:
            raise ContainerError(f"no process with PID {pid} that is a child of the kernel "
                                 "in this container")
        self.counter += 1
        name = f"sandbox-{self.counter}"
        mem = limits.get("memory")
        child = cg.create_child(name, S.Resources(memory=mem, memory_swap=mem,
                                                  cpus=limits.get("cpu"), pids=limits.get("pids")))
        self.sandboxes[name] = child
        try:
            child.add(host)
        except ContainerError:
            self.sandboxes.pop(name).destroy()
            raise
        stats = child.stats()
        return P.SandboxReply(name, host, child.paths(), P.Ceiling(
            stats.memory.limit, stats.cpu.cpus, stats.pids.limit))

    def op_sandbox_end(self, name=None):
        if name not in self.sandboxes:
            raise ContainerError(f"no sandbox {str(name)[:40]!r}: "
                                 f"live ones: {', '.join(self.sandboxes) or 'none'}")
        child = self.sandboxes.pop(name)
        stats = child.stats()
        left = child.procs(recursive=True)
        child.destroy()  # kills what the cell left running in it
        return P.SandboxEnd(name, stats, len(left),
                            not any(os.path.exists(d) for d in child.paths().values()))


    # -- siblings (siblings.py) --
    def op_run(self, argv=(), seconds=None):
        return self.siblings.run(argv, seconds)

    def op_run_poll(self, name=None, out=0, err=0):
        return self.siblings.poll(name, out, err)

    def op_run_kill(self, name=None):
        return self.siblings.kill(name)

    def op_pip(self, argv=(), seconds=None):
        return packages.build(self.siblings, argv, seconds)


def _seccomp_line(security):
    if security.seccomp is None:
        return "unconfined (--security-opt seccomp=unconfined)"
    from ..runtime import capabilities, seccomp
    try:
        profile = seccomp.load_profile(security.seccomp.profile)
        caps = security.capabilities or capabilities.DEFAULT
        return str(seccomp.describe(profile, caps, security.seccomp.deny_namespaces))
    except ContainerError as e:  # the file changed since the start: say what is known
        return f"filter, {security.seccomp.name()} ({e})"


def _block_device(device):
    """MAJ:MIN of the whole disk named by "MAJ:MIN" or "/dev/NAME"; one refusal for all else.

    Whether a path exists, is a directory or a device, the refusal is the same line:
    the host's filesystem is not the container's to probe.
    """
    refusal = ContainerError(f"io device {str(device)[:40]!r} is not a block device: use "
                             "MAJ:MIN or /dev/NAME of a disk (see lsblk)")
    if not DEVICE.fullmatch(device):
        raise refusal
    try:
        if device.startswith("/"):
            st = os.lstat(device)  # the node itself: a link in /dev may point anywhere
            if not S_ISBLK(st.st_mode):
                raise refusal
            device = f"{os.major(st.st_rdev)}:{os.minor(st.st_rdev)}"
        return S.block_device(device, "io device")
    except (OSError, ContainerError):
        raise refusal from None


def _cmdline(pid):
    """A process's argv, at most CMDLINE bytes of it (then "..."); None if it is gone."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            data = f.read(CMDLINE + 1)
    except OSError:
        return None
    args = data[:CMDLINE].split(b"\0")
    if len(data) > CMDLINE:
        args.append(b"...")
    elif args[-1] == b"":
        args.pop()  # the NUL that ends the last argument
    return [a.decode(errors="replace") for a in args]


def _limit_of(stats, controller):
    return {"memory": stats.memory.limit, "cpu": stats.cpu.cpus, "pids": stats.pids.limit}[controller]


def cgroup_of(pid, cid):
    """The process's cgroup relative to the container's: "/", "/main" or "/sandbox-1"."""
    marker = f"/{PARENT}/{cid}"
    for _, _, path in procfs.cgroup_membership(pid):
        head, found, tail = path.partition(marker)
        if found and (not tail or tail.startswith("/")):
            return tail or "/"
    return "?"
