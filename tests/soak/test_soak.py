"""200 container kernels through jupyter_client, each ended another way, and nothing of any left.

Each cycle starts a kernel with AsyncKernelManager (the kernelspec from the real
`container-kernel install`, connection files in a runtime dir, one zmq context for
all, as jupyter_server's MultiKernelManager has them), runs one cell, and ends it:
a shutdown, a forced one, a restart, a SIGKILL of the launcher, of init or of the
kernel, the OOM killer, or the death of the server that started it. Within 2 s of
the ending (after the server's own cleanup calls, where a server survives) nothing
of that kernel may be left: processes, cgroups, mounts, run dir, socket dir,
connection file. The test process plays the server: its open fds and RSS are
sampled between blocks of cycles and must stay flat.

Cycles run in blocks of BLOCK cycles of one ending, rotating through the endings,
so that the fd and RSS drift over a block is that ending's. Within a block LANES
kernels run at once, as a server's do (CK_SOAK_LANES=1: one by one); each cycle still
checks only its own kernel's objects, and the fd and RSS samples are taken between
blocks, with no kernel up.
"""
import asyncio
import json
import os
import signal
import sys
import time
import traceback
import uuid
from collections import namedtuple

import pytest
import zmq.asyncio
from jupyter_client import AsyncKernelManager

from container_kernel.kernel.launch import exit_record_path
from tests.helpers import ck, children, init_of
from tests.soak.objects import CLEAN_WITHIN, KernelObjects, cell, fds, kind_of, rss_kib

ENDINGS = ("shutdown", "shutdown now", "restart", "kill launcher", "kill init", "kill kernel",
           "oom", "server dies")
CYCLES = 200
BLOCK = 5            # consecutive cycles of one ending
LANES = int(os.environ.get("CK_SOAK_LANES", "2"))
SAMPLE_EVERY = 10    # cycles between the asserted fd/RSS samples
FD_SLACK = 5
# Before a sample: zmq closes a socket whose last message could not be delivered (the
# interrupt_request shutdown_kernel sends to a dead kernel) when its 100 ms linger is over.
SETTLE = 0.3
RSS_SLACK_KIB = 30 * 1024

# Leftovers of product bugs reported and not fixed yet: leftover kind -> (endings, why).
# They make the test xfail, not pass; any other leftover fails it, and so does an entry
# here that never shows up (the bug is fixed: delete the entry).
# The 2 s are for a killed launcher, init or kernel. A SIGKILLed server is heard of
# by its launchers through PDEATHSIG; each then kills its kernel and cleans, which on this
# 2-core machine under load took up to 2.03 s: give it 5.
SERVER_DEATH_WITHIN = 5.0

KNOWN = {}  # none: a dead server's connection file and socket dir are its launcher's now
INTERMITTENT = set()  # seen in some runs only: not seeing it is no proof of a fix

# Errors of product races reported and not fixed yet, by a piece of their text -> why. They
# happen now and then, not every run: seen, they make the test xfail; any other error fails it.
RACES = {}  # none: ENODEV from a v1 cgroup being removed reads as gone now

# The Jupyter server of the "server dies" ending: it starts the kernel, runs a cell and
# says what it started, on a duplicate of its stdout (the kernel inherits /dev/null).
SERVER = """
import json, os, sys, time
from jupyter_client import KernelManager
out = os.fdopen(os.dup(1), "w")
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
km = KernelManager(kernel_name=sys.argv[1], connection_file=sys.argv[2])
km.start_kernel()
kc = km.client(); kc.start_channels(); kc.wait_for_ready(timeout=60)
reply = kc.execute_interactive("print(6 * 7)", timeout=30, output_hook=lambda msg: None)
assert reply["content"]["status"] == "ok", reply
p = km.provisioner
out.write(json.dumps([p.process.pid, p.container_id, p.socket_dir, km.connection_file]) + "\\n")
out.flush()
time.sleep(300)
"""


class Cycle(namedtuple("Cycle", "ending unexpected known clean gone seconds lingering error")):
    """One cycle's outcome: leftovers (unexpected, and the kinds of known ones), seconds to
    clean after the server's last cleanup call, seconds from the ending's beginning (the
    kill, the shutdown call) to clean, the cycle's wall time, what was still there
    (known leftovers aside) when the server's cleanup returned, and the error that broke
    the cycle off (or None)."""
    __slots__ = ()


