"""Runs inside the container, in ipykernel: the untrusted side.

It reaches the host only through the launcher's control socket (client.py speaks
protocol.py); it reads its own /proc and cgroup with the runtime's pure readers
(procfs, cgroups, idmap, namespaces), never the launcher, init or mounts.

    extension.py  loaded at the kernel's start: notices, then the magics
    magics.py     the magics: parse (args.py), ask (facts.py, client.py), show (render.py)
    sandbox.py    %%sandbox's fork in a child cgroup
    widgets.py    the live monitor and the namespaces widget
"""
