"""`container-kernel rootfs build`: a Debian root filesystem from the host's own mirror.

The seed made its rootfs with `debootstrap --variant=minbase`; mmdebstrap does the
same faster (one apt run, not debootstrap's shell resolver) and can build without
root (`--mode=unshare`, with the user's subuids). Either way the kernel's own
packages go in (PACKAGES), so the kernel runs the rootfs's /usr/bin/python3 and
only the pure-Python container_kernel package is bound in.

The order makes a failure leave nothing: every check (tool, names, mirror, disk
space) comes first; the tree is built under a hidden name (store.NEW) in a mount
namespace of its own (the tools mount /proc and /dev inside the chroot, and a
crash would otherwise leave those mounts on the host); it is verified by running
its python in a container; only then is it renamed into place. A config key
(suite, variant, packages, mirror, architecture) lets a rerun reuse the result.
"""

import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections import namedtuple

from . import apt_sources, store
from .errors import ContainerError, usage
from .parse import human_bytes

PACKAGES = ("python3", "python3-ipykernel", "python3-psutil", "python3-ipywidgets")
VARIANTS = ("minbase", "buildd")
TOOLS = ("mmdebstrap", "debootstrap")
APT_LINE = "apt-get install debootstrap mmdebstrap"
MIN_FREE = 1536 << 20  # a minbase tree with ipykernel is ~650 MiB, its .debs as much again
TICK = 15.0  # seconds between progress lines while a stage runs long
VERIFY = ("import json, platform, sys, ipykernel, psutil, ipywidgets; "
          "print(json.dumps({'python': platform.python_version(), 'executable': sys.executable, "
          "'ipykernel': ipykernel.__version__, 'ipywidgets': ipywidgets.__version__}))")


class Build(namedtuple("Build", "target name suite variant packages tool mirror key")):
    """A checked build request. target: the entry's dir (holding config.json and rootfs/)."""
    __slots__ = ()

    def config(self):
        return {"suite": self.suite, "variant": self.variant, "packages": list(self.packages),
                "mirror": self.mirror, "arch": _arch()}


