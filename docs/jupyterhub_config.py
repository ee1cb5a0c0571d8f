# A class on one machine: JupyterHub, one single-user server per student running as that
# student, and every notebook in a rootless container kernel (see docs/jupyterhub.md).
#
# Copy to /etc/jupyterhub/jupyterhub_config.py and start the hub as root from the venv that
# holds jupyterhub and container-kernel:
#   sudo /opt/jupyterhub/bin/jupyterhub -f /etc/jupyterhub/jupyterhub_config.py
# tests/hub/ loads this very file and only changes ports, paths and the authenticator.
import os
import sys

c = get_config()  # noqa: F821 (JupyterHub's config loader defines it)

# The kernelspec `container-kernel install --sys-prefix` wrote into this venv.
KERNEL = "container-python"
VENV_BIN = os.path.join(sys.prefix, "bin")

# Students log in with their system password (PAM, JupyterHub's default); the hub must run
# as root to check it and to start servers as other users.
c.JupyterHub.authenticator_class = "pam"
c.Authenticator.allowed_users = set()  # fill in, or use c.Authenticator.allowed_groups
c.Authenticator.admin_users = set()    # the teacher

c.JupyterHub.bind_url = "http://127.0.0.1:8000/"  # put TLS in front, or set ssl_cert/ssl_key
# configurable-http-proxy from npm (`npm install -g configurable-http-proxy`).
c.ConfigurableHTTPProxy.command = ["configurable-http-proxy"]

# Each student's server is a process of theirs (setuid by the hub), so their kernels are
# rootless containers: root inside is the student outside.
c.JupyterHub.spawner_class = "jupyterhub.spawner.LocalProcessSpawner"
c.Spawner.cmd = [os.path.join(VENV_BIN, "jupyterhub-singleuser")]
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 60
c.Spawner.http_timeout = 60
c.Spawner.args = [
    # The container kernel is the default kernel, and the only one a student can start:
    # the plain python3 kernel would run as the student, uncontained, beside the server.
    f"--MappingKernelManager.default_kernel_name={KERNEL}",
    f"--KernelSpecManager.allowed_kernelspecs={KERNEL}",
    "--KernelSpecManager.ensure_native_kernel=False",
    # A terminal is a shell as the student on the host, outside every container.
    "--ServerApp.terminals_enabled=False",
]
c.Spawner.environment = {
    # The server reads no config from the student's ~/.jupyter, which any uploaded file
    # could overwrite: the config dir is the admin's (create it, owned by root).
    "JUPYTER_CONFIG_DIR": "/etc/jupyter/student",
    # ... nor Python code from ~/.local/lib/python3*/site-packages (a .pth runs at start).
    "PYTHONNOUSERSITE": "1",
}
