"""The kernel provisioner: jupyter_client's LocalProvisioner, with ipc sockets.

Registered under the entry-point group `jupyter_client.kernel_provisioners`
and named in kernel.json's metadata, so JupyterLab, Notebook 7, nbclient and
jupyter console use it. It changes two things:
- the connection uses ZeroMQ's ipc transport, in a short socket dir of ours that
  the launcher binds into the container: TCP cannot cross the kernel's network
  namespace, and there is no port to pick (jupyter_client's TCP port picking
  races when many kernels start at once; ipc does not);
- a host that cannot create containers is refused here, so the reason reaches the
  Jupyter UI as the error of the start request (unless the kernelspec allows
  degraded mode).
"""

import atexit
import os

from jupyter_client.provisioning import LocalProvisioner

from ..runtime import launcher
from ..runtime import spec as S
from ..runtime.tools import containment_problem
from .launch import socket_dir


class ContainerProvisioner(LocalProvisioner):
    socket_dir = None

    async def pre_launch(self, **kwargs):
        meta = (self.kernel_spec.metadata or {}).get("container_kernel", {})
        problem = containment_problem()
        if problem and not meta.get("allow_unconfined"):
            raise RuntimeError(f"{self.kernel_spec.display_name} cannot start on this host: {problem}. "
                               "(An admin can install the kernelspec with --allow-unconfined to run "
                               "it uncontained, with a warning.)")
        km = self.parent
        if self.socket_dir is None:  # kept across restarts: the connection file names it
            run_base = S.default_run_base(os.geteuid() != 0)
            self.socket_dir = socket_dir(run_base, f"k-{S.new_id()}")
            # Some clients exit without cleanup() (jupyter console): remove it at exit too.
            atexit.register(launcher.remove_tree, self.socket_dir)
            km.transport = "ipc"
            km.ip = os.path.join(self.socket_dir, "k")
        return await super().pre_launch(**kwargs)

    async def cleanup(self, restart=False):
        await super().cleanup(restart)
        if not restart and self.socket_dir:
            launcher.remove_tree(self.socket_dir)
            self.socket_dir = None
