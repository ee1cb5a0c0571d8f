"""100 container kernels started at once through AsyncKernelManager, as a server does when a
class opens its notebooks together: every one must start and answer, and once all are shut
down nothing of any may be left."""
import asyncio
import os
import resource
import time
import uuid

import pytest
import zmq.asyncio
from jupyter_client import AsyncKernelManager

from tests.soak.objects import CLEAN_WITHIN, KernelObjects, cell

KERNELS = 100


class Kernel:
    """One kernel of the crowd: its manager, its client, its objects, how its start went."""

    def __init__(self, name, runtime, context):
        self.km = AsyncKernelManager(kernel_name=name, context=context,
                                     connection_file=os.path.join(runtime, f"kernel-{uuid.uuid4()}.json"))
        self.kc = None
        self.objs = KernelObjects()
        self.error = None
        self.ready = None  # seconds from the crowd's start until this one was ready

    async def start(self, t0):
        try:
            await self.km.start_kernel()
            self.note()
            self.kc = self.km.client()
            self.kc.start_channels()
            await self.kc.wait_for_ready(timeout=180)
            self.ready = time.monotonic() - t0
            assert await cell(self.kc, "print(6 * 7)") == "42\n"
        except Exception as e:  # counted, and the crowd goes on: a server's other kernels would
            self.error = f"{type(e).__name__}: {e}"
            self.note()

    def note(self):
        """Name what this kernel made, as far as it got (a failed start made some of it too)."""
        self.objs.add_km(self.km)

    async def shutdown(self):
        if self.kc is not None:
            self.kc.stop_channels()
        if self.km.has_kernel:
            await self.km.shutdown_kernel()
        else:  # a start that failed: what a server's failed start request cleans
            await self.km.cleanup_resources()


@pytest.fixture
def many_fds():
    """RLIMIT_NOFILE high enough for 100 kernels' clients (a dozen fds each)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 40 * KERNELS
    if hard != resource.RLIM_INFINITY and hard < want:
        pytest.skip(f"RLIMIT_NOFILE's hard limit is {hard} here: {KERNELS} kernels need {want}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.mark.timeout(600)
def test_100_kernels_at_once_all_start_and_leave_nothing(soak_spec, many_fds, capsys):
    name, runtime = soak_spec
    context = zmq.asyncio.Context()  # one for all, as jupyter_server's MultiKernelManager has it
    context.setsockopt(zmq.LINGER, 0)
    kernels = [Kernel(name, runtime, context) for _ in range(KERNELS)]

    async def crowd():
        t0 = time.monotonic()
        await asyncio.gather(*(k.start(t0) for k in kernels))
        started = time.monotonic() - t0
        t1 = time.monotonic()
        await asyncio.gather(*(k.shutdown() for k in kernels))  # as shutdown_all does
        stopped = time.monotonic() - t1
        # The 2 s run from the last shutdown, for all of them together.
        left = await asyncio.gather(*(k.objs.wait_clean(CLEAN_WITHIN) for k in kernels))
        return started, stopped, {k.km.connection_file: rest for k, (rest, _) in zip(kernels, left) if rest}

    try:
        started, stopped, left = asyncio.run(crowd())
    finally:
        context.destroy(linger=0)
    failed = [k.error for k in kernels if k.error]
    ready = sorted(k.ready for k in kernels if k.ready is not None)
    with capsys.disabled():
        print(f"\nscale: {KERNELS} kernels at once: all ready in {started:.1f} s "
              f"(first {ready[0] if ready else 0:.1f} s, median {ready[len(ready) // 2] if ready else 0:.1f} s), "
              f"{len(failed)} failed; shut down in {stopped:.1f} s; "
              f"{sum(len(v) for v in left.values())} objects left")
        for error in sorted(set(failed)):
            print(f"  {failed.count(error)} x {error}")
        for x in [x for v in left.values() for x in v]:
            print(f"  left: {x}")
    assert not failed, f"{len(failed)} of {KERNELS} kernels failed to start: {sorted(set(failed))}"
    assert not left, "left after the shutdown:\n" + "\n".join(f"  {x}" for v in left.values() for x in v)
