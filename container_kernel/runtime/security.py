"""What root inside a container may not do, beyond its capabilities: the hardening profile.

Tighter than Docker's default on every row where we differ (the README's table):
- seccomp: Docker's default profile (runtime/profiles/), plus no namespace at all:
  unshare, setns and a namespace-creating clone answer EPERM whatever the
  capabilities, so a notebook cannot make a nested user namespace;
- no_new_privs on by default (Docker: opt-in), since the host rootfs shows the
  host's setuid binaries;
- Docker's masked paths (a file under /dev/null, a directory under an empty
  read-only tmpfs) and read-only paths, /proc/sys first of all: root inside can
  otherwise write /proc/sys/kernel/core_pattern, and the host runs that pattern's
  program as root at the next crash;
- devices: the minimal /dev set (runtime/devices.py).

`--security-opt` takes what Docker's does for these: seccomp=unconfined,
seccomp=PROFILE.json (Docker's JSON format), no-new-privileges[=true|false],
systempaths=unconfined (no masked or read-only paths).
"""

from collections import namedtuple

from .errors import usage

# moby's oci/defaults.go: MaskedPaths and ReadonlyPaths.
MASKED_PATHS = ("/proc/asound", "/proc/acpi", "/proc/interrupts", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats",
                "/proc/sched_debug", "/proc/scsi", "/sys/firmware", "/sys/devices/virtual/powercap")
READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
SECURITY_OPTS = ("seccomp=unconfined, seccomp=PROFILE.json, no-new-privileges[=true|false] "
                 "or systempaths=unconfined")


class Seccomp(namedtuple("Seccomp", "profile deny_namespaces", defaults=(None, True))):
    """profile: a Docker-format JSON file, or None for the shipped docker-default;
    deny_namespaces: our policy on top (no unshare, setns, namespace-creating clone)."""
    __slots__ = ()

    def name(self):
        policy = " + no namespaces, no socketcall" if self.deny_namespaces else ""
        return (self.profile or "docker-default") + policy


DEFAULT_SECCOMP = Seccomp()


def parse_security_opt(text, option="--security-opt"):
    """One --security-opt value -> [(Security field, value)]: seccomp (a Seccomp or None),
    no_new_privs (a bool), or masked_paths and readonly_paths (empty: systempaths=unconfined).

    Docker spells key and value with "=" or ":" (no-new-privileges:true)."""
    text = str(text).strip()
    key, sep, value = text.partition("=")
    if not sep:
        key, sep, value = text.partition(":")
    if key == "seccomp" and value:
        if value == "unconfined":
            return [("seccomp", None)]
        import os
        path = os.path.abspath(value)
        from . import seccomp  # json and the parser: only for a profile of the user's
        seccomp.load_profile(path, option)  # one line of error for a file that does not parse
        return [("seccomp", Seccomp(path))]
    if key == "no-new-privileges" and value in ("", "true", "false"):
        return [("no_new_privs", value != "false")]
    if key == "systempaths" and value == "unconfined":
        return [("masked_paths", ()), ("readonly_paths", ())]
    raise usage(f"{option}: unknown value {text!r}: use {SECURITY_OPTS}")
