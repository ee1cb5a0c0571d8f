"""Magics: the notebook as a window into its container, from inside and from the host.

    %container_info [--json]      namespaces, IDs, users, mounts, cgroup, capabilities, network
    %cgroup [--json]              limits, usage, peak, throttling and OOM counters
    %cgroup_set CONTROLLER VALUE  change a limit now (never above the kernelspec's ceiling)
    %container_ps [--json]        the container's processes, with their host PIDs
    %%sandbox memory=50M ...      run one cell in a disposable fork with tighter limits
    %container_monitor            a live dashboard (widgets.py)
    %container_run [OPTIONS] -- CMD   a sibling container, as `container-kernel run` (siblings.py)

Each magic parses its arguments (args.py), asks for the facts (facts.py, or the
launcher through client.py) and hands them to a renderer (render.py). What only
the host knows and every change of a limit come from the launcher, which stays
outside the container: the container's /sys/fs/cgroup stays read-only.
"""

import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from .. import protocol
from . import args, client, facts, pip_magic, render, sandbox, siblings


@magics_class
class ContainerMagics(Magics):
    @staticmethod
    def _ask(magic, op, **fields):
        """The launcher's reply record; its refusal as the magic's one-line UsageError."""
        try:
            return client.request(op, **fields)
        except protocol.ControlError as e:
            raise UsageError(f"{magic}: {e}") from None

    @line_magic
    def container_info(self, line):
        """Show the container this kernel runs in: from inside, and from the host.

        Namespaces (inode inside, inode on the host, isolated or shared), the
        hostname and PIDs inside and on the host, who root inside is on the host
        (uid_map/gid_map), the rootfs and mounts, the cgroup and its limits,
        capabilities, no_new_privs, seccomp and the network interfaces.

        Examples:
            %container_info            a readable view (HTML in a notebook, text elsewhere)
            info = %container_info --json
            info["namespace_table"]    the same facts as plain data, for programs and tests
        """
        flags = args.flags(line, "%container_info")
        info = facts.container_info()
        if "--json" in flags:
            return facts.to_json(info)
        headline = render.headline(info)
        if headline:
            print(headline)
        if pip_magic.seen():  # a connection was tried in a kernel without a network
            print(f"container-kernel: {pip_magic.seen()}")
        render.publish(*render.render_info(info))

    @line_magic
    def cgroup(self, line):
        """Show the container's cgroup: each limit with its usage, peak and counters.

        memory: limit, usage, peak, OOM kills and how often the limit was hit;
        cpu: quota in CPUs, CPU time used, throttled periods; pids: limit, current,
        forks refused; io: per-device rates and bytes read and written. The ceiling
        column is the kernelspec's limit, above which %cgroup_set cannot go.

        Examples:
            %cgroup
            stats = %cgroup --json      {"stats": {...}, "ceiling": {...}}
        """
        flags = args.flags(line, "%cgroup")
        if client.path():
            reply = self._ask("%cgroup", "stats")
            stats, ceiling, seen = reply.stats, reply.ceiling, "the host, by the launcher"
            if stats is None:  # rootless without a delegated cgroup: say what holds instead
                if "--json" in flags:
                    return protocol.to_wire(reply)
                render.publish(*render.render_no_cgroup(reply.enforced))
                return
        else:
            stats, ceiling, seen = facts.own_stats(), None, "inside, read-only"
            if stats is None:
                raise UsageError("%cgroup: no cgroup of this kernel is readable here, and there is "
                                 "no launcher of container-kernel to ask")
        if "--json" in flags:
            return {"stats": protocol.to_wire(stats), "ceiling": protocol.to_wire(ceiling)}
        render.publish(*render.render_cgroup(stats, ceiling, seen, facts.warning_banner()))

    @line_magic
    def cgroup_set(self, line):
        """Change one of the container's limits now, within the kernelspec's ceiling.

        The launcher (outside the container) writes the cgroup file, reads it
        back and shows the value in force. A value above the ceiling is refused
        and changes nothing; "max" goes back to the ceiling (unlimited if none).

        Examples:
            %cgroup_set memory 100M     memory limit (docker units: 100M, 1.5g)
            %cgroup_set memory max      back to the ceiling
            %cgroup_set cpu 0.5         half a CPU
            %cgroup_set pids 64         at most 64 processes
            %cgroup_set io write 10M/s  on the disk holding the notebook's directory
            %cgroup_set io read 5M /dev/vda
            %cgroup_set io write max    lift it
        """
        req = args.parse_cgroup_set(line)
        print(render.set_line(req, self._ask("%cgroup_set", "set", **req)))

    @line_magic
    def container_ps(self, line):
        """List the container's processes as the host sees them: host PID, PID inside, user.

        The launcher lists the cgroup's processes (children cgroups such as a
        %%sandbox too) and reads them with psutil on the host side.

        Examples:
            %container_ps
            procs = %container_ps --json
        """
        flags = args.flags(line, "%container_ps")
        if not client.path():
            raise UsageError("%container_ps: not a container kernel: there is no launcher on the host "
                             "to ask (use !ps here)")
        procs = self._ask("%container_ps", "ps").processes
        if "--json" in flags:
            return protocol.to_wire(procs)
        render.publish(*render.render_ps(procs))

    @line_magic
    def container_run(self, line):
        """Run a command in a sibling container that the launcher starts outside, and show
        its output as it comes, then its exit code and what the host saw of it.

        The options are `container-kernel run`'s: --hostname, --network none|private:NAME,
        --memory, --cpus, --pids, --env, --workdir, --userns auto, --no-init; and
        --timeout SECONDS (default 30). The sibling's cgroup is inside this kernel's.

        Examples:
            %container_run --hostname box -- hostname
            %container_run --no-init -- sh -c 'sleep 100 & exec sleep 1'
            r = %container_run --json --userns auto -- id -u
        """
        words = args.split(line, "%container_run")
        as_json = "--json" in words[:words.index("--")] if "--" in words else "--json" in words
        if as_json:
            words.remove("--json")
        timeout = args.pop_option(words, "--timeout", int, "%container_run", default=30)
        if not client.path():
            raise UsageError("%container_run: not a container kernel: there is no launcher on "
                             "the host to start a sibling")
        try:
            sib = siblings.Sibling(client.request("run", argv=words, seconds=timeout))
            if not as_json:
                sys.stdout.write(sib.stdout)
                sys.stderr.write(sib.stderr)
            result = sib.wait(echo=not as_json)
        except protocol.ControlError as e:
            raise UsageError(f"%container_run: {e}") from None
        if as_json:
            return protocol.to_wire(result)
        print(render.sibling_line(result))

    @cell_magic
    def sandbox(self, line, cell):
        """Run this cell in a disposable copy of the kernel, with tighter limits.

        The kernel forks; the launcher puts the fork in a child cgroup of the
        container with the limits given, the fork runs the cell and exits, and
        its output streams here. If the cell hits a limit (say the OOM killer
        ends it) the kernel is untouched and keeps all its variables.

        Variables assigned in the cell do NOT come back: the copy is thrown away,
        with every process the cell started (they are killed when the cell ends).
        Output is text: display() shows its text/plain form, widgets do not work.

        Examples:
            %%sandbox memory=50M
            x = bytearray(200 << 20)    # killed by the OOM killer at 50 MiB

            %%sandbox memory=100M cpu=0.5 pids=16
            ...

        Arguments: memory=SIZE (docker units), cpu=CPUS, pids=N; none above
        the container's own limit. Give memory= to keep an OOM inside the
        sandbox: without it, the container's limit applies, and the OOM killer
        chooses among all the container's processes, the kernel included.
        """
        limits = args.parse_sandbox(line)
        if not client.path():
            raise UsageError("%%sandbox: not a container kernel: there is no launcher to make the "
                             "sandbox's cgroup")
        try:
            status, end = sandbox.run_sandboxed(self.shell, cell, limits)
        except protocol.ControlError as e:
            raise UsageError(f"%%sandbox: {e}") from None
        for notice in sandbox.notices(status, end):
            print(notice, file=sys.stderr)

    @line_magic
    def container_monitor(self, line):
        """A live dashboard of the container: memory, CPU, pids and OOM kills, with sliders.

        Refreshes about once a second; the sliders change the limits like
        %cgroup_set (never above the ceiling). Stops when closed, or with the kernel.

        Examples:
            %container_monitor
            %container_monitor 2       refresh every 2 s (0.2 to 60)
            m = %container_monitor     then m.close() to stop it
            import container_kernel; container_kernel.monitor(interval=2)
        """
        interval = args.parse_interval(line)
        if not client.path():
            raise UsageError("%container_monitor: not a container kernel: there is no launcher to "
                             "ask for the cgroup's counters (%cgroup shows them once)")
        from .widgets import monitor  # ipywidgets is heavy: only for the dashboard
        try:
            return monitor(interval=interval)
        except protocol.ControlError as e:
            raise UsageError(f"%container_monitor: {e}") from None


def register(ip):
    ip.register_magics(ContainerMagics)