def config_key(suite, variant, packages, mirror):
    text = json.dumps({"suite": suite, "variant": variant, "packages": sorted(set(packages)),
                       "mirror": mirror, "arch": _arch()}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _arch():
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(os.uname().machine, os.uname().machine)


def parse_package(text):
    # Debian policy 5.6.1: lower case letters, digits, + - . ; two characters at least.
    ok = len(text) >= 2 and text[0].isalnum() and text.isascii() and \
        all(c.islower() or c.isdigit() or c in "+-." for c in text)
    if not ok:
        raise usage(f"rootfs build: --package: invalid package name {text!r}: use a Debian "
                    "package name (lower case letters, digits, '+', '-', '.')")
    return text


def plan(where, suite=None, variant="minbase", packages=(), tool=None, mirror=None):
    """Check what was asked, create nothing: the Build, or one line of error (exit 2). What
    the host lacks for a build (check_before) is asked only when one is needed: a rerun that
    reuses its build needs no tool."""
    if variant not in VARIANTS:
        raise usage(f"rootfs build: --variant: {variant!r} is not one of {', '.join(VARIANTS)}")
    packages = tuple(dict.fromkeys(PACKAGES + tuple(parse_package(p) for p in packages)))
    tool = tool or next((t for t in TOOLS if shutil.which(t)), TOOLS[1])
    if tool not in TOOLS:
        raise usage(f"rootfs build: --tool: {tool!r} is not one of {' or '.join(TOOLS)}")
    if store.is_path(where):
        target, name = os.path.abspath(where), os.path.basename(os.path.abspath(where))
    else:
        name = store.parse_name(where)
        target = store.rootfs_dir(name)
    suite = suite or apt_sources.host_suite() or "bookworm"
    if not suite.replace("-", "").isalnum() or not suite.isascii():
        raise usage(f"rootfs build: --suite: invalid suite {suite!r}: use a codename (bookworm)")
    mirror = mirror or _host_mirror(suite)
    key = config_key(suite, variant, packages, mirror)
    return Build(target, name, suite, variant, packages, tool, mirror, key)


def _has_subuids(path="/etc/subuid"):
    import pwd
    me = {str(os.geteuid()), pwd.getpwuid(os.geteuid()).pw_name}
    try:
        with open(path) as f:
            return any(line.split(":")[0] in me for line in f)
    except OSError:
        return False


def _host_mirror(suite):
    sources = apt_sources.host_sources()
    mirrors = apt_sources.mirrors_for(suite, sources)
    if not mirrors:
        named = ", ".join(sorted({x for s in sources for x in s.suites})) or "none"
        raise usage(f"rootfs build: the host's apt sources name no mirror for suite {suite!r} "
                    f"with main (they name: {named}); use --suite one of those, or --mirror URL")
    return mirrors[0]


def existing(build):
    """The entry already at the target with the same key (reuse it), None if there is none;
    one line of error when the target exists and is not ours or another config's."""
    if not os.path.lexists(build.target):
        return None
    if os.path.isdir(build.target) and not os.path.islink(build.target) \
            and not os.listdir(build.target):
        return None  # an empty DIR: ours to fill
    found = store.entry(build.target, build.name)
    if found is None:
        raise usage(f"rootfs build: {build.target} exists and is not a rootfs of container-kernel "
                    "(no config.json of ours): choose a new or empty directory")
    if found.key != build.key:
        old = found.config.get("config", {})
        diff = [k for k, v in build.config().items() if old.get(k) != v]
        raise usage(f"rootfs build: {build.target} was built with another config "
                    f"({', '.join(diff) or 'key'} differ): `container-kernel rootfs rm` it first, "
                    "or choose another name")
    return found


def check_before(build):
    """The tool is there (and may build as this user), the mirror answers and the disk has
    room: before anything is made (exit 2, as for any request that cannot start)."""
    tool = build.tool
    if not shutil.which(tool):
        raise usage(f"rootfs build: {tool} is not installed: {APT_LINE}")
    if os.geteuid() != 0:
        if tool == "debootstrap":
            raise usage("rootfs build: debootstrap needs root: run as root, or use --tool "
                        "mmdebstrap (it builds rootless with your subuids)")
        if not _has_subuids():
            raise usage(f"rootfs build: not root and no subuid range for uid {os.geteuid()} in "
                        "/etc/subuid: mmdebstrap cannot build rootless (run as root, or "
                        "usermod --add-subuids/--add-subgids)")
    why = apt_sources.reachable(build.mirror, build.suite)
    if why:
        raise usage(f"rootfs build: no mirror reachable for {build.suite}: {why} "
                             "(the host's apt sources name it; check the network or --mirror)")
    top = build.target
    while not os.path.exists(top):
        top = os.path.dirname(top)
    st = os.statvfs(top)
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE:
        raise usage(f"rootfs build: only {human_bytes(free)} free on {top}: a build needs "
                             f"{human_bytes(MIN_FREE)}; free some space or build elsewhere (DIR)")


def command(build, tree):
    include = "--include=" + ",".join(build.packages)
    if build.tool == "mmdebstrap":
        mode = ["--mode=unshare"] if os.geteuid() != 0 else ["--mode=root"]
        argv = ["mmdebstrap", *mode, f"--variant={build.variant}", include,
                build.suite, tree, build.mirror]
    else:
        # debootstrap's own resolver cannot order ipykernel's dependencies (python3-zmq fails to
        # configure), so it makes the base and apt, in the chroot, adds the packages.
        # Its mounts (/proc for apt) die with the mount namespace the build runs in.
        q = shlex.quote(tree)
        argv = ["sh", "-ec", f"debootstrap --variant={build.variant} {build.suite} {q} "
                f"{shlex.quote(build.mirror)}\n"
                f"echo 'I: installing {', '.join(build.packages)} with apt-get in the chroot...'\n"
                f"mount -t proc proc {q}/proc\ncp /etc/resolv.conf {q}/etc/resolv.conf\n"
                f"chroot {q} apt-get update -qq\n"
                f"chroot {q} apt-get install -y -qq --no-install-recommends {' '.join(build.packages)}\n"
                f"chroot {q} apt-get clean\numount {q}/proc"]
    if os.geteuid() == 0:  # the tools' mounts in the chroot die with this namespace
        argv = ["unshare", "--mount", "--propagation", "private", "--"] + argv
    return argv


def run(build, out=sys.stdout):
    """Build (or reuse) the rootfs; returns its store.Entry."""
    found = existing(build)
    if found is not None:
        print(f"rootfs {build.name}: up to date (config {build.key}, built "
              f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(found.config.get('built', 0)))}), "
              f"reusing {found.path}", file=out)
        return found
    check_before(build)
    parent, base = os.path.dirname(build.target), os.path.basename(build.target)
    os.makedirs(parent, 0o755, exist_ok=True)
    work = os.path.join(parent, f"{store.NEW}{base}-{os.getpid()}")
    os.mkdir(work, 0o755)
    start = time.monotonic()
    try:
        tree = os.path.join(work, "rootfs")
        print(f"rootfs {build.name}: {build.tool} {build.variant} {build.suite} from {build.mirror} "
              f"+ {', '.join(build.packages)}", file=out, flush=True)
        _run_tool(build, tree, work, start, out)
        _tidy(tree)
        _stage(out, start, "verifying: the rootfs's python in a container")
        facts = verify(tree)
        size = store.tree_size(tree)
        seconds = round(time.monotonic() - start, 1)
        store.write_config(work, {"name": build.name, "key": build.key, "config": build.config(),
                                  "kind": "build", "tool": build.tool, "built": time.time(),
                                  "seconds": seconds, "size": size, "os_release": os_release(tree),
                                  **facts})
        if os.path.isdir(build.target):
            os.rmdir(build.target)  # the empty DIR existing() allowed
        os.rename(work, build.target)
    except BaseException:
        store.remove(work)
        raise
    print(f"rootfs {build.name}: built in {seconds:.0f} s, {human_bytes(size)}, python {facts['python']}, "
          f"ipykernel {facts['ipykernel']}: {build.target}", file=out, flush=True)
    return store.entry(build.target, build.name)