class Soak:
    """The server's state across cycles: its zmq context, and the stale socket dirs a
    dead server left, which the next container start must collect."""

    def __init__(self, name, runtime):
        self.name = name
        self.runtime = runtime
        self.context = zmq.asyncio.Context()
        self.stale_socket_dirs = set()
        self.results = []  # a Cycle each

    def connection_file(self):
        return os.path.join(self.runtime, f"kernel-{uuid.uuid4()}.json")

    async def cycle(self, ending):
        t0 = time.monotonic()
        objs = KernelObjects()
        error = None
        try:
            if ending == "server dies":
                await self.server_dies(objs)
            else:
                await self.with_manager(ending, objs)
        except Exception as e:  # the cycle is broken off, its kernel still checked; the soak goes on
            error = describe(e)
        if objs.ending_began is None:
            objs.ending_began = time.monotonic()

        def is_known(leftover):
            return ending in KNOWN.get(kind_of(leftover), ((), ""))[0]

        # The 2 s start once the ending is over: the server's last cleanup call returned.
        lingering = [x for x in objs.left() if not is_known(x)]
        left, clean = await objs.wait_clean(SERVER_DEATH_WITHIN if ending == "server dies"
                                            else CLEAN_WITHIN, is_known)
        gone = time.monotonic() - objs.ending_began
        known = [kind_of(x) for x in left if is_known(x)]
        unexpected = [x for x in left if not is_known(x)]
        if ending == "server dies":
            self.stale_socket_dirs.update(p for p, k in objs.paths.items() if k == "socket dir")
        self.results.append(Cycle(ending, unexpected, known, clean, gone, time.monotonic() - t0,
                                  lingering, error))

    def collected(self, stale, objs):
        """After a start: what a SIGKILLed server left before it must be gone (the launcher's
        collect_stale); what is not is counted as this kernel's leftover."""
        for d in stale:
            if os.path.exists(d):
                objs.paths[d] = "socket dir"
            self.stale_socket_dirs.discard(d)

    async def with_manager(self, ending, objs):
        km = AsyncKernelManager(kernel_name=self.name, context=self.context,
                                connection_file=self.connection_file())
        kc = None
        try:
            stale = set(self.stale_socket_dirs)
            await km.start_kernel()
            objs.add_km(km)
            self.collected(stale, objs)
            kc = km.client()
            kc.start_channels()
            await kc.wait_for_ready(timeout=60)
            assert await cell(kc, "x = 6 * 7\nprint(x)") == "42\n"
            objs.ending_began = time.monotonic()
            await END[ending](km, kc, objs)
        except BaseException:
            objs.add_km(km)  # what it made, as far as it got
            raise
        finally:
            if kc is not None:
                kc.stop_channels()
            if km.has_kernel:  # a failed cycle: leave no kernel running
                await km.shutdown_kernel(now=True)

    async def server_dies(self, objs):
        # Nobody is left to clean: the launcher gets SIGTERM (PR_SET_PDEATHSIG) and removes
        # its container; a real server's next start collects what the dead one owned.
        server = await asyncio.create_subprocess_exec(
            sys.executable, "-c", SERVER, self.name, self.connection_file(), stdout=asyncio.subprocess.PIPE)
        try:
            stale = set(self.stale_socket_dirs)
            line = await asyncio.wait_for(server.stdout.readline(), 60)
            assert line, "the server script died before its kernel was ready"
            launcher, cid, socket_dir, connection_file = json.loads(line)
            objs.add(cid, launcher, socket_dir, connection_file)
            objs.add_pid(server.pid)
            self.collected(stale, objs)
        finally:
            objs.ending_began = time.monotonic()
            server.send_signal(signal.SIGKILL)
            await server.wait()


def describe(e):
    """An error in one line, with where in container_kernel it was raised, if there."""
    frames = [f for f in traceback.extract_tb(e.__traceback__) if "/container_kernel/" in f.filename]
    where = f" (at {frames[-1].filename.rpartition('/container_kernel/')[2]}:{frames[-1].lineno})" if frames else ""
    return f"{type(e).__name__}: {e}"[:300] + where


