"""procfs.status_fields: several fields of /proc/PID/status from one read."""

import os
import subprocess
import sys

from container_kernel.runtime import procfs


def test_fields_of_a_live_process_come_from_one_read():
    fields = procfs.status_fields(os.getpid(), ("Uid", "Name", "NSpid", "NoSuchField"))
    assert set(fields) == {"Uid", "Name", "NSpid"}
    assert int(fields["Uid"].split()[1]) == os.geteuid()
    assert int(fields["NSpid"].split()[0]) == os.getpid()


def test_a_gone_process_has_no_fields():
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()  # reaped: its PID names no process now (until reused)
    if not os.path.exists(f"/proc/{p.pid}"):  # not reused already
        assert procfs.status_fields(p.pid, ("Uid", "Name", "NSpid")) == {}
