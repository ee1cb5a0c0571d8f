"""A stand-in for the launcher's control socket, for the tests of the inside's client side."""

import json
import socket
import threading

import pytest

from container_kernel import protocol


class FakeLauncher:
    """A control socket that answers each connection with the next canned line, and
    keeps the request lines it was sent."""

    def __init__(self, path, replies):
        self.path = str(path)
        self.replies = list(replies)
        self.requests = []
        self.listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.listener.bind(self.path)
        self.listener.listen(4)
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for reply in self.replies:
            conn, _ = self.listener.accept()
            with conn:
                self.requests.append(json.loads(protocol.read_line(conn, protocol.MAX_LINE)))
                conn.sendall(reply)

    def close(self):
        self.thread.join(5)
        self.listener.close()


@pytest.fixture
def launcher(tmp_path, monkeypatch):
    """launcher(*reply lines) -> a FakeLauncher at $CK_CONTROL."""
    made = []

    def start(*replies):
        fake = FakeLauncher(tmp_path / f"control-{len(made)}.sock", replies)
        monkeypatch.setenv(protocol.CONTROL_ENV, fake.path)
        made.append(fake)
        return fake

    yield start
    for fake in made:
        fake.close()
