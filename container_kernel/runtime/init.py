"""PID 1 inside the container: a tiny reaping init, like tini or bubblewrap's do_init.

Why not run the payload as PID 1 itself? PID 1 is special:
- orphans are re-parented to it, and a payload that never calls wait() leaves zombies;
- the kernel does not deliver signals to PID 1 that it has no handler for, so a
  plain `python` as PID 1 ignores SIGTERM;
- when PID 1 exits, the kernel kills every process in the namespace.
So init reaps everything, forwards signals to the payload (PID 2), and exits with
the payload's status. It waits with sigwaitinfo() on a blocked signal set rather
than with handlers: no signal can slip between fork() and the wait.
"""

import errno
import os
import select
from collections import namedtuple
# The C module under `signal` (which only wraps it to hand out IntEnums): importing
# enum would cost ~2.5 ms of a container's start.
import _signal as signal

from . import capabilities, mounts, network, stages, warm
from . import syscalls as sc
from .errors import NOT_EXECUTABLE, NOT_FOUND, RUNTIME, ContainerError

FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT,
             signal.SIGUSR1, signal.SIGUSR2)
WAITED = set(FORWARDED) | {signal.SIGCHLD}


def exit_code(status):
    """A wait status as a shell reports it: the exit code, or 128+N when killed by signal N."""
    code = os.waitstatus_to_exitcode(status)
    return 128 - code if code < 0 else code


class Payload(namedtuple("Payload", "output seccomp")):
    """What init needs from the launcher beyond the spec: output, the write ends of the
    stdout and stderr pipes (output.py); seccomp, the compiled filter or None."""
    __slots__ = ()


def main(spec, steps, root, from_launcher, to_launcher, payload):
    """Runs in the fork that is PID 1 of the new PID namespace. Never returns."""
    try:
        if not stages.wait_go(from_launcher):  # the launcher has adopted us
            os._exit(RUNTIME)
        # Die with the launcher, even if it is SIGKILLed. Set only now: the signal
        # fires when the *parent* dies, and until the launcher adopted us our parent
        # was the short-lived intermediate stage. Then check it did not die meanwhile.
        sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)
        if select.select([from_launcher], [], [], 0)[0]:  # readable = EOF = launcher gone
            os._exit(RUNTIME)
        sc.set_name("ck-init")
        _stdout_stderr(spec, payload.output)
        if "uts" in spec.namespaces:
            sc.sethostname(spec.hostname)
        if "net" in spec.namespaces:
            network.loopback_up()
        mounts.apply(steps, root)
        _stdin(spec)
        os.setsid()  # own session: a job-control SIGINT to the launcher's group is not doubled here
        if not spec.init:
            _become(spec, payload.seccomp, to_launcher)  # never returns
        pid = _spawn(spec, payload.seccomp)
    except ContainerError as e:
        stages.send_error(to_launcher, e.exit_code, str(e))
        os._exit(e.exit_code)
    except BaseException as e:  # never a traceback from inside: one line to the launcher
        stages.send_error(to_launcher, RUNTIME, f"init failed: {e}")
        os._exit(RUNTIME)
    stages.send(to_launcher, stages.READY)
    os._exit(_reap_until(pid))


def _stdout_stderr(spec, output):
    """fds 1 and 2 of init, and so of the payload: the launcher's pipes, not its host fds.
    stdin goes too, unless interactive (docker run -i): it is reopened after pivot_root."""
    for fd, target in zip(output, (1, 2)):
        os.dup2(fd, target)
        os.close(fd)
    if not spec.process.interactive:
        os.close(0)


def _stdin(spec):
    # Only now, inside the new root: /dev/null opened before pivot_root would be an fd on the
    # host's /dev, a way back out (the CVE-2024-21626 class).
    if not spec.process.interactive:
        fd = os.open("/dev/null", os.O_RDONLY)  # close-on-exec, as Python opens every fd
        if fd == 0:
            os.set_inheritable(0, True)
        else:
            os.dup2(fd, 0)  # dup2 makes it inheritable
            os.close(fd)


# ---- the payload's process setup: one named step each, in this order -------------------------
# (runc's standard_init_linux.go, nsjail's containProc): limits while we may still set
# them, no_new_privs before anything could gain privileges, capabilities while we are
# still root, then the ids, seccomp last (its filter would refuse the calls above), then
# no host fd survives, then exec. Without no_new_privs the kernel takes a filter only
# from a process with CAP_SYS_ADMIN: then it goes in before the capabilities go (runc).

def set_rlimits(spec, setup):
    for which, soft, hard in spec.process.rlimits:
        sc.setrlimit(which, soft, hard)


def set_no_new_privs(spec, setup):
    # Nothing the payload execs (a setuid binary) can gain privileges (prctl(2)).
    if spec.security.no_new_privs:
        sc.prctl(sc.PR_SET_NO_NEW_PRIVS, 1)


def load_seccomp_while_privileged(spec, setup):
    if setup.seccomp is not None and not spec.security.no_new_privs:
        sc.seccomp_load(setup.seccomp)


