"""The launcher's control socket: how the notebook sees and changes its container from outside.

The kernel runs inside the container, where /sys/fs/cgroup is read-only and the
host's /proc is out of sight. The launcher stays outside: it owns the cgroup and
knows the host's PIDs and namespaces. So the magics and widgets ask the launcher,
over a unix socket in the kernel's socket dir (bound into the container at the
same path; its path reaches the kernel as $CK_CONTROL):

    kernel (inside)  --- {"op": "set", "controller": "memory", "value": "100M"}\\n --->  launcher (host)
                     <-- {"ok": true, "limit": 104857600, "text": "100 MiB", ...}\\n ---

One JSON request line, one JSON reply line, one request per connection. Every
reply is {"ok": true, ...} or {"error": "one line a user can act on"}; a bad
request never stops the server. The ceiling is the kernelspec's limits: the
server refuses anything above it, whoever asks.

Ops: info, stats, set, ps, sandbox (make a child cgroup and move a fork of the
kernel into it), sandbox_end (its final counters, then remove it).
"""

import json
import os
import select
import socket
import threading

from ..runtime import cgroups, namespaces, procfs
from ..runtime import spec as S
from ..runtime.errors import ContainerError

from .launch import CONTROL_ENV as ENV  # where the kernel finds our socket
MAX_LINE = 64 * 1024   # a request is a few hundred bytes: anything longer is refused
MAX_REPLY = 16 << 20   # a reply (ps of many processes) may be long, but not without end
TIMEOUT = 5.0          # seconds a client may take to send its line (one at a time is served)
CLIENT_TIMEOUT = 30.0  # a sandbox_end may wait for the killed processes to exit
CONTROLLERS = ("memory", "cpu", "pids", "io")
IO_DIRECTIONS = ("read", "write")
# controller -> (ceiling key (as in kernel.json), stats section, stats key, Cgroup.reset field)
LIMIT_KEYS = {"memory": ("memory", "memory", "limit", "memory"),
              "cpu": ("cpus", "cpu", "cpus", "cpus"),
              "pids": ("pids", "pids", "limit", "pids")}


class ControlError(Exception):
    """A one-line error from the control socket (or from reaching it)."""


# ---- parsing: shared by the server (the authority) and the magics (early, friendly errors) ---

def parse_limit(controller, text):
    """A limit's text -> its value; "max" -> None (back to the ceiling, or unlimited)."""
    text = str(text).strip()
    if controller not in LIMIT_KEYS:
        raise ContainerError(f"unknown controller {controller!r}: use one of {', '.join(CONTROLLERS)}")
    if text.lower() == "max":
        return None
    option = {"memory": "memory", "cpu": "cpu", "pids": "pids"}[controller]
    parser = {"memory": S.parse_memory, "cpu": S.parse_cpus, "pids": S.parse_pids}[controller]
    return parser(text, option)


def parse_rate(direction, text):
    """An io rate ("10M/s", "512k"); "max" -> None (lift the limit)."""
    if direction not in IO_DIRECTIONS:
        raise ContainerError(f"io: unknown direction {direction!r}: use read or write")
    text = str(text).strip()
    return None if text.lower() == "max" else S.parse_rate(text, f"io {direction}")


def show(controller, value):
    if value is None:
        return "unlimited"
    if controller in ("memory", "io"):
        return S.human_bytes(value) + ("/s" if controller == "io" else "")
    if controller == "cpu":
        return f"{value:g} CPU" + ("" if value == 1 else "s")
    return str(value)


# ---- the client: what the kernel calls -------------------------------------------------------

def path():
    return os.environ.get(ENV)


