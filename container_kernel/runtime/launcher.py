"""The host side of a container: its stages, the wait, the cleanup.

    launcher (host)            stays outside: owns the cgroup, forwards signals, cleans up
      └─ intermediate          [unshare(user)], joins the cgroup, unshare(mnt uts ipc net cgroup pid)
           └─ init, PID 1      adopted by the launcher (a child subreaper) when the intermediate exits
                └─ payload, PID 2   fork + exec of the command

Why an intermediate stage: intermediate.py. Usually it is forked here once the
spec is built; a warm start forks it before the launcher knows anything, and sends
it its inputs (seed.py).

The launcher and its children talk over two pipes, one short line a message:
stages.py declares them. How each limit is enforced is limits.py's plan; the run
dir (state for `ps`, leftovers to collect) is rundir.py's.
"""

import os
# The C module under `signal` (which only wraps it to hand out IntEnums): importing
# enum would cost ~2.5 ms of a container's start.
import _signal as signal

from . import (capabilities, cgroups, idmap, init, intermediate, limits, mounts, namespaces,
               network, reaper, rootfs, rundir, stages)
from . import syscalls as sc
from . import overlay
from .output import Output
from .errors import RUNTIME
from .paths import under
from .spec import human_bytes

# Signals that ask the container to end: once one is forwarded, its exit is no news.
STOPPING = {signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGKILL}


