"""`container-kernel kernel ... -f CONNECTION_FILE`: what kernel.json's argv runs.

It is the container launcher for one ipykernel, in four steps:
- prepare: read the argv (kernelspec.read_argv, the kernelspec's one source of
  truth) and the connection file, choose the sockets, build the kernel's Spec.
  The connection crosses the network namespace over ZeroMQ ipc sockets in a
  socket dir bound into the container (no proxy); a client that wrote a TCP
  connection file gets a byte relay from its TCP ports (relay.py). The notebook's
  directory (our cwd) is bound read-write at the same path, and the environment
  is built: only what the kernel needs, and what the kernelspec's "env" names.
- start: create the container (or, where the kernelspec allows it and the host
  cannot contain, exec a plain kernel, loudly NOT contained);
- serve: the relay and the control server (control.py) for the magics;
- finish: wait; when the kernel died for a reason of its own (OOM killer, a
  signal, an exit code) leave a one-line record beside the connection file that
  the next kernel of the same connection shows at its first execution; clean up.
"""

import json
import os
import select
import _signal  # the C module under signal: no enum import on the start path
import sys
from collections import namedtuple

from .. import protocol as P
from ..runtime import launcher, mounts, rundir, warm
from ..runtime import spec as S
from ..runtime import syscalls as sc
from ..runtime.errors import RUNTIME, ContainerError, usage
from ..runtime.paths import under
from . import kernelspec, packages

# What ipykernel itself reads from the environment, passed on when set.
PASS_ENV = ("JPY_SESSION_NAME",)
STATUS = "status"
READY = "ready"  # made by the kernel's extension once loaded (protocol.READY_ENV)


class Prepared(namedtuple("Prepared", "args spec env conn inner sockets own_sockets inner_file "
                          "record control_path")):
    """What prepare() decided. env: what passes into the kernel beyond the spec's defaults;
    own_sockets: the socket dir is ours (a TCP client), not the provisioner's; record: the
    exit record's path; inner: the connection the kernel binds inside (ipc)."""
    __slots__ = ()


PARENT_PID = "1"  # JPY_PARENT_PID: the kernel's parent is our init (prepare says why)


def template_env():
    """What a warm-start template (template.py) is exec'd with: what every kernel's
    environment holds that an interpreter reads as it starts or imports ipykernel
    (HOME, JPY_PARENT_PID, PYTHONPATH, the locale). warm.eligible checks the rest."""
    return dict(S.default_env("template", S.home_for(0)), JPY_PARENT_PID=PARENT_PID,
                PYTHONPATH=packages.NOTICE_DIR)


def exit_record_path(connection_file):
    return os.path.splitext(connection_file)[0] + ".container-exit"


def describe_exit(code, memory):
    """The notice the next kernel shows (memory: the cgroup's final Memory stats, or
    None); None for a normal exit."""
    import signal
    names = {int(s): s.name for s in signal.Signals}
    if memory and memory.oom_kills and code == 128 + signal.SIGKILL:
        return (f"The previous kernel was killed by the OOM killer: memory limit "
                f"{S.human_bytes(memory.limit)} reached (peak {S.human_bytes(memory.peak or memory.usage)}).")
    if code > 128 and code - 128 in names:
        return f"The previous kernel died: killed by signal {code - 128} ({names[code - 128]})."
    if code != 0:
        return f"The previous kernel died: it exited with code {code}."
    return None


def socket_path(run_base, name):
    """A short directory for the ipc sockets: unix socket paths must stay <= 107 bytes."""
    path = os.path.join(run_base, name)
    if len(os.path.join(path, "k-65535")) > 107:  # sun_path is 108 bytes with its NUL
        raise ContainerError(f"the socket dir {path!r} is too long for unix socket paths "
                             "(107 bytes at most): set XDG_RUNTIME_DIR to a shorter dir")
    return path


def socket_dir(run_base, name):
    """Make the socket dir (socket_path), owned by this process: stale when it is gone."""
    path = socket_path(run_base, name)
    rundir.make_run_base(run_base)
    rundir.make_owned_dir(path)
    return path


