"""Waiting for files to appear in a directory, without polling: inotify(7).

The provisioner waits, for each kernel it starts, for the launcher's word and then for
the kernel's sockets (provisioner.post_launch). A hundred kernels starting at once in one
Jupyter server used to poll their dirs every 50 ms while they waited: 30-60 ms of the
server's CPU per kernel, the most the server spent on them. Here the kernel tells us
instead: one inotify instance for the whole process (an instance is a per-user resource,
128 by default: one per waiting kernel could run out), one watch per dir, and a wake-up
for the waiter when something is created or renamed into its dir.

A waiter still looks again at least every `Watch.wait`'s timeout: a missed event (a full
inotify queue) costs a second, never a hang.
"""

import asyncio
import os
import struct

from ..runtime import syscalls as sc

_EVENT = struct.Struct("iIII")  # struct inotify_event: wd, mask, cookie, len; then the name
MASK = sc.IN_CREATE | sc.IN_MOVED_TO


class _Instance:
    """The process's inotify fd, read on one event loop while anyone waits on it."""

    def __init__(self, loop):
        self.loop = loop
        self.fd = sc.inotify_init1(sc.IN_NONBLOCK | sc.IN_CLOEXEC)
        self.events = {}  # wd -> the asyncio.Event of its waiter
        loop.add_reader(self.fd, self._read)

    def _read(self):
        try:
            data = os.read(self.fd, 65536)
        except BlockingIOError:
            return
        offset = 0
        while offset + _EVENT.size <= len(data):
            wd, mask, _, length = _EVENT.unpack_from(data, offset)
            offset += _EVENT.size + length
            if mask & sc.IN_Q_OVERFLOW:  # events were lost: wake everyone to look
                for event in self.events.values():
                    event.set()
            elif wd in self.events:
                self.events[wd].set()

    def close(self):
        self.loop.remove_reader(self.fd)
        os.close(self.fd)


_instance = None


class Watch:
    """`async with Watch(dir) as w: ... await w.wait(timeout)`: wakes when a file is created
    in (or renamed into) dir, or when wake() is called (a launcher's death, say)."""

    def __init__(self, path):
        self.path = path
        self.event = asyncio.Event()
        self.wd = None

    async def __aenter__(self):
        global _instance
        loop = asyncio.get_running_loop()
        if _instance is not None and _instance.loop is not loop:
            if _instance.events:  # busy on another loop (another thread): fall back on timeouts
                return self
            _instance.close()
            _instance = None
        try:
            if _instance is None:
                _instance = _Instance(loop)
            self.wd = sc.inotify_add_watch(_instance.fd, self.path, MASK)
            _instance.events[self.wd] = self.event
        except OSError:  # no inotify (or no instance left): the caller's timeouts are the fallback
            self.wd = None
            if _instance is not None and not _instance.events:
                _instance.close()
                _instance = None
        return self

    @property
    def live(self):
        """True if events wake us; False if only the timeouts do."""
        return self.wd is not None

    def wake(self):
        self.event.set()

    async def wait(self, timeout):
        """Until something happened in the dir since the last wait, or timeout seconds."""
        try:
            await asyncio.wait_for(self.event.wait(), max(timeout, 0))
        except asyncio.TimeoutError:
            pass
        self.event.clear()

    async def __aexit__(self, *exc):
        global _instance
        if self.wd is not None and _instance is not None:
            _instance.events.pop(self.wd, None)
            try:
                sc.inotify_rm_watch(_instance.fd, self.wd)
            except OSError:
                pass  # the dir is gone: the kernel removed the watch itself
            if not _instance.events:
                _instance.close()
                _instance = None
