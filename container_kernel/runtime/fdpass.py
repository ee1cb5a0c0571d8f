"""One message with fds over a unix socket: a length, the fds (SCM_RIGHTS), then the bytes.

A seed gets its config this way from its launcher (seed.py), and a warm-start
launcher its request from the provisioner (kernel/template.py). The fds ride on the
first sendmsg only, with the 8-byte length; the body follows with sendall, so a
body larger than the socket's buffer is no special case.
"""

import os
import socket

HEAD = 8


def send(sock, data, fds):
    socket.send_fds(sock, [len(data).to_bytes(HEAD, "big")], list(fds))
    sock.sendall(data)


def receive(sock, max_fds, limit):
    """(data, fds), or None at EOF before a message. A short message or one over limit
    bytes is an OSError (its fds are closed)."""
    head, fds, _, _ = socket.recv_fds(sock, HEAD, max_fds)
    if not head:
        return None
    try:
        if len(head) < HEAD:
            raise OSError("an incomplete message")
        size = int.from_bytes(head, "big")
        if size > limit:
            raise OSError(f"a message of {size} bytes (at most {limit})")
        data = bytearray()
        while len(data) < size:
            chunk = sock.recv(min(size - len(data), 1 << 20))
            if not chunk:
                raise OSError("an incomplete message")
            data += chunk
    except OSError:
        for fd in fds:
            os.close(fd)
        raise
    return bytes(data), fds
