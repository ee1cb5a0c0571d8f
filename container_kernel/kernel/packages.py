"""The kernel's package layer, and %pip's build sibling: pip runs there, never here.

A package's build step (setup.py, a build backend) is code someone else wrote, and
pip itself parses what an index sent. So the launcher runs neither: for each %pip
install or uninstall it starts a build sibling (siblings.py) with
- the kernel's rootfs and hardening, its cgroup a child of the kernel's, a time limit;
- the package layer's prefix bound read-write (the only host dir it sees), the
  kernel's own Python read-only as ever;
- --network egress: the index is reachable, the host (its loopback, its addresses) is not;
- the layer's lock held by this launcher until it ends: one writer at a time.
The kernel itself keeps its network (none by default) and reads the layer read-only.
"""

import os

from .. import pip_args
from .. import protocol as P
from ..runtime import package_layer
from ..runtime import spec as S
from ..runtime.errors import ContainerError

TIMEOUT = 300  # seconds a build may take (siblings.MAX_TIMEOUT)
NOTICE_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                          "inside", "pip_notice")  # its sitecustomize: `!pip install` says "use %pip"
# pip as a module of the kernel's Python, with the layer's site dirs *after* its own (so
# pip sees what is installed there), installing into the layer and nowhere else.
BOOT = """import site, sys, sysconfig
prefix = sys.argv.pop(1)
scheme = sysconfig.get_preferred_scheme("prefix")
for key in ("purelib", "platlib"):
    site.addsitedir(sysconfig.get_path(key, scheme, {"base": prefix, "platbase": prefix}))
sys.argv[0] = "pip"
from pip._internal.cli.main import main
sys.exit(main())
"""
PIP_ENV = ("PIP_DISABLE_PIP_VERSION_CHECK=1", "PIP_NO_INPUT=1", "PIP_ROOT_USER_ACTION=ignore")


def with_layer(spec, resource_dir, image_pythonpath=None):
    """The kernel's spec with its kernelspec's layer bound read-only at package_layer.MOUNT
    (a read-only prepared tree has no mount point for it: no layer there), and the
    pip notice on PYTHONPATH for its subprocesses."""
    env = list(spec.process.env)
    here = dict(env).get("PYTHONPATH")
    notice = (os.path.join(image_pythonpath, "container_kernel", "inside", "pip_notice")
              if image_pythonpath else NOTICE_DIR)
    env = [(k, v) for k, v in env if k != "PYTHONPATH"] + [
        ("PYTHONPATH", f"{here}:{notice}" if here else notice)]
    volumes = spec.volumes
    if resource_dir and spec.rootfs.kind != "dir":
        path = package_layer.layer_dir(os.path.basename(os.path.normpath(resource_dir)))
        volumes += (S.Volume(package_layer.prefix_of(path), package_layer.MOUNT, True),)
        env.append((P.PACKAGES_ENV, package_layer.MOUNT))
    return spec._replace(volumes=volumes, process=spec.process._replace(env=tuple(env)))


def make_layer(spec):
    """After every input is checked: the layer's dir, made if new."""
    path = package_layer.of_spec(spec)
    if path:
        package_layer.ensure(os.path.basename(path))


def view(spec):
    """%container_info's PackagesView fields, or None without a layer."""
    path = package_layer.of_spec(spec)
    if not path or not os.path.isdir(path):
        return None
    layer = package_layer.view(path)
    return {"kernelspec": layer.name, "path": layer.prefix, "mount": package_layer.MOUNT,
            "size": layer.size, "holder": layer.holder}


def build(siblings, words, seconds=None):
    """Start %pip's build sibling for words ("install", ...): its first SiblingReply; the
    kernel polls it (run_poll) like any sibling."""
    container = siblings.container
    spec = container.spec
    path = package_layer.of_spec(spec)
    if path is None:
        raise ContainerError("this kernel has no package layer (its kernelspec has a read-only "
                             "prepared rootfs, or kernel.json passes no --resource-dir)")
    try:
        action, args = pip_args.check(words)
    except pip_args.PipArgsError as e:
        raise ContainerError(f"%pip: {e}") from None
    package_layer.check_writable(path)
    timeout = TIMEOUT if seconds is None else seconds
    name = siblings.new_name("pip")
    lock = package_layer.lock(path, f"kernel {spec.id} (pid {os.getpid()}), %pip {action}")
    try:
        from ..runtime import egress
        egress.check(spec._replace(network="egress"))  # the missing tool, named before the lock is held
        python = spec.process.args[0]
        argv = (siblings.own_args(name, "pip")
                + ["--network", "egress", "--workdir", "/tmp",
                   "--volume", f"{package_layer.prefix_of(path)}:{package_layer.MOUNT}"]
                + [a for e in PIP_ENV for a in ("--env", e)]
                + ["--", python, "-c", BOOT, package_layer.MOUNT, action]
                + (["--prefix", package_layer.MOUNT, "--no-warn-script-location"]
                   if action == "install" else [])
                + args)
        return siblings.start(name, argv, timeout, on_end=lambda: os.close(lock))
    except BaseException:
        os.close(lock)
        raise

