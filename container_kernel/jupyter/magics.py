"""Magics: the notebook as a window into its container.

(A first cut: %container_info shows the container from inside. The host's view
beside it, %cgroup, %cgroup_set, %container_ps and %%sandbox come with the
magics-and-widgets work.)
"""

import json

from IPython.core.magic import Magics, line_magic, magics_class

from ..runtime import probe
from . import extension


def container_info():
    info = probe.probe()
    info.pop("env", None)
    info["contained"] = extension.in_container() and not extension.unconfined_reason()
    info["warning"] = extension.warning_banner()
    return info


@magics_class
class ContainerMagics(Magics):
    @line_magic
    def container_info(self, line):
        """Show the container this kernel runs in.

        %container_info          a readable summary
        %container_info --json   the same facts as a dict, for programs and tests
        """
        args = line.split()
        if args not in ([], ["--json"]):
            from IPython.core.error import UsageError
            raise UsageError(f"%container_info: unknown argument {args[0]!r}: use --json or nothing")
        info = container_info()
        if args == ["--json"]:
            return info
        lines = []
        if info["warning"]:
            lines.append(info["warning"])
        lines.append(f"hostname {info['hostname']}, pid {info['pid']} (init is 1)")
        lines += [f"  {kind:7} namespace inode {ino}" for kind, ino in info["namespaces"].items()]
        lines.append(f"interfaces: {', '.join(info['interfaces'])}")
        print("\n".join(lines))


def register(ip):
    ip.register_magics(ContainerMagics)
