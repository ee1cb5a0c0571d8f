"""Run `python -m MODULE ARGS` in this interpreter, where a container's command would exec it.

A warm start (kernel/template.py) forks each kernel's launcher from a template that
imported ipykernel once, and the launcher's intermediate stage from the launcher at
its birth (seed.py): so init's payload is a copy of an interpreter that holds
ipykernel already, and nothing else. It then runs the module here instead of
exec'ing a new interpreter that would import it all again (~0.2 CPU-s a kernel).
Android starts its apps the same way, forked from a pre-loaded "zygote".

What exec would have reset is reset here, or the start is not warm (eligible()):
- the environment: os.environ becomes the command's (the C environ with it);
- sys.argv, sys.orig_argv and sys.path[0] (the cwd, as `-m` puts it first);
- SIGPIPE and SIGXFSZ ignored, as a starting interpreter sets them;
- /proc/self/cmdline and comm, which `ps` shows, say the command, not the template
  or init it was forked from;
- an interpreter's start reads PYTHON* and the locale's variables, and imports read
  more (a trait default from JPY_PARENT_PID): where the command's differ from the
  template's, only exec gives the same interpreter;
- at the end, what the interpreter does at exit: non-daemon threads are joined,
  atexit runs, stdio is flushed.
What is not reset, and why it does not matter, is in the test that compares a warm
kernel with a cold one (tests/jupyter/test_warm_start.py): the address layout and
the hash seed are the template's, shared by the kernels of one Jupyter server.
"""

import os
import sys


def startup_env(env, also=()):
    """The variables an interpreter reads as it starts (its paths, its encodings, the time
    zone libc caches), and those named in also: {name: value or None}."""
    env = dict(env)
    names = {k for k in env if k.startswith(("PYTHON", "LC_"))} | {"LANG", "TZ"} | set(also)
    return {k: env.get(k) for k in names}


def eligible(process, rootfs_kind, reads=()):
    """Can this command run warm, in this interpreter? Why not, or None. reads: the variables
    the template's imports read (template.preload): a trait default such as ipykernel's
    parent_handle = JPY_PARENT_PID is fixed at import, so they must match too."""
    args = process.args
    if rootfs_kind != "host":
        return "the rootfs has an interpreter of its own"
    if len(args) < 3 or args[0] != sys.executable or args[1] != "-m":
        return f"the command is not `{sys.executable} -m MODULE`"
    ours, theirs = startup_env(_exec_environ(), reads), startup_env(process.env, reads)
    if ours != theirs:
        names = sorted(k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k))
        return f"the command's interpreter would start with other {', '.join(names)}"
    return None


def _exec_environ():
    """The environment this interpreter was exec'd with, which it read as it started: the
    template's, in a launcher forked from it (os.environ is the request's by then)."""
    with open("/proc/self/environ", "rb") as f:
        items = [x.decode(errors="surrogateescape").partition("=") for x in f.read().split(b"\0") if x]
    return {k: v for k, _, v in items}


def run(process):
    """In the payload, after its process setup, in place of exec. Never returns."""
    code = 0
    try:
        os.environ.clear()
        os.environ.update(dict(process.env))
        module, argv = process.args[2], process.args[3:]
        sys.argv = [module, *argv]  # runpy puts the module's file first, as -m does
        sys.orig_argv = list(process.args)  # (the template's would name its run dir)
        set_cmdline(process.args)
        from . import syscalls as sc
        sc.set_name(os.path.basename(process.args[0]))  # exec names a process after its file
        sys.path[0] = os.getcwd()
        # An interpreter ignores these as it starts; init reset them to the default for exec.
        import _signal as signal
        for sig in (signal.SIGPIPE, signal.SIGXFSZ):
            signal.signal(sig, signal.SIG_IGN)
        import runpy
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as e:
        code = _exit_code(e.code)
    except BaseException:
        import traceback
        traceback.print_exc()
        code = 1
    _exit(code)


def set_cmdline(args):
    """What `ps` shows for us, /proc/self/cmdline, is the memory our argv was passed in:
    the template's. Rewrite it in place, as setproctitle(3) does: the args, each ended by
    a NUL, as the kernel put them there. The area cannot shrink (that is
    prctl(PR_SET_MM_ARG_END), for CAP_SYS_RESOURCE alone): what is left of the room
    the template reserved stays one last argument of blanks."""
    import ctypes
    with open("/proc/self/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end: stat fields 48, 49
    size = end - start
    data = b"".join(a.encode() + b"\0" for a in args)
    if len(data) > size:  # no room: cut, still NUL-ended
        data = data[:size - 1] + b"\0"
    elif len(data) < size:
        data += b" " * (size - len(data) - 1) + b"\0"
    ctypes.memmove(start, data, size)


def _exit_code(value):
    """sys.exit's argument as the interpreter turns it into a status."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value & 0xFF
    print(value, file=sys.stderr)
    return 1


def _exit(code):
    """As an interpreter ends: join non-daemon threads, run atexit, flush; then go.

    os._exit, not sys.exit: a SystemExit raised here would unwind into the frames of
    the template and launcher we were forked from, and their cleanups are not ours."""
    try:
        import threading
        threading._shutdown()
        import atexit
        atexit._run_exitfuncs()
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
    except BaseException:
        pass
    os._exit(code)