def drop_capabilities(spec, setup):
    caps = spec.security.capabilities
    capabilities.restrict(capabilities.DEFAULT if caps is None else caps)


def set_ids(spec, setup):
    p = spec.process
    if p.gid != 0 or p.uid != 0:
        # A rootless map denies setgroups (CVE-2014-8989, see idmap).
        sc.set_ids(p.uid, p.gid, _setgroups_allowed())


def load_seccomp(spec, setup):
    if setup.seccomp is not None and spec.security.no_new_privs:
        sc.seccomp_load(setup.seccomp)


def close_fds(spec, setup):
    # No descriptor passes in but 0, 1 and 2 (and the exec error pipe, close-on-exec).
    low = 3
    for fd in sorted(setup.keep_fds):
        if fd >= low:
            sc.closerange(low, fd)
            low = fd + 1
    sc.closerange(low)


class Setup(namedtuple("Setup", "keep_fds seccomp")):
    __slots__ = ()


PROCESS_SETUP = (set_rlimits, set_no_new_privs, load_seccomp_while_privileged, drop_capabilities,
                 set_ids, load_seccomp, close_fds)


def setup_process(spec, setup):
    for step in PROCESS_SETUP:
        step(spec, setup)


def _spawn(spec, seccomp):
    """fork + exec the payload as PID 2; exec errors come back through a CLOEXEC pipe."""
    process = spec.process
    err_r, err_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(err_r)
            _reset_signals()
            os.setsid()  # its own session and process group, as jupyter_client starts a kernel
            os.chdir(process.cwd)
            _check_cwd(process.cwd)
            setup_process(spec, Setup({err_w}, seccomp))
            if process.warm:
                os.close(err_w)  # as a successful exec would: init stops waiting for an error
                warm.run(process)  # never returns
            sc.execvpe(process.args, process.env)
        except OSError as e:
            code = NOT_FOUND if e.errno == errno.ENOENT else NOT_EXECUTABLE
            what = process.cwd if isinstance(e, FileNotFoundError) and e.filename == process.cwd \
                else process.args[0]
            os.write(err_w, f"{code} cannot run {what!r}: {os.strerror(e.errno)}".encode())
            os._exit(code)
        except BaseException as e:
            os.write(err_w, f"{RUNTIME} cannot start the command: {e}".encode())
            os._exit(RUNTIME)
    os.close(err_w)
    message = b""
    while chunk := os.read(err_r, 4096):
        message += chunk
    os.close(err_r)
    if message:
        os.waitpid(pid, 0)
        code, _, text = message.decode().partition(" ")
        raise ContainerError(text, int(code))
    return pid


def _become(spec, seccomp, to_launcher):
    """--no-init: exec the command as PID 1 itself, as docker run does without --init.

    Then nothing reaps orphans (they stay zombies) and the kernel delivers to PID 1
    only the signals it has a handler for: a command that never set one for SIGTERM
    ignores `docker stop` until the SIGKILL. An exec error is told on the container's
    stderr (126/127, as a shell says it): ready is sent before, as nothing is left after."""
    _reset_signals()
    process = spec.process
    os.chdir(process.cwd)
    _check_cwd(process.cwd)
    stages.send(to_launcher, stages.READY)  # before close_fds closes its pipe
    try:
        setup_process(spec, Setup(set(), seccomp))
        if process.warm:
            warm.run(process)  # never returns
        sc.execvpe(process.args, process.env)
    except OSError as e:
        code = NOT_FOUND if e.errno == errno.ENOENT else NOT_EXECUTABLE
        os.write(2, f"container-kernel: cannot run {process.args[0]!r}: {os.strerror(e.errno)}\n".encode())
        os._exit(code)
    except BaseException as e:
        os.write(2, f"container-kernel: cannot start the command: {e}\n".encode())
        os._exit(RUNTIME)


def _reset_signals():
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    # Python ignores SIGPIPE and SIGXFSZ; ignored signals survive exec (like subprocess, restore).
    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def _check_cwd(cwd):
    """The working directory must be inside the new root (the CVE-2024-21626 class: a cwd
    reached through a leaked fd of the host's tree would let the payload walk out)."""
    try:
        here = os.getcwd()  # the kernel says "(unreachable)" for a cwd outside our root
    except OSError:
        here = None
    if here is None or not here.startswith("/") or not os.path.samestat(os.stat("."), os.stat(here)):
        raise ContainerError(f"the working directory {cwd!r} is not inside the container", RUNTIME)


def _setgroups_allowed():
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "allow"
    except OSError:
        return True


def _reap_until(payload):
    """Reap every child; forward signals to the payload; return its exit code when it ends."""
    while True:
        info = signal.sigwaitinfo(WAITED)
        if info.si_signo != signal.SIGCHLD:
            try:
                os.kill(payload, info.si_signo)
            except ProcessLookupError:
                pass
            continue
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            if pid == payload:
                # Leaving now is enough: when PID 1 exits the kernel kills the rest of the namespace.
                return exit_code(status)
