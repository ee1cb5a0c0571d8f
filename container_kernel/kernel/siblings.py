"""Demo containers a notebook asks for: siblings of the kernel's container, started outside.

The kernel cannot make namespaces itself: CAP_SYS_ADMIN is gone, seccomp refuses
unshare and setns, and ipykernel is threaded (unshare(CLONE_NEWUSER) refuses a
threaded caller). So the launcher starts them, on request over the control socket
(%container_run, container_kernel.demo): each is a `container-kernel run` process
of its own, forked and exec'd, never a fork of this threaded launcher.

What the kernel sends is hostile input, so a sibling is bounded like one:
- its cgroup nests in the kernel's (--cgroup-parent): all it uses counts against
  the kernel's limits, and its own limits may only be tighter;
- the kernel's hardening, or tighter: the same capabilities and seccomp profile
  (the default one where the kernel runs unconfined), no_new_privs, the masks;
  the kernel's rootfs, no volume, no host network;
- MAX_RUNNING at once, each with a time limit, its output capped; all of them are
  killed when the kernel ends (stop()), and they die with this launcher (PDEATHSIG);
- its options are `run`'s own, with `run`'s one-line errors, less those it may not use.
"""

import os
import selectors
import signal
import subprocess
import sys
import threading
import time

from .. import protocol as P
from ..runtime import options, procfs
from ..runtime import spec as S
from ..runtime import syscalls as sc
from ..runtime.errors import ContainerError, usage

MAX_RUNNING = 4
MAX_KEPT = 16          # ended siblings whose output is kept for a last poll
DEFAULT_TIMEOUT = 30   # seconds
MAX_TIMEOUT = 300
MAX_OUTPUT = 1 << 20   # bytes kept of each of stdout and stderr
GRACE = 2.0            # seconds between the SIGTERM of a time limit and the SIGKILL
# run's options a sibling may give: the namespaces' demos and the limits; not a host path,
# a capability, a profile, the host's network or another container's cgroup.
ALLOWED = {"memory", "memory_swap", "cpus", "pids", "network", "hostname", "env", "cwd", "userns"}
FLAGS = ("--no-init",)


class Sibling:
    """One demo container: its `run` process, its output, what the host saw of it."""

    def __init__(self, name, proc, state_file, deadline):
        self.name = name
        self.proc = proc
        self.state_file = state_file
        self.deadline = deadline
        self.out, self.err = bytearray(), bytearray()
        self.truncated = False
        self.timed_out = False
        self.exit_code = None
        self.state = None  # run's state JSON, once it has started
        self.ended = threading.Event()
        self.on_end = None  # called once, when it has ended