class Container:
    def __init__(self, spec, memory_above_start=False, also_remove=(), seed=None):
        """memory_above_start: for a rootless fallback, let the payload set its own
        RLIMIT_AS once started (limits.RLIMIT_AS_ENV): an interpreter like ipykernel
        maps ~800 MB of address space before it runs any code. also_remove: paths of
        the caller's (a socket dir) the reaper removes if we die without cleaning.
        seed: a seed.Seed forked earlier, to be the intermediate stage (a warm start)."""
        self.spec = spec
        self.seed = seed
        self.memory_above_start = memory_above_start
        self.also_remove = tuple(also_remove)
        self._reaper = None       # our end of the reaper's pipe (reaper.py)
        self.limits = None        # the limits.Plan, once start() has made it
        self.seccomp_program = None  # compiled here, on the host: init only installs it
        self.output = None        # the pipes of the payload's stdout and stderr
        self.cgroup = None
        self.uid_map = self.gid_map = self.mapping = None  # a user namespace's maps
        self.namespace_inodes = None  # of init, before its command ran
        self._netns = None  # network.join's fd, until the intermediate has it
        self._net_lock = None  # network.lock's fd while a private: network's start decides
        self._layer = None  # --persist: the layer's lock fd while the container lives (overlay.take)
        self._slirp = None  # --network egress: its slirp4netns (egress.py)
        self.init_pid = None
        self.steps = None
        self.final_stats = None
        self.stop_requested = False  # a SIGTERM/SIGHUP/SIGQUIT came from outside
        self._to_child = self._from_child = None

    @property
    def enforced(self):
        """{limit: how it is enforced here}: said, never claimed."""
        return dict(self.limits.enforced) if self.limits else {}

    # ---- start ----------------------------------------------------------------------------
    def start(self):
        """Create the container and return once its command has been exec'd."""
        spec = self.spec
        rootfs.check_command(spec)
        if spec.network == "egress":  # the missing tool is named before anything is made
            from . import egress
            self._slirp = egress.Slirp(egress.check(spec))
        if spec.security.seccomp is not None:
            from . import seccomp  # not for an unconfined container
            policy = spec.security.seccomp
            self.seccomp_program = seccomp.cached_filter(
                policy.profile, spec.security.capabilities or capabilities.DEFAULT,
                policy.deny_namespaces, seccomp.cache_dir(spec.rootless))
        rundir.collect_stale(spec.run_base)
        plan = self.limits = limits.plan(spec, memory_above_start=self.memory_above_start)
        for warning in plan.warnings:
            os.write(2, f"container-kernel: warning: {warning}\n".encode())
        if plan.rlimits or plan.env:
            spec = self.spec = spec._replace(process=spec.process._replace(
                rlimits=plan.rlimits, env=spec.process.env + plan.env))
        if spec.rootless:
            uid, gid = idmap.current_user()
            self.uid_map, self.gid_map, self.mapping = idmap.rootless_maps(
                uid, gid, keep_id=spec.process.uid != 0)
        elif "user" in spec.namespaces:  # --userns auto
            self.uid_map, self.gid_map, self.mapping = idmap.root_remap()
        cgroup_mounts = ()
        parent = None
        if spec.cgroup_parent:
            parent = cgroups.open_parent(spec.cgroup_parent, plan.cgroup_version, plan.cgroup_base)
            self.cgroup = parent.child(spec.id)
            cgroup_mounts = self._cgroup_mounts()
        elif plan.cgroup_version:
            self.cgroup = cgroups.open_cgroup(spec.id, plan.cgroup_version, base=plan.cgroup_base)
            cgroup_mounts = self._cgroup_mounts()
        self._net_lock = network.lock(spec)  # private:NAME: one start at a time decides
        self._netns = network.join(spec)  # an fd of the namespace to join, or None
        if self._netns is not None and "net" in spec.namespaces:
            spec = self.spec = spec._replace(namespaces=tuple(k for k in spec.namespaces if k != "net"))
        root = os.path.join(spec.run_dir, "root")
        self.steps = mounts.plan(spec, root, cgroup_mounts)
        self._layer = overlay.take(spec)  # refused before anything is made: one writer a layer
        # From here on something could be left behind: the reaper cleans it if we die, even
        # half-way through making the run dir.
        self._reaper = reaper.start(spec.run_dir, self.cgroup, self.also_remove)
        try:
            rundir.make_run_dir(spec)
        except BaseException:  # another container has this id: the reaper leaves it be
            os.close(self._reaper)
            self._reaper = None
            raise
        try:
            if parent:
                parent.create_child(spec.id, spec.resources)
            elif self.cgroup:
                self.cgroup.create(spec.resources)
            overlay.prepare(spec)
            signal.pthread_sigmask(signal.SIG_BLOCK, init.WAITED)
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 1)
            self._fork_stages(root)
            # init is our child now: orphans of our later children (a sibling's reaper, when
            # its launcher is gone) go to the host's init, not to us, who would never reap them.
            sc.prctl(sc.PR_SET_CHILD_SUBREAPER, 0)
            self.output.start()  # a thread: only now, the stages are forked
            rundir.write_state(spec.run_dir, self.state())
            if spec.state_file:
                rundir.write_state_file(spec.state_file, self.state())
            self._unlock_network()
        except BaseException:
            self.cleanup()
            raise

    def _cgroup_mounts(self):
        """The cgroupfs mounts the container sees (read-only, through its cgroup namespace)."""
        if self.spec.rootless:
            return [("", "cgroup2", None)]
        if "user" in self.spec.namespaces:  # a v1 hierarchy cannot be mounted in a user namespace
            return [("", "cgroup2", None)] if self.cgroup.version == 2 else []
        # Only the hierarchies the container has its own cgroup in: in the others its
        # cgroup namespace would be rooted at the host's cgroup.
        paths = self.cgroup.paths().values()
        return [m for m in mounts.host_cgroup_mounts()
                if any(under(p, "/sys/fs/cgroup/" + m[0]) for p in paths)]

    def state(self):
        """What `container-kernel ps` shows (rundir's state.json)."""
        spec = self.spec
        return {
            "id": spec.id, "hostname": spec.hostname, "launcher_pid": os.getpid(),
            "init_pid": self.init_pid, "command": list(spec.process.args),
            "rootfs": str(spec.rootfs), "network": spec.network, "rootless": spec.rootless,
            "namespaces": list(spec.namespaces),
            "limits": {k: v for k, v in spec.resources._asdict().items() if v not in (None, ())},
            "cgroup": self.cgroup.paths() if self.cgroup else None,
            "cgroup_version": self.cgroup.version if self.cgroup else None,
            "enforced": self.enforced,
            "mapping": self.mapping,
            "init": spec.init,
            # Read while init waited for its go, before the command ran: a command that ends
            # at once has namespaces no one can look at any more.
            "namespace_inodes": self.namespace_inodes,
            "uid_map": self.uid_map, "gid_map": self.gid_map,
        }

    def _fork_stages(self, root):
        spec = self.spec
        self.output = Output()
        to_child_r, to_child = os.pipe()
        from_child, from_child_w = os.pipe()
        payload = init.Payload(self.output.container_ends(), self.seccomp_program)
        if self.seed is not None:  # forked long ago, clean: it gets copies of what it needs
            pid = self.seed.pid
            self.seed.send(spec, self.steps, root, to_child_r, from_child_w, payload, self._netns)
            self.seed = None
        else:
            pid = os.fork()
        if pid == 0:  # ---- the intermediate stage ----
            os.close(to_child)
            os.close(from_child)
            if self._net_lock is not None:  # a flock lasts while any copy of its fd is open
                os.close(self._net_lock)
            intermediate.main(spec, self.steps, root, to_child_r, from_child_w, payload, self._netns)
        os.close(to_child_r)
        os.close(from_child_w)
        self._to_child, self._from_child = to_child, from_child
        try:
            if self._netns is not None:
                os.close(self._netns)  # the intermediate has its copy
                self._netns = None
            stages.expect(from_child, stages.UNSHARED)
            if self.uid_map:
                idmap.write_maps(pid, self.uid_map, self.gid_map)
            if self.cgroup:
                self.cgroup.add(pid)
            stages.send(to_child, stages.GO)
            self.init_pid = int(stages.expect(from_child, stages.INIT))
            self.namespace_inodes = namespaces.inodes(self.init_pid)
            if self._slirp is not None:  # init's namespaces exist; its command waits for our go
                self._start_egress()
        except BaseException:
            os.close(to_child)  # EOF tells a waiting stage to give up
            os.waitpid(pid, 0)
            raise
        os.waitpid(pid, 0)  # the intermediate exits: init is now our child (subreaper)
        stages.send(to_child, stages.GO)
        stages.expect(from_child, stages.READY)
        os.close(from_child)

    def _start_egress(self):
        from . import egress
        userns = "user" in self.spec.namespaces
        egress.block_host(self.init_pid, userns)  # before slirp: never a moment the host is open
        log = os.path.join(self.spec.run_dir, "slirp4netns.log")
        reaper.also_kill(self._reaper, self._slirp.start(self.init_pid, userns, log))

    # ---- wait -----------------------------------------------------------------------------
    def wait(self, translate=None, listen=frozenset()):
        """Forward signals to init until it exits; return the container's exit code.

        translate(signo) -> the signal to send instead, or None to send nothing. listen:
        more signals the caller has blocked, for translate to answer (the kernel launcher's
        PDEATHSIG, which it turns into SIGKILL when the Jupyter server is gone)."""
        waited = init.WAITED | set(listen)
        while True:
            info = signal.sigwaitinfo(waited)
            if info.si_signo != signal.SIGCHLD:
                sent = translate(info.si_signo) if translate else info.si_signo
                if sent is None:
                    continue
                if sent in STOPPING:
                    self.stop_requested = True
                try:
                    os.kill(self.init_pid, sent)
                except ProcessLookupError:
                    pass
                continue
            try:
                pid, status = os.waitpid(self.init_pid, os.WNOHANG)
            except ChildProcessError:
                return RUNTIME
            if pid:
                self.output.finish()  # init is gone, and with it all the container
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

        Returns the cgroup's final Stats (None without a cgroup)."""
        if not self.cgroup:
            return None
        stats = self.final_stats = self.cgroup.stats()
        mem = stats.memory
        if not mem.oom_kills:
            return stats
        limit, peak = human_bytes(mem.limit), human_bytes(mem.peak or mem.usage)
        if code == 128 + signal.SIGKILL:
            msg = f"killed by the OOM killer (memory limit {limit}, peak {peak})"
        else:
            msg = (f"the OOM killer killed {mem.oom_kills} process(es) in the container "
                   f"(memory limit {limit}, peak {peak})")
        os.write(2, f"container-kernel: {msg}\n".encode())
        return stats

    # ---- cleanup --------------------------------------------------------------------------
    def _unlock_network(self):
        if self._net_lock is not None:
            os.close(self._net_lock)  # our state is written: the next member finds us
            self._net_lock = None

    def cleanup(self):
        """Remove all the container left on the host. Safe to call twice."""
        if self.seed is not None:  # a start that failed before the seed was needed
            self.seed.cancel()
            self.seed = None
        self._unlock_network()
        if self._netns is not None:
            os.close(self._netns)
            self._netns = None
        if self.init_pid:
            try:
                os.kill(self.init_pid, signal.SIGKILL)
                os.waitpid(self.init_pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
            self.init_pid = None
        if self._slirp is not None:
            self._slirp.stop()
        if self.cgroup:
            self.cgroup.destroy()
        if self.output:
            self.output.finish()
            self.output.close()
        rundir.remove_tree(self.spec.run_dir)
        overlay.release(self._layer)  # init is gone: the layer's next writer may come
        self._layer = None
        if self._reaper is not None:
            os.close(self._reaper)  # all is clean: the reaper wakes, finds nothing, exits
            self._reaper = None
        signal.pthread_sigmask(signal.SIG_UNBLOCK, init.WAITED)


def run(spec):
    container = Container(spec)
    container.start()
    return container.run()
