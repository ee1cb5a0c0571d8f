"""The control socket's client: how the kernel asks the launcher, outside the container.

One request per connection: a line out (protocol.encode_request), a line back,
read up to protocol.MAX_REPLY bytes (a reply must not fill the kernel's memory),
decoded into the op's reply record (protocol.decode_reply). Every failure is a
protocol.ControlError of one line.
"""

import os
import socket
import time

from .. import protocol


def path():
    """The control socket's path, or None: this kernel has no launcher of ours."""
    return os.environ.get(protocol.CONTROL_ENV)


def request(op, timeout=protocol.CLIENT_TIMEOUT, **fields):
    """Send one request to the launcher; return the op's reply record (protocol.REPLIES)."""
    where = path()
    if not where:
        raise protocol.ControlError("this kernel has no launcher to ask: it is not a container "
                                    f"kernel (no ${protocol.CONTROL_ENV})")
    line = protocol.encode_request(op, **fields)
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            _connect(s, where, timeout)
            s.sendall(line)
            data = protocol.read_line(s, protocol.MAX_REPLY)
    except OSError as e:
        raise protocol.ControlError(f"cannot reach the launcher at {where}: {e.strerror or e}") from None
    except ValueError as e:
        raise protocol.ControlError(f"the launcher's reply was too long: {e}") from None
    return protocol.decode_reply(op, data)


def _connect(sock, where, timeout):
    # A full listen backlog answers EAGAIN at once, even with a timeout set (unix sockets):
    # someone in this container is flooding the launcher; wait our turn, up to the timeout.
    deadline = time.monotonic() + timeout
    while True:
        try:
            return sock.connect(where)
        except BlockingIOError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)

