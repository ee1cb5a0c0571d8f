"""What a container is: a spec, validated once at the edge, then trusted.

Every user input (a CLI flag, a kernel.json argv, a magic's argument) goes
through one of the parse_* functions below, which either return a clean value
or raise a one-line ContainerError naming the bad value and what is allowed;
build() turns a set of options into a Spec, deciding every default in one place
(namespaces, rootless, home, capabilities, the swap default, the ids). Inner
code (mounts, cgroups, init) never re-checks strings. (The habit comes from
runc's libcontainer/specconv and configs/validate; nsjail keeps one config.proto.)

The records are immutable namedtuples rather than dataclasses: importing
`dataclasses` pulls in `inspect` and costs ~10 ms, a third of a container's
whole start budget. `spec._replace(...)` makes a changed copy.
"""

import os
from collections import namedtuple

from .errors import usage
from .security import (DEFAULT_SECCOMP, MASKED_PATHS, READONLY_PATHS,
                       parse_security_opt)
from .parse import (HOST_ROOTFS, MIN_MEMORY, NETWORK_MODES, IOLimit, RootFS, Volume,  # noqa: F401
                    block_device, human_bytes, parse_capabilities, parse_cpus, parse_env,
                    parse_hostname, parse_id, parse_io_limit, parse_memory, parse_memory_swap,
                    parse_network, parse_pids, parse_rate, parse_rootfs, parse_size,
                    parse_userns, parse_volume, parse_workdir)

# Namespace kinds, in the order they are listed everywhere (names as in /proc/<pid>/ns).
NAMESPACES = ("pid", "mnt", "uts", "ipc", "net", "cgroup", "user")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

# The limits, by the controller's name: the one vocabulary of the runtime, the control
# socket and the magics ("cpu", never "cpus"), with the Resources fields each one sets.
LIMITS = ("memory", "cpu", "pids", "io")
LIMIT_FIELDS = {"memory": ("memory", "memory_swap"), "cpu": ("cpus",), "pids": ("pids",),
                "io": ("io_read_bps", "io_write_bps")}

class Resources(namedtuple("Resources", "memory memory_swap cpus pids io_read_bps io_write_bps",
                           defaults=(None, None, None, None, (), ()))):
    """cgroup limits. None means "no limit". memory/memory_swap in bytes (-1: unlimited swap)."""
    __slots__ = ()

    def any(self):
        return any(v not in (None, ()) for v in self)

    def asked(self):
        """The LIMITS this asks for: ("memory", "pids"), say."""
        return tuple(name for name in LIMITS
                     if any(getattr(self, f) not in (None, ()) for f in LIMIT_FIELDS[name]))


class Process(namedtuple("Process", "args env cwd uid gid home rlimits interactive warm",
                         defaults=((), "/", 0, 0, "/root", (), False, False))):
    """The payload run as PID 2. env is a tuple of (name, value): built, never inherited.
    rlimits: ((RLIMIT_*, soft, hard), ...), the rootless fallback for cgroup limits.
    interactive: the host's stdin passes in (docker run -i); else it reads /dev/null.
    warm: args is `this interpreter -m MODULE ...`, run in it rather than exec'd (warm.py)."""
    __slots__ = ()


class Security(namedtuple("Security", "capabilities no_new_privs seccomp masked_paths "
                          "readonly_paths",
                          defaults=(None, True, DEFAULT_SECCOMP, MASKED_PATHS, READONLY_PATHS))):
    """What root inside may do (security.py says why each default), applied by the mount
    plan and init's process setup. capabilities: the names it keeps (None:
    capabilities.DEFAULT); no_new_privs: exec can gain no privilege (setuid bits
    ignored); seccomp: a security.Seccomp policy, or None for unconfined."""
    __slots__ = ()


class Spec(namedtuple("Spec", "id hostname rootfs namespaces network volumes resources process "
                      "security rootless run_base init cgroup_parent state_file",
                      defaults=(None, HOST_ROOTFS, NAMESPACES[:6], "none", (), Resources(), None,
                                Security(), False, "/run/container-kernel", True, None, None))):
    """A whole container. init: a reaping init is PID 1 and the command PID 2 (False:
    the command is PID 1, as docker run without --init); cgroup_parent: the id of a
    container of ours whose cgroup this one's nests in (its limits count there too);
    state_file: where to write the started container's state (ps's JSON) for the caller."""
    __slots__ = ()

    @property
    def run_dir(self):
        return os.path.join(self.run_base, self.id)


def new_id():
    return os.urandom(6).hex()


# field -> its parser; fields are what build() takes, whatever front end named the option.
PARSERS = {"memory": parse_memory, "cpus": parse_cpus, "pids": parse_pids,
           "io_read_bps": parse_io_limit, "io_write_bps": parse_io_limit,
           "network": parse_network, "rootfs": parse_rootfs, "hostname": parse_hostname,
           "volumes": parse_volume, "env": parse_env, "cwd": parse_workdir,
           "cap_add": parse_capabilities, "cap_drop": parse_capabilities, "id": parse_id,
           "persist": lambda text, option: _store().parse_name(text, f"{option} layer name"),
           "security_opt": parse_security_opt, "userns": parse_userns,
           "cgroup_parent": lambda text, option: parse_id(text, option),
           "state_file": lambda text, option: parse_workdir(text, option)}
REPEATED = ("io_read_bps", "io_write_bps", "volumes", "env", "cap_add", "cap_drop", "security_opt")