class Siblings:
    def __init__(self, container):
        self.container = container
        self.live = {}     # name -> Sibling, running or ended and not yet dropped
        self.counter = 0

    # -- requests (the control server's thread) --
    def run(self, argv, timeout=None):
        name = self.new_name("s")
        return self.start(name, self._run_args(list(argv), name), timeout)

    def new_name(self, kind):
        self.counter += 1
        return f"{self.container.spec.id}-{kind}{self.counter}"

    def start(self, name, args, timeout=None, on_end=None):
        """Start `run ARGS` (checked, ours in front) as sibling name; on_end() runs once it
        has ended (packages.py's layer lock). Its first SiblingReply."""
        cg = self.container.cgroup
        if cg is None:
            raise ContainerError("this container has no cgroup (rootless without a delegated "
                                 "cgroup v2 subtree): a sibling would count against nothing")
        running = [s for s in self.live.values() if not s.ended.is_set()]
        if len(running) >= MAX_RUNNING:
            raise ContainerError(f"{len(running)} siblings are running already "
                                 f"({', '.join(s.name for s in running)}): at most {MAX_RUNNING} "
                                 "at once; wait for one, or kill it")
        timeout = DEFAULT_TIMEOUT if timeout is None else timeout
        if not 0 < timeout <= MAX_TIMEOUT:
            raise ContainerError(f"timeout {timeout!r}: give 1 to {MAX_TIMEOUT} seconds")
        self._drop_ended()
        state_file = os.path.join(self.container.spec.run_dir, f"sibling-{name}.json")
        proc = subprocess.Popen(
            [sys.executable, "-m", "container_kernel", "run", *args], stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, close_fds=True,
            start_new_session=True, preexec_fn=_die_with_us)
        sib = Sibling(name, proc, state_file, time.monotonic() + timeout)
        sib.on_end = on_end
        self.live[name] = sib
        threading.Thread(target=self._watch, args=(sib,), name=f"ck-{name}", daemon=True).start()
        return self.reply(sib, 0, 0)

    def poll(self, name, out=0, err=0):
        return self.reply(self._get(name), out or 0, err or 0)

    def kill(self, name):
        sib = self._get(name)
        _kill(sib.proc, signal.SIGKILL)
        sib.ended.wait(10)
        return self.reply(sib, len(sib.out), len(sib.err))

    def stop(self):
        """The kernel ends: so do its siblings (run's own cleanup, and its reaper, remove them)."""
        for sib in self.live.values():
            _kill(sib.proc, signal.SIGKILL)
        for sib in self.live.values():
            sib.ended.wait(10)

    # -- the argv --
    def _run_args(self, argv, name):
        """The user's `run` argv, checked, with ours in front: a sibling's own options are
        run's, with run's errors; what it may not choose is refused, not dropped."""
        try:
            opts, flags, _, command = options.parse_options(argv, flags=("--no-init",))
        except ContainerError as e:
            raise usage(f"run: {e}") from None
        if not command:
            raise usage("run: no command given: [OPTIONS] -- COMMAND [ARG...]")
        refused = sorted(opts[f][0] if isinstance(opts[f], tuple) else opts[f][0][0]
                         for f in opts if f not in ALLOWED)
        if refused:
            raise usage(f"run: {refused[0]} is not for a sibling: use "
                        + ", ".join(sorted({o[0][0] for o in options.RUN_OPTIONS if o[2] in ALLOWED}))
                        + " or --no-init")
        network = opts.get("network", (None, "none"))[1]
        kind, _, net_name = network.partition(":")
        egress = self.container.spec.network == "egress"  # only a kernel that has it may pass it on
        if kind not in ("none", "private") and not (egress and kind == "egress"):
            raise usage(f"run: --network {network}: a sibling's network is none or private:NAME"
                        + (" or egress" if egress else "")
                        + " (the host's, and other containers', are not the kernel's to give)")
        if kind == "private":  # NAME is this kernel's: another kernel's siblings never meet ours
            S.parse_id(net_name, "--network private:")
            opts["network"] = ("--network", f"private:{self.container.spec.id}-{net_name}")
        spec = S.build(opts, command, cid=name, no_init="--no-init" in flags)  # run's errors
        self._within_kernel(spec.resources)
        # run's default hostname, the id's first 12, would be the kernel's
        ours = self.own_args(name, None if "hostname" in opts else f"sibling-{self.counter}")
        theirs = []
        for field, given in opts.items():
            for option, text in (given if isinstance(given, list) else [given]):
                theirs += [option, text]
        return ours + theirs + list(flags) + ["--"] + command

    def own_args(self, name, hostname=None):
        """What a sibling does not choose: its name, cgroup parent, state file, the kernel's
        hardening (and a hostname of its own unless it gives one)."""
        ours = ["--name", name, "--cgroup-parent", self.container.spec.id, "--state-file",
                os.path.join(self.container.spec.run_dir, f"sibling-{name}.json")]
        if hostname:
            ours += ["--hostname", hostname]
        return ours + _hardening(self.container.spec)

    def _within_kernel(self, resources):
        stats = self.container.cgroup.stats()
        for controller, value, current in (("memory", resources.memory, stats.memory.limit),
                                           ("cpu", resources.cpus, stats.cpu.cpus),
                                           ("pids", resources.pids, stats.pids.limit)):
            if value is not None and current is not None and value > current:
                raise ContainerError(
                    f"{controller}={P.show(controller, value)} is above the kernel's own limit of "
                    f"{P.show(controller, current)}: a sibling counts against it, and may only "
                    "be tighter")

    # -- watching one (a thread each) --
    def _watch(self, sib):
        sel = selectors.DefaultSelector()
        for pipe, buf in ((sib.proc.stdout, sib.out), (sib.proc.stderr, sib.err)):
            os.set_blocking(pipe.fileno(), False)
            sel.register(pipe, selectors.EVENT_READ, buf)
        term_sent = None
        try:
            while sel.get_map():
                now = time.monotonic()
                if now >= sib.deadline and term_sent is None:
                    sib.timed_out = True
                    term_sent = now
                    _kill(sib.proc, signal.SIGTERM)  # run forwards it to init
                elif term_sent is not None and now >= term_sent + GRACE:
                    _kill(sib.proc, signal.SIGKILL)  # PID 1 without init ignores SIGTERM
                wake = (sib.deadline if term_sent is None else term_sent + GRACE) - now
                for key, _ in sel.select(max(0.0, min(wake, 1.0))):
                    try:
                        data = os.read(key.fd, 65536)
                    except BlockingIOError:
                        continue
                    if not data:
                        sel.unregister(key.fileobj)
                        key.fileobj.close()
                        continue
                    room = MAX_OUTPUT - len(key.data)
                    key.data.extend(data[:room])  # the Sibling's own bytearray
                    sib.truncated |= len(data) > room
                if sib.state is None:
                    sib.state = _read_state(sib.state_file)
            sib.exit_code = sib.proc.wait()
        finally:
            sel.close()
            if sib.state is None:
                sib.state = _read_state(sib.state_file)
            if sib.on_end is not None:
                sib.on_end()
            sib.ended.set()

    # -- replies --
    def reply(self, sib, out, err):
        running = not sib.ended.is_set()
        if sib.state is None:
            sib.state = _read_state(sib.state_file)
        st = sib.state or {}
        procs = _processes(st) if running else ()
        out, err = min(max(out, 0), len(sib.out)), min(max(err, 0), len(sib.err))
        stdout, stderr = bytes(sib.out[out:]), bytes(sib.err[err:])
        code = sib.exit_code
        return P.SiblingReply(
            name=sib.name, state="running" if running else "exited", exit_code=code,
            stdout=stdout.decode(errors="replace"), stderr=stderr.decode(errors="replace"),
            out=out + len(stdout), err=err + len(stderr), truncated=sib.truncated,
            timed_out=sib.timed_out, init_pid=st.get("init_pid"), processes=procs,
            namespaces=st.get("namespace_inodes"),
            kernel_namespaces=self.container.namespace_inodes,
            cgroup=st.get("cgroup"), uid_map=st.get("uid_map"), hostname=st.get("hostname"))

    def _get(self, name):
        sib = self.live.get(name)
        if sib is None:
            raise ContainerError(f"no sibling {str(name)[:40]!r}: known ones: "
                                 f"{', '.join(self.live) or 'none'}")
        return sib

    def _drop_ended(self):
        ended = [n for n, s in self.live.items() if s.ended.is_set()]
        for name in ended[:max(0, len(ended) - MAX_KEPT + 1)]:
            self.live.pop(name)


