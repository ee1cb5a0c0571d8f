"""%%sandbox: one cell in a disposable fork of the kernel, in a tighter child cgroup.

The kernel forks; the launcher (over the control socket) makes a child cgroup of
the container with the limits asked and moves the fork in; only then does the
fork run the cell, with its output piped back here as it comes. When it ends,
the launcher removes the child cgroup (sandbox_end), killing what the cell left.
A cell that hits a limit dies alone: the kernel and its variables are untouched.
"""

import ast
import gc
import os
import select
import signal
import sys

from .. import protocol
from ..runtime.spec import human_bytes
from . import client


def run_sandboxed(shell, cell, limits):
    """Fork the kernel, have the launcher put the fork in a child cgroup, run the cell there.

    limits: {"memory": bytes, "cpu": CPUs, "pids": N}, the ones given (args.parse_sandbox).
    Returns (the fork's wait status, or None if it was stopped; the launcher's
    protocol.SandboxEnd with the sandbox's final counters, or None). Raises
    protocol.ControlError if the launcher refused the sandbox. The kernel has threads
    (ZeroMQ, heartbeat, iopub): in the fork only this one exists, so the fork runs
    the cell's code and writes to pipes, nothing else, and leaves with os._exit.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else the fork would send buffered output a second time
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _sandbox_child(shell, cell, out_w, err_w, go_r, (out_r, err_r, go_w))
    for fd in (out_w, err_w, go_r):
        os.close(fd)
    name = status = None
    try:
        reply = client.request("sandbox", pid=pid, **{k: str(v) for k, v in limits.items()})
        name = reply.name
        os.write(go_w, b"go")  # only now: the fork is in its cgroup before it runs anything
        os.close(go_w)
        go_w = None
        _pump({out_r: sys.stdout, err_r: sys.stderr}, pid)
        status = os.waitpid(pid, 0)[1]
    finally:
        if status is None:  # interrupted, or the launcher said no: the fork must not run on
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for fd in (out_r, err_r, go_w):
            if fd is not None:
                os.close(fd)
        end = None
        if name:
            try:
                end = client.request("sandbox_end", name=name)
            except protocol.ControlError as e:
                print(f"%%sandbox: {e}", file=sys.stderr)
    return status, end


def _pump(streams, pid):
    """Copy the fork's stdout and stderr to the cell's, as they come, until the fork exits.

    Not until EOF: a process the cell started in the background holds the pipes
    open after the fork is gone (sandbox_end kills it). A pidfd becomes readable
    when the process exits (Linux 5.3+; without one, EOF it is).
    """
    import codecs
    decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in streams}
    open_fds = set(streams)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    exited = False
    after = 0  # bytes read since the fork exited: a background writer cannot keep us here
    try:
        while open_fds and after < (1 << 20):
            watch = list(open_fds) + ([pidfd] if pidfd is not None and not exited else [])
            ready, _, _ = select.select(watch, [], [], 0 if exited else None)
            if not ready:
                return  # exited, and all it wrote before is copied
            if pidfd in ready:
                exited = True
            for fd in ready:
                if fd == pidfd:
                    continue
                data = os.read(fd, 65536)
                after += len(data) if exited else 0
                if not data:
                    open_fds.discard(fd)
                text = decoders[fd].decode(data, final=not data)
                if text:
                    streams[fd].write(text)
                    streams[fd].flush()
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _sandbox_child(shell, cell, out_w, err_w, go_r, close_fds):
    """In the fork. Never returns."""
    code = 1
    try:
        for fd in close_fds:
            os.close(fd)
        os.dup2(out_w, 1)  # subprocesses and C code write to fds 1 and 2: the pipes too
        os.dup2(err_w, 2)
        sys.stdout = os.fdopen(os.dup(1), "w", buffering=1)
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
        # The parent's objects are frozen out of the cyclic GC: no finalizer of theirs
        # (a ZeroMQ socket's) runs here, and GC does not touch (copy, and charge to the
        # sandbox) every page of the kernel's heap.
        gc.freeze()
        # display() would go to the kernel's ZeroMQ sockets, whose threads are not here.
        shell.display_pub.publish = _publish_as_text
        if os.read(go_r, 2) != b"go":  # the parent gave up: run nothing
            os._exit(1)
        code = _run_cell(shell, cell)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException as e:
        _print_exception(e)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _publish_as_text(data, metadata=None, *args, **kwargs):
    print(data.get("text/plain", "<%s>" % ", ".join(data)))


def _run_cell(shell, cell):
    """Execute like a cell: magics transformed, the last expression's value shown."""
    source = shell.transform_cell(cell)
    tree = ast.parse(source, "<sandbox>")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    ns = shell.user_ns
    try:
        exec(compile(tree, "<sandbox>", "exec"), ns)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<sandbox>", "eval"), ns)
            if value is not None:
                print(repr(value))
    except SystemExit:
        raise
    except BaseException as e:
        _print_exception(e)
        return 1
    return 0


def _print_exception(e):
    import traceback
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<sandbox>":
        tb = tb.tb_next  # the cell's frames only, not this module's
    sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)))


def sandbox_notice(status, end):
    """What happened to the fork, in one line; None for a normal end."""
    mem = end.stats.memory if end is not None and end.stats is not None else None
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    if mem is not None and mem.oom_kills:
        limit = human_bytes(mem.limit) if mem.limit else "the container's memory limit"
        peak = human_bytes(mem.peak or mem.usage)
        if code == -signal.SIGKILL:
            return (f"%%sandbox: the cell was killed by the OOM killer at {limit} (peak {peak}); "
                    "the kernel and its variables are untouched.")
        return f"%%sandbox: the OOM killer killed {mem.oom_kills} process(es) of the cell at {limit}."
    if code is not None and code < 0:
        name = {int(sig): sig.name for sig in signal.Signals}.get(-code, "a real-time signal")
        return f"%%sandbox: the cell was killed by signal {-code} ({name})."
    if code not in (None, 0, 1):
        return f"%%sandbox: the cell exited with code {code}."
    return None



def notices(status, end):
    """The lines for the cell's stderr once the fork is gone: how it ended, what was killed."""
    out = [sandbox_notice(status, end)]
    if end is not None and end.killed_left:
        out.append(f"%%sandbox: {end.killed_left} process(es) the cell left running were killed "
                   "with the sandbox.")
    return [line for line in out if line]