def parse_options(options):
    """{field: (option, text)} (a list of them for REPEATED fields) -> {field: value}.

    memory_swap is parsed against memory (docker's rule: it is the total of both)."""
    values = {}
    for field, given in options.items():
        if field == "memory_swap":
            continue
        if field in REPEATED:
            values[field] = [PARSERS[field](text, option) for option, text in given]
        else:
            values[field] = PARSERS[field](given[1], given[0])
    if "memory_swap" in options:
        option, text = options["memory_swap"]
        values["memory_swap"] = parse_memory_swap(text, values.get("memory"), option)
    return values


def build(options, command, volumes=(), env=(), cwd=None, cid=None, keep_id=False,
          interactive=False, no_init=False):
    """The Spec for these options ({field: (option, text)}, see parse_options) and command.

    The kernel launcher adds its volumes, env, cwd and container id. Every default
    is decided here, once: the namespaces (no net namespace with --network host; a
    user namespace when not root), home, capabilities, the hardening profile
    (security.py: seccomp, no_new_privs, masked paths), and memory+swap = memory
    (docker's default would be 2x memory: the same value means swap is no escape).
    """
    v = parse_options(options)
    memory = v.get("memory")
    cid = cid or v.get("id") or new_id()
    hostname = v.get("hostname") or cid[:12]
    rootless = os.geteuid() != 0
    network = v.get("network", "none")
    # No new net namespace with --network host or container:ID. private:NAME has one until the
    # launcher finds a running member to join (network.join).
    namespaces = [k for k in NAMESPACES[:6]
                  if not (k == "net" and (network == "host" or network.startswith("container:")))]
    if rootless or v.get("userns") == "auto":
        namespaces.append("user")
    uid = gid = 0
    if keep_id:
        if not rootless:
            raise usage("--user keeps a user's own uid in a rootless container; as root, "
                        "run container-kernel as that user instead")
        uid, gid = os.geteuid(), os.getegid()
    home = home_for(uid)
    from . import capabilities
    caps = capabilities.kept([n for names in v.get("cap_add", ()) for n in names],
                             [n for names in v.get("cap_drop", ()) for n in names])
    rootfs, image_env, image_cwd = _rootfs(v)
    process = Process(tuple(command), default_env(hostname, home, image_env + list(v.get("env", ())) + list(env),
                                                  DEFAULT_PATH if rootfs.kind == "overlay" else None),
                      cwd or v.get("cwd", image_cwd), uid, gid, home, (), interactive)
    security = Security(caps)
    for changes in v.get("security_opt", ()):  # later ones win, as in docker
        security = security._replace(**dict(changes))
    return Spec(
        id=cid, hostname=hostname, rootfs=rootfs,
        namespaces=tuple(namespaces), network=network,
        volumes=tuple(v.get("volumes", ())) + tuple(volumes),
        resources=Resources(memory, v.get("memory_swap", memory), v.get("cpus"), v.get("pids"),
                            tuple(v.get("io_read_bps", ())), tuple(v.get("io_write_bps", ()))),
        process=process, security=security, rootless=rootless,
        run_base=default_run_base(rootless), init=not no_init,
        cgroup_parent=v.get("cgroup_parent"), state_file=v.get("state_file"))


def image_command(options):
    """The Cmd of an imported image given as --rootfs, for a run given no command."""
    if "rootfs" not in options:
        return ()
    option, text = options["rootfs"]
    d = parse_rootfs(text, option).defaults
    return d.cmd if d else ()


def _store():
    from . import store
    return store


def _rootfs(v):
    """(RootFS, its image's env, its image's WorkingDir): --persist joins an overlay rootfs,
    whose interpreter is its own (no host venv on PATH)."""
    rootfs = v.get("rootfs", HOST_ROOTFS)
    if rootfs.kind == "overlay" and os.geteuid() != 0:
        from . import overlay
        overlay.check_rootless(rootfs)
    if v.get("persist"):
        if rootfs.kind != "overlay":
            raise usage("--persist LAYER needs --rootfs NAME (a rootfs of container-kernel's store, "
                        "or a DIR `container-kernel rootfs build` made): it keeps that overlay's upper layer")
        rootfs = rootfs._replace(layer=v["persist"])
    d = rootfs.defaults
    return rootfs, list(d.env) if d else [], (d.workdir if d and d.workdir else "/")


def default_run_base(rootless):
    """Where run dirs live: /run/container-kernel for root, $XDG_RUNTIME_DIR/... for a user."""
    if not rootless:
        return "/run/container-kernel"
    base = os.environ.get("XDG_RUNTIME_DIR") or f"/tmp/container-kernel-{os.geteuid()}"
    return os.path.join(base, "container-kernel")


def home_for(uid):
    """HOME inside: a tmpfs at /root for root, /home/user for anyone else (mounts.py)."""
    return "/root" if uid == 0 else "/home/user"


def default_env(hostname, home, extra=(), path=None):
    """The payload's environment, built from nothing: no host variable passes unless named.

    Like docker: PATH, HOSTNAME, HOME (+ TERM when the host has one), and
    container=container-kernel (the systemd convention for "you are in a container").
    The Python that runs the launcher comes first on PATH, so `python3` inside is
    the same interpreter (and venv) as outside.
    """
    import sys
    bindir = os.path.dirname(sys.executable)
    env = {"PATH": path or (bindir + ":" + DEFAULT_PATH if bindir not in DEFAULT_PATH.split(":")
                            else DEFAULT_PATH),
           "HOSTNAME": hostname, "HOME": home, "LANG": "C.UTF-8", "container": "container-kernel"}
    if os.environ.get("TERM"):
        env["TERM"] = os.environ["TERM"]
    env.update(extra)
    return tuple(env.items())
