"""The host side of the Jupyter kernel: kernelspec install, provisioner, kernel launcher,
control server and TCP relay. It runs on the host, as root or the user, and uses runtime/.
"""
