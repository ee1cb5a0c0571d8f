"""dirwatch: one inotify instance for the process, a watch per dir, woken by what appears."""

import asyncio
import os

from container_kernel.kernel import dirwatch


def test_a_file_made_in_the_dir_wakes_its_waiter_and_no_other(tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir(), b.mkdir()

    async def main():
        async with dirwatch.Watch(str(a)) as wa, dirwatch.Watch(str(b)) as wb:
            assert wa.live and wb.live
            assert dirwatch._instance is not None and len(dirwatch._instance.events) == 2
            asyncio.get_running_loop().call_later(0.05, lambda: (a / "sock").touch())
            await wa.wait(30)  # an event, not the 30 s timeout, ends it
            assert (a / "sock").exists()
            assert not wb.event.is_set()
            os.rename(a / "sock", b / "moved")  # IN_MOVED_TO: how the launcher writes its word
            await wb.wait(30)
        assert dirwatch._instance is None  # the last waiter closed the instance

    asyncio.run(asyncio.wait_for(main(), 20))


def test_no_inotify_falls_back_on_timeouts(tmp_path, monkeypatch):
    def refuse(flags):
        raise OSError(24, "inotify_init1: Too many open files")
    monkeypatch.setattr(dirwatch.sc, "inotify_init1", refuse)

    async def main():
        async with dirwatch.Watch(str(tmp_path)) as w:
            assert not w.live
            await w.wait(0.01)  # the timeout alone ends it
    asyncio.run(main())
    assert dirwatch._instance is None
