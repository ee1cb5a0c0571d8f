"""A recording fake of container_kernel.runtime.syscalls (youki's TestHelperSyscall).

Every call that would change the process or the mount table is recorded as
(name, args) and not made, so the mount plan's apply() and init's process setup
run unprivileged, in the test process, and the test asserts the calls and their
order. Constants (MS_*, CLONE_*, PR_*) are the real module's.
"""

from container_kernel.runtime import syscalls as real

RECORDED = ("unshare", "mount", "umount2", "pivot_root", "chdir", "prctl", "set_name",
            "sethostname", "capset", "setrlimit", "set_ids", "closerange", "seccomp_load",
            "execvpe")


class RecordingSyscalls:
    def __init__(self):
        self.calls = []

    def __getattr__(self, name):
        if name in RECORDED:
            return lambda *args: self.calls.append((name, args))
        return getattr(real, name)  # the constants, and anything that changes nothing

    def names(self):
        return [name for name, _ in self.calls]

    def of(self, name):
        return [args for n, args in self.calls if n == name]

    def install(self, monkeypatch, *modules):
        """Stand in for syscalls in each module that imported it as `sc`."""
        for module in modules:
            monkeypatch.setattr(module, "sc", self)
        return self