def _stage(out, start, text):
    print(f"[{time.monotonic() - start:5.0f}s] {text}", file=out, flush=True)


def _run_tool(build, tree, work, start, out):
    import select
    log_path = os.path.join(work, "build.log")
    argv = command(build, tree)
    with open(log_path, "w") as log:
        p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, env=dict(os.environ, LC_ALL="C.UTF-8",
                                                                DEBIAN_FRONTEND="noninteractive"))
        last_tick, buf, stage = time.monotonic(), b"", "starting"
        try:
            while True:
                ready = select.select([p.stdout], [], [], 1.0)[0]
                if ready:
                    chunk = os.read(p.stdout.fileno(), 65536)
                    if not chunk:
                        break
                    log.write(chunk.decode(errors="replace"))
                    buf += chunk
                    *lines, buf = buf.split(b"\n")
                    for line in lines:
                        text = line.decode(errors="replace").strip()
                        if _is_stage(text):
                            stage = text[3:]
                            _stage(out, start, stage)
                if time.monotonic() - last_tick >= TICK:
                    last_tick = time.monotonic()
                    debs, size = _debs(tree)
                    _stage(out, start, f"  ... {stage} ({debs} packages fetched, "
                           f"{human_bytes(size)} of .debs; {_installed(tree)} installed)")
            code = p.wait()
        except BaseException:
            p.kill()
            p.wait()
            raise
    if code != 0:
        with open(log_path, errors="replace") as f:
            tail = f.read().splitlines()[-15:]
        errors = [t for t in tail if t.startswith("E:")] or tail[-1:] or ["no output"]
        sys.stderr.write("".join(f"  | {t}\n" for t in tail))
        raise ContainerError(f"rootfs build: {build.tool} failed (exit {code}): {errors[-1][:200]}")


def _is_stage(text):
    # debootstrap's per-package lines ("I: Retrieving libc6 2.36-9") are counted, not shown.
    return text.startswith("I: ") and not text.startswith(
        ("I: Retrieving ", "I: Validating ", "I: Extracting ", "I: Unpacking ", "I: Configuring "))


def _debs(tree):
    archives = os.path.join(tree, "var/cache/apt/archives")
    try:
        entries = [e for e in os.scandir(archives) if e.name.endswith(".deb")]
    except OSError:
        return 0, 0
    return len(entries), sum(e.stat(follow_symlinks=False).st_size for e in entries)


def _installed(tree):
    try:
        with open(os.path.join(tree, "var/lib/dpkg/status"), "rb") as f:
            return f.read().count(b"\nStatus: install ok installed")
    except OSError:
        return 0


def _tidy(tree):
    """What apt keeps and a rootfs need not (debootstrap leaves its .debs)."""
    for sub in ("var/cache/apt/archives", "var/lib/apt/lists"):
        d = os.path.join(tree, sub)
        for e in _scandir(d):
            if e.is_file(follow_symlinks=False) and e.name not in ("lock",):
                os.unlink(e.path)


def _scandir(d):
    try:
        return list(os.scandir(d))
    except OSError:
        return []


def verify(tree):
    """Run the tree's /usr/bin/python3 in a container of ours (read-only): its versions."""
    argv = [sys.executable, "-m", "container_kernel", "run", "--rootfs", tree,
            "--", "/usr/bin/python3", "-c", VERIFY]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    try:
        facts = json.loads(p.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise ContainerError(f"rootfs build: the new rootfs's python failed in a container (exit "
                             f"{p.returncode}): {(p.stderr.strip().splitlines() or ['no output'])[-1]}")
    return facts


def os_release(tree):
    """PRETTY_NAME of the tree's os-release (a symlink into usr/lib is read inside the tree)."""
    for rel in ("etc/os-release", "usr/lib/os-release"):
        path = os.path.join(tree, rel)
        if os.path.isfile(path) and not os.path.islink(path):
            with open(path) as f:
                for line in f:
                    if line.startswith("PRETTY_NAME="):
                        return line.split("=", 1)[1].strip().strip('"')
    return None