def _hardening(spec):
    """run options for the kernel's hardening, or tighter: its capabilities, its seccomp
    profile (the default where the kernel is unconfined), its rootfs."""
    from ..runtime import capabilities
    sec = spec.security
    caps = sec.capabilities if sec.capabilities is not None else capabilities.DEFAULT
    args = ["--cap-drop", "ALL"] + [a for cap in caps for a in ("--cap-add", cap)]
    if sec.seccomp is not None and sec.seccomp.profile != S.DEFAULT_SECCOMP.profile:
        args += ["--security-opt", f"seccomp={sec.seccomp.profile}"]
    if spec.rootfs.kind != "host":
        args += ["--rootfs", str(spec.rootfs)]
    return args


def _die_with_us():
    # In the child, before exec: a SIGKILLed launcher takes its siblings' launchers along
    # (their reapers clean up; the kernel's cgroup, theirs' parent, is destroyed anyway).
    sc.prctl(sc.PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill(proc, signo):
    try:
        proc.send_signal(signo)
    except ProcessLookupError:
        pass


def _read_state(path):
    import json
    try:
        with open(path) as f:
            state = json.load(f)
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def _processes(state):
    """The sibling's processes now, from its cgroup (any hierarchy lists them all)."""
    paths = state.get("cgroup") or {}
    path = next(iter(paths.values()), None) if isinstance(paths, dict) else None
    if not path:
        return ()
    try:
        with open(os.path.join(path, "cgroup.procs")) as f:
            pids = [int(p) for p in f.read().split()][:64]
    except (OSError, ValueError):
        return ()
    out = []
    for pid in pids:
        # One read of its status: a process that exits meanwhile (a sibling ending as we
        # look) is left out, never listed with a field missing.
        fields = procfs.status_fields(pid, ("Uid", "Name", "NSpid"))
        uid, nspid = fields.get("Uid", "").split(), fields.get("NSpid", "").split()
        if len(uid) > 1 and nspid and "Name" in fields:
            out.append(P.SiblingProc(pid, int(nspid[-1]), int(uid[1]), fields["Name"]))
    return tuple(out)
