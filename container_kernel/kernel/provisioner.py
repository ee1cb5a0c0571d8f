"""The kernel provisioner: jupyter_client's LocalProvisioner, with ipc sockets.

Registered under the entry-point group `jupyter_client.kernel_provisioners`
and named in kernel.json's metadata, so JupyterLab, Notebook 7, nbclient and
jupyter console use it. It changes two things:
- the connection uses ZeroMQ's ipc transport, in a short socket dir of ours that
  the launcher binds into the container: TCP cannot cross the kernel's network
  namespace, and there is no port to pick (jupyter_client's TCP port picking
  races when many kernels start at once; ipc does not);
- a host that cannot create containers is refused here, so the reason reaches the
  Jupyter UI as the error of the start request (unless the kernelspec allows
  degraded mode).
"""

import asyncio
import atexit
import functools
import os
import time

from jupyter_client.provisioning import LocalProvisioner
from traitlets import Bool

from ..runtime import rundir
from ..runtime import spec as S
from ..runtime.host import containment_problem
from . import dirwatch
from .warm_start import Client as TemplateClient
from .kernelspec import kernel_argv, read_argv
from .launch import READY, STATUS, exit_record_path, socket_dir

START_TIMEOUT = 60  # seconds for the launcher to create the container
READY_GRACE = 20  # seconds from the sockets to the extension's word, before we go by the sockets


def _pidfd(process):
    """A pidfd of the launcher (readable once it exits), or None where there is none."""
    try:
        return os.pidfd_open(process.pid) if process is not None else None
    except OSError:  # it is gone already, or a kernel before Linux 5.3
        return None


