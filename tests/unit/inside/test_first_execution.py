"""The extension's first-cell notice, on IPython's real EventManager: said once, at the
first cell; unload_ipython_extension takes it away before it is said."""

from types import SimpleNamespace

from IPython.core.events import EventManager, available_events

from container_kernel import protocol
from container_kernel.inside import extension


def shell():
    ip = SimpleNamespace()
    ip.events = EventManager(ip, available_events)
    return ip


def test_the_previous_kernels_death_is_said_at_the_first_cell_only(monkeypatch, capsys):
    monkeypatch.setenv(protocol.PREVIOUS_EXIT_ENV, "the previous kernel was killed by the OOM killer")
    ip = shell()
    ip.events.register("pre_run_cell", extension._FirstExecution(ip))
    ip.events.trigger("pre_run_cell", None)
    ip.events.trigger("pre_run_cell", None)
    assert capsys.readouterr().err.count("killed by the OOM killer") == 1
    assert ip.events.callbacks["pre_run_cell"] == []


def test_unload_takes_the_notice_away(monkeypatch, capsys):
    monkeypatch.setenv(protocol.PREVIOUS_EXIT_ENV, "the previous kernel was killed by the OOM killer")
    ip = shell()
    ip.events.register("pre_run_cell", extension._FirstExecution(ip))
    extension.unload(ip)
    ip.events.trigger("pre_run_cell", None)
    assert capsys.readouterr().err == ""
