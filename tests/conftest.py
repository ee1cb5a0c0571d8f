"""Test-suite plumbing: capability gates, the closing count line, a leftovers check.

The leftovers check judges only this run: what the host held before it began (a
kernel force-killed last week, another user's container) is snapshotted at the
start, reported with `container-kernel gc` as the fix, and not counted."""
import os

from tests import helpers

_before = set()
_layers_before = set()


def _package_layers():
    """{name: view} of the store's package layers (a kernel start makes its kernelspec's)."""
    from container_kernel.runtime import package_layer
    return {layer.name: layer for layer in package_layer.layers()}


def pytest_sessionfinish(session):
    # This process was the Jupyter server of the kernel tests: end its warm-start templates,
    # as a server's end does, before the leftovers are counted.
    import sys
    warm_start = sys.modules.get("container_kernel.kernel.warm_start")
    if warm_start:
        warm_start.Client.stop_all()


def pytest_sessionstart(session):
    _before.update(helpers.leftovers())
    _layers_before.update(_package_layers())


def ours():
    return [x for x in helpers.leftovers() if x not in _before]


def pytest_terminal_summary(terminalreporter):
    stats = terminalreporter.stats
    n = {k: len([r for r in stats.get(k, []) if getattr(r, "when", "call") in ("call", "setup")])
         for k in ("passed", "failed", "skipped", "error")}
    reasons = {}
    for r in stats.get("skipped", []):
        reason = r.longrepr[2] if isinstance(r.longrepr, tuple) else str(r.longrepr)
        reasons[reason] = reasons.get(reason, 0) + 1
    if reasons:
        terminalreporter.write_line("skipped, and why:")
        for reason, count in sorted(reasons.items()):
            terminalreporter.write_line(f"  {count} x {reason}")
    if _before:
        terminalreporter.write_line(
            "left on this host before the tests began (not counted; `sudo container-kernel gc` "
            "removes what dead containers left):\n  " + "\n  ".join(sorted(_before)))
    leftovers = ours()
    if leftovers:
        terminalreporter.write_line("LEFTOVERS after the tests:\n  " + "\n  ".join(leftovers))
    terminalreporter.write_line(
        f"{n['passed']} passed, {n['failed'] + n['error']} failed, {n['skipped']} skipped")


def _remove_our_empty_layers():
    """The empty package layers this run's kernels made for its kernelspecs; a layer that
    holds packages, or that was there before, is not ours to remove."""
    from container_kernel.runtime import store
    for name, layer in _package_layers().items():
        try:
            if name not in _layers_before and not layer.holder and not os.listdir(layer.prefix):
                store.remove_tree(layer.path)
        except OSError:  # gone already, or not ours to read: left as it is
            continue


def pytest_sessionfinish(session, exitstatus):
    _remove_our_empty_layers()
    # Leftovers make the run fail: nothing of a container this run made may remain.
    if ours() and session.exitstatus == 0:
        session.exitstatus = 1
