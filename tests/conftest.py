"""Test-suite plumbing: capability gates, the closing count line, a leftovers check."""
from tests import helpers


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
    leftovers = helpers.leftovers()
    if leftovers:
        terminalreporter.write_line("LEFTOVERS after the tests:\n  " + "\n  ".join(leftovers))
    terminalreporter.write_line(
        f"{n['passed']} passed, {n['failed'] + n['error']} failed, {n['skipped']} skipped")


def pytest_sessionfinish(session, exitstatus):
    # Leftovers make the run fail: nothing of a container may remain after the tests.
    if helpers.leftovers() and session.exitstatus == 0:
        session.exitstatus = 1
