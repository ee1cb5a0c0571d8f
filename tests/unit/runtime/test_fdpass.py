"""runtime/fdpass.py: one message with fds over a real socketpair."""
import os
import socket
import threading

import pytest

from container_kernel.runtime import fdpass


def test_a_message_larger_than_the_socket_buffer_arrives_whole_with_its_fds():
    a, b = socket.socketpair()
    r, w = os.pipe()
    data = os.urandom(4 << 20)
    t = threading.Thread(target=fdpass.send, args=(a, data, [w]))
    t.start()
    got, fds = fdpass.receive(b, 2, 8 << 20)
    t.join()
    assert got == data and len(fds) == 1
    os.write(fds[0], b"x")
    assert os.read(r, 1) == b"x"
    for fd in (r, w, *fds):
        os.close(fd)


def test_eof_is_none_and_a_message_over_the_limit_is_refused_with_its_fds_closed():
    a, b = socket.socketpair()
    a.close()
    assert fdpass.receive(b, 1, 10) is None
    a, b = socket.socketpair()
    r, w = os.pipe()
    fdpass.send(a, b"x" * 100, [w])
    with pytest.raises(OSError, match="100 bytes"):
        fdpass.receive(b, 1, 10)
    os.close(w)
    assert os.read(r, 1) == b""  # every copy of the write end is closed