async def died(km, timeout):
    """Wait as jupyter_server's KernelRestarter does (it polls is_alive(), every 3 s there)."""
    deadline = time.monotonic() + timeout
    while await km.is_alive():
        assert time.monotonic() < deadline, "jupyter_client still sees the kernel alive"
        await asyncio.sleep(0.02)
    return km.provisioner.process.returncode


async def end_shutdown(km, kc, objs):
    # The user's "Shut Down Kernel": DELETE /api/kernels/<id> -> shutdown_kernel(now=False).
    kc.stop_channels()
    await km.shutdown_kernel()


async def end_shutdown_now(km, kc, objs):
    # A forced shutdown (jupyter_server's for a kernel that will not stop, and the first half
    # of the restarter's restart_kernel(now=True)): the launcher's process group is SIGKILLed;
    # its reaper and the provisioner's collect clean up.
    kc.stop_channels()
    await km.shutdown_kernel(now=True)


async def end_restart(km, kc, objs):
    # The user's "Restart Kernel": POST /api/kernels/<id>/restart -> restart_kernel(now=False),
    # the client stays connected; later the user shuts it down.
    await km.restart_kernel()
    objs.add_km(km)  # a new container, in the same socket dir
    await kc.wait_for_ready(timeout=60)
    assert await cell(kc, "print('x' in dir())") == "False\n"  # a fresh kernel answered
    kc.stop_channels()
    await km.shutdown_kernel()


def end_by_sigkill(target):
    async def end(km, kc, objs):
        launcher = km.provisioner.process.pid
        pid = {"launcher": lambda: launcher, "init": lambda: init_of(launcher),
               "kernel": lambda: children(init_of(launcher))[0]}[target]()
        os.kill(pid, signal.SIGKILL)
        code = await died(km, 10)
        assert code == (-signal.SIGKILL if target == "launcher" else 128 + signal.SIGKILL), code
        await shut_down_dead(km, kc)
    return end


async def end_oom(km, kc, objs):
    kc.execute("x = bytearray(700 << 20)")  # past the 256M limit; bytearray writes its zeros
    assert await died(km, 30) == 128 + signal.SIGKILL
    with open(exit_record_path(km.connection_file)) as f:  # what the next kernel would say
        assert "killed by the OOM killer: memory limit 256 MiB reached" in f.read()
    await shut_down_dead(km, kc)


async def shut_down_dead(km, kc):
    # jupyter_server's restarter, having seen is_alive() False, would restart_kernel(now=True)
    # (tests/jupyter/test_lifecycle.py: a restart after a death); here the user shuts the dead
    # kernel down instead, which on a dead kernel is the same wait and cleanup_resources.
    kc.stop_channels()
    await km.shutdown_kernel(now=True)


END = {"shutdown": end_shutdown, "shutdown now": end_shutdown_now, "restart": end_restart,
       "kill launcher": end_by_sigkill("launcher"), "kill init": end_by_sigkill("init"),
       "kill kernel": end_by_sigkill("kernel"), "oom": end_oom}