def request(op, timeout=CLIENT_TIMEOUT, **args):
    """Send one request to the launcher; return its reply dict or raise ControlError."""
    where = path()
    if not where:
        raise ControlError("this kernel has no launcher to ask: it is not a container kernel "
                           "(no $CK_CONTROL)")
    line = json.dumps(dict(args, op=op)).encode() + b"\n"
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(where)
            s.sendall(line)
            data = _read_line(s, MAX_REPLY)
    except OSError as e:
        raise ControlError(f"cannot reach the launcher at {where}: {e.strerror or e}") from None
    except ValueError as e:
        raise ControlError(f"the launcher's reply was too long: {e}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise ControlError(f"the launcher sent a reply that is not JSON: {data[:80]!r}") from None
    if not isinstance(reply, dict) or "error" in reply:
        raise ControlError(str(reply.get("error") if isinstance(reply, dict) else reply))
    return reply


def _read_line(sock, limit):
    """Bytes up to a newline (or EOF); ValueError past limit bytes."""
    data = bytearray()
    while not data.endswith(b"\n"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > limit:
            raise ValueError(f"a line longer than {limit} bytes")
    return bytes(data)


# ---- the server: in the launcher, one thread, after container.start() ------------------------

class ControlServer:
    """Serves one container's control socket from a thread of the launcher.

    Started only after container.start(): the launcher must be single-threaded
    while it forks the stages (unshare(CLONE_NEWUSER) refuses a threaded caller).
    The thread inherits the launcher's blocked signals, so signals still go to
    container.wait(). Requests are served one at a time: no two cgroup writes race.
    """

    def __init__(self, container, ceiling, sock_path):
        self.container = container
        self.ceiling = dict(ceiling or {})
        self.path = sock_path
        self.sandboxes = {}  # name -> Cgroup of a live %%sandbox
        self.counter = 0
        self._listener = None
        self._thread = None
        self._wake_r = self._wake_w = None

    def start(self):
        if os.path.exists(self.path):
            os.unlink(self.path)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        os.chmod(self.path, 0o600)  # the socket dir is 0700 already; say it twice
        listener.listen(8)
        self._listener = listener
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._serve, name="ck-control", daemon=True)
        self._thread.start()
        return self

    def stop(self):
        """Stop serving, remove the sandboxes left and the socket. Safe to call twice."""
        if self._thread:
            os.write(self._wake_w, b"x")
            self._thread.join(10)
            self._thread = None
            for fd in (self._wake_r, self._wake_w):
                os.close(fd)
        if self._listener:
            self._listener.close()
            self._listener = None
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass
        for name in list(self.sandboxes):
            try:
                self.sandboxes.pop(name).destroy()
            except ContainerError as e:  # container.cleanup() tries again, recursively
                os.write(2, f"container-kernel: {e}\n".encode())

    def _serve(self):
        while True:
            ready, _, _ = select.select([self._listener, self._wake_r], [], [])
            if self._wake_r in ready:
                return
            try:
                conn, _ = self._listener.accept()
            except OSError:
                continue
            with conn:
                try:
                    conn.settimeout(TIMEOUT)
                    reply = self.handle_bytes(_read_line(conn, MAX_LINE))
                    conn.sendall(json.dumps(reply).encode() + b"\n")
                except (OSError, ValueError) as e:
                    try:
                        conn.sendall(json.dumps({"error": f"bad request: {e}"}).encode() + b"\n")
                    except OSError:
                        pass

    # -- requests --
    def handle_bytes(self, data):
        """One request line -> one reply dict. Never raises."""
        try:
            req = json.loads(data)
        except ValueError:
            return {"error": f"bad request: not a JSON line ({data[:60]!r})"}
        if not isinstance(req, dict) or not isinstance(req.get("op"), str):
            return {"error": 'bad request: send a JSON object with "op", e.g. {"op": "info"}'}
        op = req["op"]
        handler = getattr(self, "op_" + op, None) if op.isidentifier() else None
        if handler is None:
            ops = sorted(n[3:] for n in dir(self) if n.startswith("op_"))
            return {"error": f"unknown op {op[:40]!r}: use one of {', '.join(ops)}"}
        try:
            return dict(handler(req), ok=True)
        except ContainerError as e:
            return {"error": str(e).replace("\n", " ")}
        except Exception as e:  # a bug here must not end the kernel's only window outside
            return {"error": f"internal error in {op}: {type(e).__name__}: {e}".replace("\n", " ")}

    def _cgroup(self):
        if self.container.cgroup is None:
            raise ContainerError("this container has no cgroup (rootless without a delegated "
                                 "cgroup v2 subtree): there are no limits to show or change")
        return self.container.cgroup

    def _kernel(self):
        """(host PID, inside PID) of init's children: the kernel is PID 2 inside."""
        out = []
        for pid in procfs.children(self.container.init_pid):
            out.append((pid, _nspid(pid)))
        return out

    def op_info(self, req):
        c, spec = self.container, self.container.spec
        kids = self._kernel()
        kernel = next((host for host, inner in kids if inner == 2), kids[0][0] if kids else None)
        cg = c.cgroup
        return {
            "id": spec.id,
            "host_hostname": socket.gethostname(),
            "launcher_pid": os.getpid(),
            "init_pid": c.init_pid,
            "kernel_pid": kernel,
            "init_children": [{"host_pid": h, "pid": i} for h, i in kids],
            "host_namespaces": namespaces.inodes("self"),
            "container_namespaces": namespaces.inodes(kernel) if kernel else None,
            "namespaces": list(spec.namespaces),
            "cgroup": {"version": cg.version, "paths": cg.paths(), "stats": cg.stats()} if cg else None,
            "ceiling": self.ceiling,
            "uid_map": procfs.read(f"/proc/{kernel}/uid_map") if kernel else None,
            "gid_map": procfs.read(f"/proc/{kernel}/gid_map") if kernel else None,
            "rootfs": spec.rootfs,
            "network": spec.network,
            "rootless": spec.rootless,
            "workspace": spec.process.cwd,
            # how each asked-for limit is enforced here: "cgroup v1", or a rootless fallback
            # ("RLIMIT_AS per process ...", "NOT enforced"): said, never claimed
            "enforced": dict(getattr(c, "enforced", {}) or {}),
            "mapping": getattr(c, "mapping", None),
        }

    def op_stats(self, req):
        cg = self.container.cgroup
        return {"stats": cg.stats() if cg else None, "ceiling": self.ceiling,
                "enforced": dict(getattr(self.container, "enforced", {}) or {})}

    def op_set(self, req):
        cg = self._cgroup()
        controller = req.get("controller")
        if controller == "io":
            return self._set_io(cg, req)
        if controller not in LIMIT_KEYS:
            raise ContainerError(f"unknown controller {str(controller)[:40]!r}: use one of "
                                 f"{', '.join(CONTROLLERS)}")
        key, section, field, reset = LIMIT_KEYS[controller]
        value = parse_limit(controller, req.get("value", ""))
        ceiling = self.ceiling.get(key)
        if value is not None and ceiling is not None and value > ceiling:
            raise ContainerError(
                f"{controller} {req.get('value')!r} is above this kernel's ceiling of "
                f"{show(controller, ceiling)} (its kernelspec's limit): use at most that, or max")
        target = ceiling if value is None else value
        if target is None:
            cg.reset(reset)
        elif controller == "memory":
            # memory+swap too, as at start: the same value means swap is no way around it.
            cg.apply(S.Resources(memory=target, memory_swap=target))
        else:
            cg.apply(S.Resources(**{key: target}))
        effective = cg.stats()[section][field]  # read back from the cgroup's own file
        return {"controller": controller, "limit": effective, "text": show(controller, effective),
                "ceiling": ceiling, "paths": cg.paths()}

    def _set_io(self, cg, req):
        direction = req.get("direction")
        rate = parse_rate(direction, req.get("value", ""))
        major, minor, where = self._io_device(req.get("device"))
        key = "rbps" if direction == "read" else "wbps"
        limits = cg.stats()["io"]["limits"]
        if rate is None:
            # The drivers lift io limits all at once: lift them, then put back the others.
            cg.reset("io")
            reads, writes = [], []
            for rule in limits:
                for k, out in (("rbps", reads), ("wbps", writes)):
                    if rule[k] and ((rule["major"], rule["minor"]) != (major, minor) or k != key):
                        out.append(S.IOLimit(f"{rule['major']}:{rule['minor']}", rule["major"],
                                             rule["minor"], rule[k]))
            cg.apply(S.Resources(io_read_bps=tuple(reads), io_write_bps=tuple(writes)))
        else:
            limit = (S.IOLimit(where, major, minor, rate),)
            cg.apply(S.Resources(**{f"io_{direction}_bps": limit}))
        rule = next((r for r in cg.stats()["io"]["limits"]
                     if (r["major"], r["minor"]) == (major, minor)), {})
        effective = rule.get(key)
        return {"controller": "io", "direction": direction, "device": f"{major}:{minor}",
                "device_of": where, "limit": effective, "text": show("io", effective)}

    def _io_device(self, device):
        """The whole disk to throttle: the one named, or the one holding the workspace."""
        if device:
            major, minor = S.block_device(device, "io device")
            return major, minor, str(device)
        cwd = self.container.spec.process.cwd
        dev = os.stat(cwd).st_dev
        if os.major(dev) == 0:
            raise ContainerError(f"io: the workspace {cwd} is on a filesystem with no block device "
                                 "(tmpfs, overlay, btrfs...): name a disk, e.g. io write 10M/s /dev/sda")
        major, minor = S.block_device(f"{os.major(dev)}:{os.minor(dev)}", "io device")
        return major, minor, cwd

    def op_ps(self, req):
        import psutil  # only here: the launcher's start path stays light
        cg = self.container.cgroup
        if cg:
            pids = cg.procs(recursive=True)
        else:  # rootless without a cgroup: init and everything below it
            pids, todo = [], [self.container.init_pid]
            while todo:
                pid = todo.pop()
                pids.append(pid)
                todo += procfs.children(pid)
        procs = []
        for pid in pids:
            try:
                p = psutil.Process(pid)
                with p.oneshot():
                    procs.append({
                        "host_pid": pid, "pid": _nspid(pid), "ppid": _nspid(p.ppid()),
                        "user": p.username(), "uids": list(p.uids())[:1],
                        "rss": p.memory_info().rss, "status": p.status(),
                        "cpu_s": round(sum(p.cpu_times()[:2]), 2),
                        "cmdline": p.cmdline() or [f"[{p.name()}]"],
                        "cgroup": _cgroup_of(pid, self.container.spec.id),
                    })
            except psutil.Error:
                continue  # it exited while we looked
        procs.sort(key=lambda p: (p["pid"] is None, p["pid"] or 0))
        return {"processes": procs}

    def op_sandbox(self, req):
        """A child cgroup with tighter limits, and the kernel's fork (its PID inside) moved in."""
        cg = self._cgroup()
        inner = req.get("pid")
        if not isinstance(inner, int) or isinstance(inner, bool) or inner < 3:
            raise ContainerError(f"invalid pid {inner!r}: give the PID (inside) of a fork of the "
                                 "kernel (init is 1 and the kernel 2: they stay put)")
        stats = cg.stats()
        limits = {}
        for controller, key in (("memory", "memory"), ("cpu", "cpus"), ("pids", "pids")):
            text = req.get(key)
            if text is None:
                continue
            value = parse_limit(controller, text)
            _, section, field, _ = LIMIT_KEYS[controller]
            current = stats[section][field]
            if value is None:
                continue
            if current is not None and value > current:
                raise ContainerError(
                    f"{key}={show(controller, value)} is above the container's own limit of "
                    f"{show(controller, current)}: a sandbox can only be tighter")
            limits[key] = value
        kernel = {inner_pid: host for host, inner_pid in self._kernel()}.get(2)
        host = None
        for pid in cg.procs(recursive=True):
            if _nspid(pid) == inner and _ppid(pid) == kernel:
                host = pid
                break
        if host is None:
            raise ContainerError(f"no process with PID {inner} that is a child of the kernel "
                                 "in this container")
        self.counter += 1
        name = f"sandbox-{self.counter}"
        memory = limits.get("memory")
        child = cg.create_child(name, S.Resources(memory=memory, memory_swap=memory,
                                                  cpus=limits.get("cpus"), pids=limits.get("pids")))
        self.sandboxes[name] = child
        try:
            child.add(host)
        except ContainerError:
            self.sandboxes.pop(name).destroy()
            raise
        stats = child.stats()
        return {"name": name, "host_pid": host, "paths": child.paths(),
                "limits": {k: stats[s][f] for k, (_, s, f, _) in LIMIT_KEYS.items()}}

    def op_sandbox_end(self, req):
        name = req.get("name")
        if name not in self.sandboxes:
            raise ContainerError(f"no sandbox {str(name)[:40]!r}: "
                                 f"live ones: {', '.join(self.sandboxes) or 'none'}")
        child = self.sandboxes.pop(name)
        stats = child.stats()
        left = child.procs(recursive=True)
        child.destroy()  # kills what the cell left running in it
        return {"name": name, "stats": stats, "killed_left": len(left),
                "removed": not any(os.path.exists(d) for d in child.paths().values())}


# ---- reading /proc on the host ----------------------------------------------------------------

def _nspid(pid):
    """A host PID -> the PID the process has in its own (innermost) PID namespace."""
    values = (procfs.status_field("NSpid", pid) or "").split()
    return int(values[-1]) if values else None


def _ppid(pid):
    values = (procfs.status_field("PPid", pid) or "").split()
    return int(values[0]) if values else None


def _cgroup_of(pid, cid):
    """The process's cgroup relative to the container's: "/", "/main" or "/sandbox-1"."""
    marker = f"/{cgroups.PARENT}/{cid}"
    for line in (procfs.read(f"/proc/{pid}/cgroup") or "").splitlines():
        path = line.split(":", 2)[-1]
        head, found, tail = path.partition(marker)
        if found and (not tail or tail.startswith("/")):
            return tail or "/"
    return "?"