def _remove_file(path):
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class ContainerProvisioner(LocalProvisioner):
    warm_start = Bool(True, config=True, help=(
        "Fork each kernel's launcher from a template that imported ipykernel once per "
        "server (template.py), rather than start two interpreters. False: a cold start, "
        "as `python -m container_kernel kernel` from kernel.json's argv."))

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.socket_dir = None  # made at the first launch, kept across restarts
        self.container_id = None  # of the current launch: a restart is a new container
        self._at_exit = None      # the socket dir's removal at exit, unregistered at cleanup
        self.start_ended = None   # how the last start's wait ended: ready, sockets (no word), dead
        self.start_kind = None    # warm (a launcher forked from the template) or cold

    async def pre_launch(self, **kwargs):
        # The kernelspec's argv is its one source of truth: the options are read from it.
        python = self.kernel_spec.argv[0]
        if not os.access(python, os.X_OK):
            raise RuntimeError(f"{self.kernel_spec.display_name} cannot start: its Python {python} "
                               "is gone (a removed venv?): reinstall the kernelspec with "
                               "container-kernel install")
        args = read_argv(kernel_argv(self.kernel_spec.argv))
        problem = containment_problem()
        if problem and not args.allow_unconfined:
            raise RuntimeError(f"{self.kernel_spec.display_name} cannot start on this host: {problem}. "
                               "(An admin can install the kernelspec with --allow-unconfined to run "
                               "it uncontained, with a warning.)")
        km = self.parent
        if self.socket_dir is None:  # kept across restarts: the connection file names it
            run_base = S.default_run_base(os.geteuid() != 0)
            self.socket_dir = socket_dir(run_base, f"k-{S.new_id()}")
            # Some clients exit without cleanup() (jupyter console): remove it at exit too.
            self._at_exit = functools.partial(rundir.remove_tree, self.socket_dir)
            atexit.register(self._at_exit)
            km.transport = "ipc"
            km.ip = os.path.join(self.socket_dir, "k")
        kwargs = await super().pre_launch(**kwargs)
        # We name the container, so that if its launcher dies (shutdown_kernel(now=True)
        # SIGKILLs it) we know what it left, and remove it ourselves.
        self.container_id = S.new_id()
        kwargs["env"]["CK_CONTAINER_ID"] = self.container_id
        return kwargs

    async def launch_kernel(self, cmd, **kwargs):
        _remove_file(os.path.join(self.socket_dir, STATUS))
        _remove_file(os.path.join(self.socket_dir, READY))
        if self.warm_start:
            client = TemplateClient.of(cmd[0])
            try:
                await asyncio.get_running_loop().run_in_executor(None, client.start)  # once
                self.process = client.spawn(cmd, kwargs.get("env") or os.environ, kwargs.get("cwd")
                                            or os.getcwd(), kwargs.get("stdout"), kwargs.get("stderr"))
            except OSError as e:
                self.log.warning("container-kernel: a cold start, as %s", e)
            else:
                self.start_kind = "warm"
                # The launcher leads its own process group (the template set it, before
                # telling us its pid): jupyter_client's signals go to the group.
                self.pid = self.pgid = self.process.pid
                self.cwd = kwargs.get("cwd") or os.getcwd()
                return self.connection_info
        self.start_kind = "cold"
        return await super().launch_kernel(cmd, **kwargs)

    async def post_launch(self, **kwargs):
        """Wait for the launcher's word, then for the kernel's sockets.

        A container that cannot start is an error the UI shows. Once it started, the
        ipc sockets appear as files when ipykernel binds them: a client that connects
        before that retries only every 100 ms, each channel on its own timer, so its
        iopub subscription can trail the first execute and miss its busy/idle (a
        jupyter console that waits for ever). So the start ends when they all exist, and
        the kernel's extension has said it is ready (READY_GRACE without its word).

        Woken by inotify when a file appears in the socket dir and by a pidfd when the
        launcher dies, not by polling: a hundred kernels starting at once must not spend
        the server's CPU on looking (dirwatch.py)."""
        await super().post_launch(**kwargs)
        loop = asyncio.get_running_loop()
        async with dirwatch.Watch(self.socket_dir) as watch:
            pidfd = _pidfd(self.process)
            if pidfd is not None:
                loop.add_reader(pidfd, watch.wake)
            try:
                await self._await_word(watch)
            finally:
                if pidfd is not None:
                    loop.remove_reader(pidfd)
                    os.close(pidfd)

    async def _await_word(self, watch):
        self.start_ended = None
        status = os.path.join(self.socket_dir, STATUS)
        ready = os.path.join(self.socket_dir, READY)
        bound = None  # when the sockets were all there
        started = time.monotonic()
        deadline = started + START_TIMEOUT
        word = None
        while time.monotonic() < deadline:
            # Read before testing death: a launcher that says why and exits can be
            # dead by the time we look (so CI lost "in use by" once, under load).
            dead = self.process is not None and self.process.poll() is not None
            if word is None and os.path.exists(status):
                with open(status) as f:
                    word, _, message = f.read().strip().partition(" ")
                _remove_file(status)
                if word == "error":
                    raise RuntimeError(f"{self.kernel_spec.display_name} could not start: {message}")
            if dead:
                self.start_ended = "dead"
                return  # died: jupyter_client reports a dead kernel as usual
            if word is not None and all(os.path.exists(p) for p in self._socket_paths()):
                # Bound is not ready: ipykernel still builds its shell, and our extension
                # says when it is done. Without its word (an extension that failed to
                # load), the sockets suffice after a grace.
                bound = bound or time.monotonic()
                if os.path.lexists(ready) or time.monotonic() - bound > READY_GRACE:
                    self.start_ended = "ready" if os.path.lexists(ready) else "sockets"
                    _remove_file(ready)
                    return
            if watch.live:  # an event wakes us; a second at most, should one be lost
                await watch.wait(min(1.0, deadline - time.monotonic()))
                await asyncio.sleep(0.002)  # at most a look every 2 ms, whatever the dir's writer does
            else:  # no inotify: poll, often at first, then less
                await asyncio.sleep(0.005 if time.monotonic() - started < 0.5 else 0.05)

    def _socket_paths(self):
        km = self.parent
        if km.transport != "ipc":
            return []
        ports = (km.shell_port, km.iopub_port, km.stdin_port, km.control_port, km.hb_port)
        return [f"{km.ip}-{port}" for port in ports]

    async def poll(self):
        ret = await super().poll()
        if ret is not None:
            self._collect()
        return ret

    async def wait(self):
        ret = await super().wait()
        self._collect()
        return ret

    def _collect(self):
        """The launcher is gone: remove what its container left, if it did not (idempotent)."""
        if self.container_id and (self.process is None or self.process.poll() is not None):
            rundir.collect(S.default_run_base(os.geteuid() != 0), self.container_id)

    async def cleanup(self, restart=False):
        self._collect()
        await super().cleanup(restart)
        if not restart and self.socket_dir:
            rundir.remove_tree(self.socket_dir)
            self.socket_dir = None
            atexit.unregister(self._at_exit)
        if not restart and self.parent is not None and self.parent.connection_file:
            # A dead kernel's notice waits beside its connection file for the restart that
            # is not coming: the kernel is gone for good, and so is the notice.
            rundir.remove_tree(exit_record_path(self.parent.connection_file))
