from make import code, md

CELLS = [
    md("""
# Start here: containers, shown from inside one

These notebooks teach how a Linux container is made, one mechanism at a time. The
Python you run them in is itself inside a container that this project builds (not
Docker's): every cell runs as a process in its own namespaces, under its own cgroup,
on a root filesystem entered with `pivot_root`. So each notebook can show a mechanism
from the inside, and, through the launcher that stays outside, the host's view of the
same thing beside it.

Run the cells from top to bottom (Shift-Enter). Each notebook ends with one or two
exercises: a cell where you write an answer, then a **check your work** cell that says
whether it is right.
"""),
    code("""
import lesson
print("this kernel:", lesson.MODE)
lesson.claim("mode", lesson.MODE)
"""),
    md("""
`contained` means this kernel is in a container of ours and everything below can be shown.
`unconfined` means the kernel could not make a container here (on **Binder**, for
instance: Binder already runs you inside an unprivileged Docker container, which may
not make namespaces of its own), so it runs as a plain Python, and says so.
The notebooks still run there; the cells that need a container say what they would
have shown, and you see Binder's own container instead.
"""),
    code("%container_info"),
    code("""
info = %container_info --json
lesson.claim("contained", info["contained"])
if lesson.CONTAINED:
    isolated = [ns["type"] for ns in info["namespace_table"] if ns["isolated"]]
    print("namespaces of its own:", ", ".join(isolated))
    lesson.claim("isolated_namespaces", isolated)
else:
    print(lesson.why_not_contained())
    print("What can be shown here is the container around this kernel:\\n")
    lesson.claim("outer_view", lesson.outer_view())
"""),
    md("""
## The notebooks, in order

| # | Notebook | What it shows | Docker's equivalent |
|---|----------|---------------|---------------------|
| 1 | [01-processes](01-processes.ipynb) | fork and exec, `clone()` versus `fork()`, `/proc/self/ns/*`, `/proc` as the kernel's window, the host's view beside the container's | `docker top` |
| 2 | [02-uts](02-uts.ipynb) | the hostname inside a sibling container, in this kernel, on the host | `docker run --hostname` |
| 3 | [03-user-namespaces](03-user-namespaces.ipynb) | rootless: root inside, an ordinary user outside | `dockerd --userns-remap` |
| 4 | [04-mounts](04-mounts.ipynb) | mount propagation, the mount plan, chroot versus `pivot_root` | `docker run -v` |
| 5 | [05-pid-and-init](05-pid-and-init.ipynb) | PID 1, zombies, signals, and why an init | `docker run --init` |
| 6 | [06-cgroups](06-cgroups.ipynb) | the cgroup files (v1 and v2), memory and the OOM killer, a CPU quota, a fork bomb, the live monitor | `docker run --memory --cpus --pids-limit` |
| 7 | [07-network-namespaces](07-network-namespaces.ipynb) | only `lo`, two containers on a private network | `docker run --network none` |
| 8 | [08-the-kernel-you-are-in](08-the-kernel-you-are-in.ipynb) | the kernelspec, the provisioner, the launcher, the control socket, interrupt and restart | `docker run -i` |
| 9 | [09-escape-lab](09-escape-lab.ipynb) | capabilities, `no_new_privs`, seccomp, masked paths: escapes that fail, and why | `docker run --cap-drop --security-opt` |

Notebooks 2, 3, 5 and 7 start **sibling containers** from the notebook
(`container_kernel.demo`): this kernel may not make namespaces itself, so it asks the
launcher, outside, to start them beside it, inside its cgroup and with its hardening.
[00-welcome](00-welcome.ipynb) is the short tour.

## Docker side by side

| You want | Docker | Here |
|----------|--------|------|
| the container's processes, with host PIDs | `docker top CONTAINER` | `%container_ps` |
| limit memory to 100 MB | `docker run --memory=100M` | `%cgroup_set memory 100M` |
| limit CPU to half a core | `docker run --cpus=0.5` | `%cgroup_set cpu 0.5` |
| at most 64 processes | `docker run --pids-limit=64` | `%cgroup_set pids 64` |
| what is this container? | `docker inspect CONTAINER` | `%container_info` |
| live usage | `docker stats` | `%container_monitor` |
| a throw-away run with tighter limits | `docker run --rm --memory=50M IMAGE` | `%%sandbox memory=50M` |
"""),
    md("""
## Exercise: which PID is this kernel?

A process sees PIDs of its own PID namespace. Guess which PID this Python has, inside
its container, then replace the `...` with a number (or with an expression that finds
it) and run the check.
"""),
    code("""
answer = ...   # this kernel's PID, as it sees itself
""", solution="""
import os
answer = os.getpid()
"""),
    code("""
# check your work
import os
lesson.check(answer, os.getpid(), "pid", "os.getpid() says; in a container kernel PID 1 is its init, "
             "and the kernel is the next process started")
"""),
    md("""
In a container kernel the answer is 2: PID 1 is the container's init (`ck-init`),
which started this kernel. [01-processes](01-processes.ipynb) shows the same
process as the host sees it.
"""),
]
