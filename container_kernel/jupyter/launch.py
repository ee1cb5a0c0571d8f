"""`container-kernel kernel ... -f CONNECTION_FILE`: what kernel.json's argv runs.

It is the container launcher for one ipykernel:
- the kernel's connection crosses the network namespace over ZeroMQ ipc sockets
  in a socket dir bind-mounted into the container (no proxy); a client that
  wrote a TCP connection file gets a byte relay from its TCP ports (forwarder.py);
- the notebook's directory (our cwd) is bound read-write at the same path;
- the kernel's environment is built: only what it needs, and what the
  kernelspec's "env" names;
- when the kernel dies for a reason of its own (OOM killer, a signal, an exit
  code) a one-line record is left beside the connection file, and the next
  kernel of the same connection shows it at its first execution.
"""

import json
import os
import _signal  # the C module under signal: no enum import on the start path
import sys

from .. import cli
from ..runtime import launcher, mounts
from ..runtime import spec as S
from ..runtime import syscalls as sc
from ..runtime.errors import RUNTIME, ContainerError, usage

KERNEL_FLAGS = ("--allow-unconfined",)
KERNEL_EXTRAS = ("-f", "--resource-dir")
# What ipykernel itself reads from the environment, passed on when set.
PASS_ENV = ("JPY_SESSION_NAME",)
STATUS = "status"
CONTROL_ENV = "CK_CONTROL"  # control.ENV: where the kernel finds the launcher's control socket


def exit_record_path(connection_file):
    return os.path.splitext(connection_file)[0] + ".container-exit"


def describe_exit(code, oom_kills, limit, peak):
    """The notice the next kernel shows; None for a normal exit."""
    import signal
    names = {int(s): s.name for s in signal.Signals}
    if oom_kills and code == 128 + signal.SIGKILL:
        return (f"The previous kernel was killed by the OOM killer: memory limit "
                f"{S.human_bytes(limit)} reached (peak {S.human_bytes(peak)}).")
    if code > 128 and code - 128 in names:
        return f"The previous kernel died: killed by signal {code - 128} ({names[code - 128]})."
    if code != 0:
        return f"The previous kernel died: it exited with code {code}."
    return None


def socket_dir(run_base, name):
    """A short directory for the ipc sockets: unix socket paths must stay <= 107 bytes."""
    path = os.path.join(run_base, name)
    if len(os.path.join(path, "k-65535")) > 107:  # sun_path is 108 bytes with its NUL
        raise ContainerError(f"the socket dir {path!r} is too long for unix socket paths "
                             "(107 bytes at most): set XDG_RUNTIME_DIR to a shorter dir")
    launcher.make_run_base(run_base)
    os.mkdir(path, 0o700)
    launcher.write_owner(path)
    return path


def kernelspec_env_names(resource_dir):
    """The variables the kernelspec's "env" sets: the only host values that pass in."""
    try:
        with open(os.path.join(resource_dir, "kernel.json")) as f:
            return list(json.load(f).get("env") or {})
    except (OSError, ValueError, TypeError):
        return []


def parse(argv):
    try:
        values, flags, extra, rest = cli.parse_options(argv, flags=KERNEL_FLAGS, extras=KERNEL_EXTRAS)
    except ContainerError as e:
        raise usage(f"kernel: {e}") from None
    if rest:
        raise usage(f"kernel: unexpected argument {rest[0]!r}: the kernel's command is ipykernel")
    if "-f" not in extra:
        raise usage("kernel: -f CONNECTION_FILE is required (kernel.json passes {connection_file})")
    return values, flags, extra