async def soak_run(soak, samples):
    for first in range(0, CYCLES, BLOCK):
        ending = ENDINGS[first // BLOCK % len(ENDINGS)]
        todo = list(range(first, min(first + BLOCK, CYCLES)))

        async def lane():
            while todo:
                todo.pop()
                await soak.cycle(ending)

        await asyncio.gather(*(lane() for _ in range(LANES)))
        await asyncio.sleep(SETTLE)
        samples.append((min(first + BLOCK, CYCLES), ending, fds(), rss_kib()))


@pytest.mark.timeout(600)
def test_200_kernels_ended_8_ways_leave_nothing_and_the_server_stays_flat(soak_spec, capsys):
    soak = Soak(*soak_spec)
    samples = [(0, None, fds(), rss_kib())]  # (cycles done, ending of the block, fds, RSS KiB)
    t0 = time.monotonic()
    try:
        asyncio.run(soak_run(soak, samples))
    finally:
        soak.context.destroy(linger=0)
        ck("run", "--", "true")  # the next start: collects what the last dead server left
    total = time.monotonic() - t0
    never_collected = [d for d in soak.stale_socket_dirs if os.path.exists(d)]

    base = next(s for s in samples if s[0] >= SAMPLE_EVERY)
    with capsys.disabled():
        print(report(soak.results, samples, base, total, LANES))

    errors = [(r.ending, r.error) for r in soak.results if r.error]
    wild = [(e, x) for e, x in errors if not any(text in x for text in RACES)]
    assert not wild, "cycles broken off:\n" + "\n".join(f"  {e}: {x}" for e, x in wild)
    unexpected = [(e, x) for e, u, *_ in soak.results for x in u]
    assert not unexpected, "left after the ending:\n" + "\n".join(f"  {e}: {x}" for e, x in unexpected)
    assert not never_collected, f"a dead server's socket dir survived the next start: {never_collected}"
    assert len(soak.results) == CYCLES
    for done, ending, n, rss in samples:
        if done >= base[0] and done % SAMPLE_EVERY == 0:
            assert n <= base[2] + FD_SLACK, f"fds {base[2]} after {base[0]} cycles, {n} after {done}"
            assert rss - base[3] < RSS_SLACK_KIB, f"RSS {base[3]} KiB after {base[0]} cycles, {rss} after {done}"

    seen = {k for _, _, known, *_ in soak.results for k in known}
    fixed = set(KNOWN) - seen - INTERMITTENT
    assert not fixed, f"never left any more, delete from KNOWN: {sorted(fixed)}"
    races = {}
    for _, x in errors:
        why = next(why for text, why in RACES.items() if text in x)
        races[why] = races.get(why, 0) + 1
    if seen or races:
        pytest.xfail("known product bugs: " + "; ".join(f"{k} left: {KNOWN[k][1]}" for k in sorted(seen))
                     + "".join(f"; {n} cycle(s) broken off by a race: {why}" for why, n in races.items()))


def report(results, samples, base, total, lanes):
    lines = [f"\nsoak: {len(results)} cycles in {total:.0f} s ({lanes} lanes); server fds {base[2]} "
             f"and RSS {base[3] / 1024:.1f} MiB after {base[0]} cycles, at the end "
             f"{samples[-1][2]} fds and {samples[-1][3] / 1024:.1f} MiB",
             f"{'ending':14}{'cycles':>7}{'errors':>7}{'left':>6}{'known':>7}{'fd drift':>10}{'RSS MiB':>9}"
             f"{'cycle s':>9}{'clean s':>9}{'end->clean':>12}"]
    for ending in ENDINGS:
        rows = [r for r in results if r.ending == ending]
        # The drift over this ending's blocks once the first 10 cycles warmed the server up
        # (so 20 cycles of the first two endings, 25 of the others).
        deltas = [(b[2] - a[2], b[3] - a[3]) for a, b in zip(samples, samples[1:])
                  if b[1] == ending and a[0] >= base[0]]
        lines.append(
            f"{ending:14}{len(rows):7}{sum(1 for r in rows if r.error):7}"
            f"{sum(len(r.unexpected) for r in rows):6}{sum(len(r.known) for r in rows):7}"
            f"{sum(d[0] for d in deltas):+10}{sum(d[1] for d in deltas) / 1024:+9.1f}"
            f"{sum(r.seconds for r in rows) / max(len(rows), 1):9.2f}"
            f"{max((r.clean for r in rows), default=0):9.2f}{max((r.gone for r in rows), default=0):12.2f}")
    for r in results:
        if r.error:
            lines.append(f"broken off ({r.ending}): {r.error}")
    slowest = max(results, key=lambda r: r.clean, default=None)
    if slowest and slowest.lingering:
        lines.append(f"slowest to clean ({slowest.ending}, {slowest.clean:.2f} s): " + ", ".join(slowest.lingering))
    lines.append("fds every 10 cycles: " + " ".join(str(s[2]) for s in samples if s[0] % SAMPLE_EVERY == 0))
    lines.append("RSS MiB every 10 cycles: " + " ".join(f"{s[3] / 1024:.1f}" for s in samples
                                                       if s[0] % SAMPLE_EVERY == 0))
    return "\n".join(lines)
