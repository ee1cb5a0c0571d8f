"""The container's stdout and stderr: pipes the launcher copies to its own, as containerd's shim does.

Were the payload given the launcher's own fds 1 and 2, it would hold host files
(a Jupyter server's log, a terminal): ipykernel dups its original stdout and
stderr and keeps them open for good. So inside there are only the two ends of
these pipes; the launcher, outside, copies what comes to wherever its own 1 and
2 go, from a thread started once the stages are forked.
"""

import os
import select
import threading

CHUNK = 1 << 16


class Output:
    def __init__(self):
        self.out_r, self.out_w = os.pipe()
        self.err_r, self.err_w = os.pipe()
        self._thread = None
        self._started = False  # from then on the thread owns (and closes) the read ends

    def container_ends(self):
        """The write ends, which init puts on 1 and 2 (and the launcher then closes)."""
        return self.out_w, self.err_w

    def start(self):
        """Close our copies of the write ends (EOF comes when the container's are gone)
        and copy until then."""
        for fd in (self.out_w, self.err_w):
            os.close(fd)
        self.out_w = self.err_w = None
        self._started = True
        self._thread = threading.Thread(target=self._copy, name="ck-output", daemon=True)
        self._thread.start()

    def _copy(self):
        routes = {self.out_r: 1, self.err_r: 2}
        while routes:
            ready, _, _ = select.select(list(routes), [], [])
            for fd in ready:
                data = os.read(fd, CHUNK)
                if not data:
                    os.close(fd)
                    del routes[fd]
                    continue
                _write_all(routes[fd], data)

    def finish(self, timeout=2.0):
        """Wait until all the container wrote is copied (its processes are gone by now)."""
        if self._thread:
            self._thread.join(timeout)
            self._thread = None

    def close(self):
        """After a failed start, before start(): drop every end."""
        if self._started:
            return
        for fd in (self.out_r, self.out_w, self.err_r, self.err_w):
            os.close(fd)
        self._started = True  # nothing is left to close


def _write_all(fd, data):
    try:
        while data:
            data = data[os.write(fd, data):]
    except OSError:  # our reader went away (a closed pipe): keep draining the container's
        pass