def cmd_kernel(argv):
    values, flags, extra = parse(argv)
    connection_file = os.path.abspath(extra["-f"])
    try:
        with open(connection_file) as f:
            conn = json.load(f)
    except (OSError, ValueError) as e:
        raise usage(f"kernel: cannot read the connection file {connection_file!r}: {e}") from None

    # Die with the Jupyter server: SIGTERM, so we still clean up (forwarded to the kernel).
    parent = os.getppid()
    sc.prctl(sc.PR_SET_PDEATHSIG, _signal.SIGTERM)
    if os.getppid() != parent:
        return RUNTIME

    env = [(name, os.environ[name]) for name in PASS_ENV + tuple(
        kernelspec_env_names(extra.get("--resource-dir", ""))) if name in os.environ]
    record = exit_record_path(connection_file)
    try:
        with open(record) as f:
            env.append(("CK_PREVIOUS_EXIT", f.read().strip()))
        os.unlink(record)
    except OSError:
        pass

    cid = os.environ.get("CK_CONTAINER_ID") or S.new_id()
    rootless = os.geteuid() != 0
    run_base = S.default_run_base(rootless)
    own_sockets = conn.get("transport", "tcp") != "ipc"
    if own_sockets:  # a TCP client: the kernel binds ipc sockets of ours, we relay TCP to them
        sockets = socket_dir(run_base, f"k-{cid}")
        inner = dict(conn, transport="ipc", ip=os.path.join(sockets, "k"),
                     shell_port=1, iopub_port=2, stdin_port=3, control_port=4, hb_port=5)
    else:  # the provisioner chose ipc sockets in a dir of its own
        sockets = os.path.dirname(conn["ip"])
        inner = conn
    inner_file = os.path.join(sockets, f"connection-{cid}.json")
    with open(os.open(inner_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(inner, f)

    cwd = os.getcwd()
    volumes = [S.Volume(sockets, sockets, False)]
    if cwd != "/" and not any(mounts.under(cwd, d) for d in mounts.SYSTEM_DIRS):
        volumes.append(S.Volume(cwd, cwd, False))  # the notebook's dir, read-write
    command = [sys.executable, "-m", "ipykernel_launcher", "-f", inner_file, "--ext", "container_kernel"]
    ceiling = {k: v[2] for k, v in values.items() if k in ("memory", "cpus", "pids")}
    env.append(("CK_CEILING", json.dumps(ceiling)))
    # The kernel's parent really is PID 1 (our init). ipykernel then neither polls its
    # parent (it would see init and quit: "Parent appears to have exited") nor prints
    # the console-only connection banner. Die-with-parent is done by the launcher.
    env.append(("JPY_PARENT_PID", "1"))
    # The launcher's control socket (control.py), for the magics: beside the kernel's sockets.
    control_path = os.path.join(sockets, f"control-{cid}.sock")
    spec = cli.build_spec(values, command, volumes=volumes, env=env + [(CONTROL_ENV, control_path)],
                          cwd=cwd, cid=cid)

    container = launcher.Container(spec, memory_above_start=True)
    forwarder = server = None
    try:
        try:
            container.start()
        except ContainerError as e:
            if e.exit_code == RUNTIME and "--allow-unconfined" in flags:
                write_status(sockets, f"unconfined {e}")
                _remove(sockets if own_sockets else inner_file)
                return _run_unconfined(connection_file, env, str(e))
            write_status(sockets, f"error {e}")
            raise
        write_status(sockets, "started")
        if own_sockets:
            from .forwarder import CHANNELS, Forwarder
            routes = [(conn["ip"], conn[f"{ch}_port"], f"{inner['ip']}-{inner[f'{ch}_port']}")
                      for ch in CHANNELS]
            forwarder = Forwarder(routes).start()
        try:  # a thread, so only now: the stages are forked
            from . import control  # imported while the kernel starts inside, not before
            server = control.ControlServer(container, ceiling, control_path).start()
        except OSError as e:  # the kernel runs on; its magics say they cannot reach us
            os.write(2, f"container-kernel: kernel {cid}: no control socket: {e}\n".encode())
        code = container.wait()
        stats = container.report_oom(code) or {}
        mem = stats.get("memory") or {}
        notice = describe_exit(code, mem.get("oom_kills"), mem.get("limit"),
                               mem.get("peak") or mem.get("usage"))
        if notice and not container.stop_requested:
            with open(record, "w") as f:
                f.write(notice + "\n")
            os.write(2, f"container-kernel: kernel {cid}: {notice}\n".encode())
        return code
    finally:
        if server:
            server.stop()
        container.cleanup()
        if forwarder:
            forwarder.stop()
        _remove(sockets if own_sockets else inner_file)


def write_status(sockets, line):
    """Tell the provisioner how the start went: "started", "error MESSAGE" or "unconfined WHY".

    It waits for this file, so a container that cannot start becomes the error of
    the start request, which JupyterLab shows, rather than a kernel that "died"."""
    path = os.path.join(sockets, STATUS)
    with open(path + ".tmp", "w") as f:
        f.write(line.replace("\n", " ") + "\n")
    os.rename(path + ".tmp", path)


def _remove(path):
    if os.path.isdir(path):
        launcher.remove_tree(path)
    elif os.path.exists(path):
        os.unlink(path)


def _run_unconfined(connection_file, env, reason):
    """Degraded mode, only when the kernelspec allows it: a plain ipykernel, loudly marked."""
    os.write(2, f"container-kernel: WARNING: this kernel is NOT contained: {reason}\n".encode())
    child_env = dict(os.environ)
    child_env.update(env)
    child_env["CK_UNCONFINED"] = reason
    os.execve(sys.executable, [sys.executable, "-m", "ipykernel_launcher", "-f", connection_file,
                               "--ext", "container_kernel"], child_env)
