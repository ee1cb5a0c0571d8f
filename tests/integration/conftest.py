"""Fixtures of the integration tests."""
import os
import signal

import pytest


@pytest.fixture
def procs():
    """Processes a test starts; killed by PID whatever happens."""
    started = []
    yield started
    for p in started:
        if p.poll() is None:
            os.kill(p.pid, signal.SIGKILL)
        p.wait()