def kernelspec_env_names(resource_dir):
    """The variables the kernelspec's "env" sets: the only host values that pass in."""
    try:
        with open(os.path.join(resource_dir, "kernel.json")) as f:
            return list(json.load(f).get("env") or {})
    except (OSError, ValueError, TypeError):
        return []


# ---- prepare ---------------------------------------------------------------------------------

def prepare(argv, cwd=None):
    """cwd: where to start (a warm start's launcher is forked where its template runs)."""
    args = kernelspec.read_argv(argv)
    try:
        if cwd is not None:
            os.chdir(cwd)
        cwd = os.getcwd()
    except FileNotFoundError:
        raise ContainerError("the notebook's directory has been deleted: there is no working "
                             "directory to start the kernel in (reopen the notebook from one "
                             "that exists)") from None
    if not args.connection_file:
        raise usage("kernel: -f CONNECTION_FILE is required (kernel.json passes {connection_file})")
    connection_file = os.path.abspath(args.connection_file)
    try:
        with open(connection_file) as f:
            conn = json.load(f)
    except (OSError, ValueError) as e:
        raise usage(f"kernel: cannot read the connection file {connection_file!r}: {e}") from None

    env = [(name, os.environ[name]) for name in PASS_ENV + tuple(
        kernelspec_env_names(args.resource_dir or "")) if name in os.environ]
    record = exit_record_path(connection_file)
    try:
        with open(record) as f:
            env.append((P.PREVIOUS_EXIT_ENV, f.read().strip()))
        os.unlink(record)
    except OSError:
        pass

    cid = S.parse_id(os.environ.get("CK_CONTAINER_ID") or S.new_id(), "CK_CONTAINER_ID")
    own_sockets = conn.get("transport", "tcp") != "ipc"
    if own_sockets:  # a TCP client: the kernel binds ipc sockets of ours, we relay TCP to them
        sockets = socket_path(S.default_run_base(os.geteuid() != 0), f"k-{cid}")
        inner = dict(conn, transport="ipc", ip=os.path.join(sockets, "k"),
                     shell_port=1, iopub_port=2, stdin_port=3, control_port=4, hb_port=5)
    else:  # the provisioner chose ipc sockets in a dir of its own
        sockets = os.path.dirname(conn["ip"])
        inner = conn
    inner_file = os.path.join(sockets, f"connection-{cid}.json")

    volumes = [S.Volume(sockets, sockets, False)]
    if cwd != "/" and not any(under(cwd, d) for d in mounts.SYSTEM_DIRS):
        volumes.append(S.Volume(cwd, cwd, False))  # the notebook's dir, read-write
    command = [sys.executable, "-m", "ipykernel_launcher", "-f", inner_file, "--ext", "container_kernel",
               *args.ipykernel_args]
    # The kernel's parent really is PID 1 (our init). ipykernel then neither polls its
    # parent (it would see init and quit: "Parent appears to have exited") nor prints
    # the console-only connection banner. Die-with-parent is done by the launcher.
    env.append(("JPY_PARENT_PID", PARENT_PID))
    env.append((P.READY_ENV, os.path.join(sockets, READY)))
    control_path = os.path.join(sockets, f"control-{cid}.sock")  # beside the kernel's sockets
    spec = S.build(args.options, command, volumes=volumes,
                   env=env + [(P.CONTROL_ENV, control_path)], cwd=cwd, cid=cid)
    if spec.rootfs.kind == "overlay":
        spec = in_image(spec)
    spec = packages.with_layer(spec, args.resource_dir,  # what %pip installs (packages.py)
                               IMAGE_PYTHONPATH if spec.rootfs.kind == "overlay" else None)
    # Only now, with every input checked, does anything get made.
    packages.make_layer(spec)
    if own_sockets:
        socket_dir(S.default_run_base(os.geteuid() != 0), f"k-{cid}")
    try:
        with open(os.open(inner_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump(inner, f)
    except OSError as e:
        _remove(sockets if own_sockets else inner_file)
        raise ContainerError(f"cannot write {inner_file}: {e.strerror}") from None
    return Prepared(args, spec, tuple(env), conn, inner, sockets, own_sockets, inner_file, record,
                    control_path)


# A rootfs of the store has its own Python; our package, pure Python, is bound in read-only.
IMAGE_PYTHON = "/usr/bin/python3"
IMAGE_PYTHONPATH = "/run/container-kernel/python"


def in_image(spec):
    """The kernel's spec on an overlay rootfs: the image's interpreter runs ipykernel, and
    finds the container_kernel extension under IMAGE_PYTHONPATH (a tmpfs, not the layer)."""
    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = spec.process._replace(
        args=(IMAGE_PYTHON,) + spec.process.args[1:],
        # Debian's debugpy warns on every start that Python's frozen modules hide breakpoints.
        env=spec.process.env + (("PYTHONPATH", IMAGE_PYTHONPATH),
                                ("PYDEVD_DISABLE_FILE_VALIDATION", "1")))
    volume = S.Volume(package, os.path.join(IMAGE_PYTHONPATH, "container_kernel"), True)
    return spec._replace(process=process, volumes=spec.volumes + (volume,))


# ---- start, serve, finish ----------------------------------------------------------------------

class Server:
    """The Jupyter server that started us, and how we learn that it is gone.

    PR_SET_PDEATHSIG signals us when the *thread* that forked us exits, not the
    process: a SIGKILLed server's threads die one by one, and each death re-parents
    us to a surviving thread and signals us again, while getppid() still names the
    server. So the signal is one of its own (not SIGTERM, which jupyter_client sends
    to stop a kernel), blocked and only ever a hint: the server is gone when we have
    a new parent, or its pidfd says the whole process has exited."""

    SIGNAL = _signal.SIGRTMIN + 2  # glibc keeps the first two real-time signals

    def __init__(self, pid=None):
        """pid: the server's, when it is not our parent (a warm start's template is)."""
        _signal.pthread_sigmask(_signal.SIG_BLOCK, {self.SIGNAL})  # ours to wait for
        self.parent = os.getppid()
        self.pid = pid or self.parent
        sc.prctl(sc.PR_SET_PDEATHSIG, self.SIGNAL)
        try:
            self.pidfd = os.pidfd_open(self.pid)
        except OSError:  # before Linux 5.3, or the server is already gone: getppid() says
            self.pidfd = None
        self.hinted = False  # the signal came: some thread of the server has ended

    def gone(self, within=0.0):
        """Is the whole server process gone? Waits up to `within` seconds for it."""
        if self.parent == self.pid and os.getppid() != self.pid:
            return True  # (a warm start's parent is the template: only the server's pidfd counts)
        if self.pidfd is None:
            return False
        return bool(select.select([self.pidfd], [], [], within)[0])

    def translate(self, signo):
        """For Container.wait: our signal becomes SIGKILL for the kernel when the server is
        gone (no one waits for a clean exit), nothing when one of its threads ended."""
        if signo != self.SIGNAL:
            return signo
        self.hinted = True
        return _signal.SIGKILL if self.gone() else None

    def was_lost(self):
        """After the kernel ended: did the server die? A hint still pending gets a second
        to come true, as a SIGKILLed server's last threads are still exiting."""
        if not self.hinted:
            self.hinted = bool(_signal.sigtimedwait({self.SIGNAL}, 0))
        return self.gone(within=1.0 if self.hinted else 0.0)


def cmd_kernel(argv, seed=None, cwd=None, server=None, warm_reads=()):
    """seed, cwd, server, warm_reads: a warm start's (template.py): the intermediate stage
    forked at our birth, where to start, the server's pid (our parent is the template),
    the variables the template's imports read."""
    # Die with the Jupyter server, but clean up first (Server says how we know it died).
    server_watch = Server(server)
    if server_watch.gone():
        return RUNTIME
    try:
        p = prepare(argv, cwd)
    except ContainerError as e:
        if seed is not None:
            seed.cancel()
        _tell_the_provisioner(argv, e)
        raise
    if seed is not None and warm.eligible(p.spec.process, p.spec.rootfs.kind, warm_reads) is None:
        # The kernel runs on in the template's interpreter (runtime/warm.py).
        p = p._replace(spec=p.spec._replace(process=p.spec.process._replace(warm=True)))
    # Ours to remove if we die: a TCP client's socket dir, or our file in the provisioner's.
    container = launcher.Container(p.spec, memory_above_start=True, seed=seed,
                                   also_remove=[p.sockets if p.own_sockets else p.inner_file])
    relay = server = None
    try:
        try:
            container.start()
        except ContainerError as e:
            if e.exit_code == RUNTIME and p.args.allow_unconfined:
                write_status(p.sockets, f"unconfined {e}")
                _remove(p.sockets if p.own_sockets else p.inner_file)
                container.cleanup()  # its seed too, before the exec
                return _run_unconfined(p, str(e))
            write_status(p.sockets, f"error {e}")
            raise
        write_status(p.sockets, "started")
        relay, server = serve(p, container)
        return finish(p, container, server_watch)
    finally:
        if server:
            server.stop()
        container.cleanup()
        if relay:
            relay.stop()
        _remove(p.sockets if p.own_sockets else p.inner_file)
        if server_watch.was_lost():
            _after_the_server(p)


def _after_the_server(p):
    """The Jupyter server died (SIGKILL: it cleaned nothing): what it would have removed,
    its socket dir and the connection file it wrote, is ours to remove, as no one else will."""
    if not p.own_sockets and not rundir.owner_alive(p.sockets):
        rundir.remove_tree(p.sockets)
    rundir.remove_tree(os.path.abspath(p.args.connection_file))


def serve(p, container):
    """The TCP relay (a TCP client only) and the control server. Threads, so only now:
    the stages are forked."""
    relay = server = None
    if p.own_sockets:
        from .relay import CHANNELS, Relay
        routes = [(p.conn["ip"], p.conn[f"{ch}_port"], f"{p.inner['ip']}-{p.inner[f'{ch}_port']}")
                  for ch in CHANNELS]
        relay = Relay(routes).start()
    try:
        from .control import ControlServer  # imported while the kernel starts inside, not before
        server = ControlServer(container, P.Ceiling.of(p.spec.resources), p.control_path).start()
    except OSError as e:  # the kernel runs on; its magics say they cannot reach us
        os.write(2, f"container-kernel: kernel {p.spec.id}: no control socket: {e}\n".encode())
    return relay, server


def finish(p, container, server_watch):
    code = container.wait(server_watch.translate, listen={Server.SIGNAL})
    stats = container.report_oom(code)
    notice = describe_exit(code, stats.memory if stats else None)
    if notice and not container.stop_requested:
        with open(p.record, "w") as f:
            f.write(notice + "\n")
        os.write(2, f"container-kernel: kernel {p.spec.id}: {notice}\n".encode())
    return code


def _tell_the_provisioner(argv, error):
    """A start that failed before the container: the provisioner still hears why (its
    socket dir is named by the connection file), so the UI shows it, not "kernel died"."""
    try:
        with open(kernelspec.read_argv(argv).connection_file) as f:
            conn = json.load(f)
        if conn.get("transport") == "ipc":
            write_status(os.path.dirname(conn["ip"]), f"error {error}")
    except (OSError, ValueError, TypeError, KeyError, ContainerError):
        pass  # no word for it: jupyter_client reports a dead kernel, the log says why


def write_status(sockets, line):
    """Tell the provisioner how the start went: "started", "error MESSAGE" or "unconfined WHY".

    It waits for this file, so a container that cannot start becomes the error of
    the start request, which JupyterLab shows, rather than a kernel that "died"."""
    path = os.path.join(sockets, STATUS)
    with open(path + ".tmp", "w") as f:
        f.write(line.replace("\n", " ") + "\n")
    os.rename(path + ".tmp", path)


def _remove(path):
    rundir.remove_tree(path)  # a dir or a file; gone already (our reaper was first) is done


def _run_unconfined(p, reason):
    """Degraded mode, only when the kernelspec allows it: a plain ipykernel, loudly marked."""
    os.write(2, f"container-kernel: WARNING: this kernel is NOT contained: {reason}\n".encode())
    child_env = dict(os.environ)
    child_env.update(p.env)
    child_env[P.UNCONFINED_ENV] = reason
    # A plain kernel dies with the server as a plain kernel would not, but as ours does.
    sc.prctl(sc.PR_SET_PDEATHSIG, _signal.SIGTERM)
    _signal.pthread_sigmask(_signal.SIG_SETMASK, [])
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f",
                               os.path.abspath(p.args.connection_file), "--ext", "container_kernel",
                               *p.args.ipykernel_args], child_env)
