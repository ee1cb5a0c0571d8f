"""--network egress: a network namespace of its own whose one way out is user-mode NAT.

slirp4netns (podman's rootless default) opens a tap device in the container's
namespace and turns its packets into ordinary sockets of its own, on the host:
no bridge, no iptables, no privilege, so root and rootless get the same network.
What it must not give the container is the host itself:
- 10.0.2.2, slirp's alias of the host's 127.0.0.1, is off (--disable-host-loopback);
- the host's own addresses (a server bound to 0.0.0.0 answers on each) get
  unreachable routes in the container's namespace, added from a short-lived helper
  that enters it. The payload has no CAP_NET_ADMIN, so it cannot remove them.
- slirp itself parses packets the container wrote: it runs --enable-sandbox (its own
  mount namespace, capabilities dropped) and --enable-seccomp.
Its lifetime is the container's: --exit-fd is a pipe whose write end only the
launcher holds (slirp exits at EOF, however the launcher ended), and the reaper
kills it by PID too (reaper.also_kill), should it hang on.
DNS: slirp forwards 10.0.2.3 to the host's resolver; the container's resolv.conf names it.
A host address added after the start (a new veth) is not blocked: the list is read once.
"""

import os

from .errors import ContainerError, usage

SLIRP = "slirp4netns"
DNS = "10.0.2.3"
MTU = 65520  # slirp's maximum is 65521; a large MTU is most of its throughput
TAP = "tap0"
READY_TIMEOUT = 10.0  # seconds slirp may take to configure the tap


def check(spec):
    """Before anything is made: the tool is here. Returns its path (None: not egress)."""
    if spec.network != "egress":
        return None
    import shutil
    path = shutil.which(SLIRP)
    if path is None:
        raise usage(f"--network egress needs {SLIRP}, which is not installed: "
                    f"apt-get install {SLIRP}")
    return path


def resolv_steps(spec, steps):
    """The mount plan with the container's /etc/resolv.conf naming slirp's DNS forwarder."""
    if spec.network != "egress":
        return steps
    text = f"nameserver {DNS}\n"
    step = steps[0]._replace  # a mounts.Step (mounts imports us: no import back)
    out = [s for s in steps if not (s.target == "/etc/resolv.conf" and s.kind in ("copy", "symlink"))]
    if spec.rootfs.kind == "host":
        at = next(i for i, s in enumerate(out) if s.kind == "file" and s.target == "/etc/hosts")
        return out[:at + 1] + [step(kind="file", target="/etc/resolv.conf", source=text, options=None)] + out[at + 1:]
    tree = spec.rootfs.path
    if os.path.lexists(f"{tree}/etc/resolv.conf") and not os.path.islink(f"{tree}/etc/resolv.conf"):
        at = max(i for i, s in enumerate(out) if s.kind in ("rbind", "overlay", "file-over"))
        return out[:at + 1] + [step(kind="file-over", target="/etc/resolv.conf", source=text, options=None)] + out[at + 1:]
    return out  # an image without the file (or a link out of it): no DNS, said by the resolver


class Slirp:
    """The slirp4netns process of one container: started once init's namespaces exist."""

    def __init__(self, path):
        self.path = path
        self.pid = None
        self._exit = None  # our end of its --exit-fd pipe

    def start(self, init_pid, userns, log):
        """Start it for init's network namespace and wait until the tap is configured.
        log: the file its messages go to (in the run dir), the last of them in our error."""
        import select
        exit_r, self._exit = os.pipe()
        ready_r, ready_w = os.pipe()
        argv = [self.path, "--configure", f"--mtu={MTU}", "--disable-host-loopback",
                "--enable-sandbox", "--enable-seccomp", "--exit-fd=3", "--ready-fd=4"]
        if userns:
            argv.append(f"--userns-path=/proc/{init_pid}/ns/user")
        argv += [str(init_pid), TAP]
        null = os.open("/dev/null", os.O_RDWR | os.O_CLOEXEC)
        err = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        try:
            # posix_spawn: no Python runs in the child, and the launcher's blocked signals
            # are not slirp's (a blocked mask survives exec).
            self.pid = os.posix_spawn(self.path, argv, {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
                                      file_actions=[(os.POSIX_SPAWN_DUP2, null, 0),
                                                    (os.POSIX_SPAWN_DUP2, err, 1),
                                                    (os.POSIX_SPAWN_DUP2, err, 2),
                                                    (os.POSIX_SPAWN_DUP2, exit_r, 3),
                                                    (os.POSIX_SPAWN_DUP2, ready_w, 4)],
                                      setsigmask=(), setsid=True)
        finally:
            for fd in (null, err, exit_r, ready_w):
                os.close(fd)
        try:
            if not select.select([ready_r], [], [], READY_TIMEOUT)[0] or os.read(ready_r, 1) != b"1":
                raise ContainerError(f"--network egress: {SLIRP} did not configure the container's "
                                     f"network within {READY_TIMEOUT:g} s: {_last_line(log)}")
        finally:
            os.close(ready_r)
        return self.pid

    def stop(self):
        """Safe to call twice; the container is gone or going."""
        if self._exit is not None:
            os.close(self._exit)  # EOF on its exit fd: it ends by itself
            self._exit = None
        if self.pid:
            import time
            deadline = time.monotonic() + 2
            while True:
                try:
                    if os.waitpid(self.pid, os.WNOHANG)[0]:
                        break
                except ChildProcessError:
                    break
                if time.monotonic() > deadline:
                    os.kill(self.pid, 9)
                    os.waitpid(self.pid, 0)
                    break
                time.sleep(0.01)
            self.pid = None


def _loopback(addr):
    return addr == "::1" or addr.startswith("127.")  # the container's own lo has these


def _last_line(path):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.read()[-4096:].splitlines() if l.strip()]
    except OSError:
        lines = []
    return lines[-1] if lines else "it said nothing"


def block_host(init_pid, userns):
    """Unreachable routes, in init's network namespace, for every address of the host's
    interfaces (read here, in the host's namespace), from a fork that enters it."""
    from . import syscalls as sc
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(r)
            from pyroute2 import IPRoute
            with IPRoute() as ipr:
                addrs = sorted({(m["family"], m.get("IFA_ADDRESS")) for m in ipr.get_addr()
                                if m.get("IFA_ADDRESS") and not _loopback(m.get("IFA_ADDRESS"))})
            if userns:  # a user namespace first: its root is who may change the net namespace
                fd = os.open(f"/proc/{init_pid}/ns/user", os.O_RDONLY)
                sc.setns(fd, sc.CLONE_NEWUSER)
            fd = os.open(f"/proc/{init_pid}/ns/net", os.O_RDONLY)
            sc.setns(fd, sc.CLONE_NEWNET)
            with IPRoute() as ipr:
                for family, addr in addrs:
                    try:
                        ipr.route("add", dst=f"{addr}/{32 if family == 2 else 128}",
                                  family=family, type="unreachable")
                    except Exception:
                        if family == 2:
                            raise  # v6 may be off in the namespace: slirp gives it none anyway
            os.write(w, f"{len(addrs)}".encode())
            code = 0
        except BaseException as e:
            os.write(w, f"error {type(e).__name__}: {e}".replace("\n", " ").encode())
        finally:
            os._exit(code)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        said = f.read(4096).decode(errors="replace")
    _, status = os.waitpid(pid, 0)
    if status != 0 or not said.isdigit():
        raise ContainerError(f"--network egress: cannot block the host's addresses in the "
                             f"container's network: {said or 'the helper died'}")
    return int(said)
