from make import code, md

CELLS = [
    md("""
# 8. The kernel you are in

"Kernel" means two things in these notebooks: the Linux kernel, and the **Jupyter
kernel**, the process that runs your cells. This notebook is about the second one:
how Jupyter started it inside a container, and who is who on the host. Four parts:

1. the **kernelspec**: a `kernel.json` that says which command starts a kernel;
2. the **provisioner**: the Jupyter-side object that runs that command and watches it;
3. the **launcher**: the command itself, which builds the container and stays outside;
4. the **control socket**: how the magics inside ask the launcher for what only the host can do.
"""),
    code("""
import json, os, socket, threading, time
import lesson
print("mode:", lesson.MODE)
"""),
    md("""
## 1. The kernelspec

`container-kernel install` writes a kernelspec, as `ipykernel install` does. Its `argv`
does not start ipykernel: it starts the container launcher, which starts ipykernel
inside. The launcher is PID 1's parent, and PID 1 (the container's init, forked from
it) keeps the launcher's command line, so you can read the kernelspec's `argv`, filled
in, from here:
"""),
    code("""
%%contained_only
argv = open("/proc/1/cmdline").read().split("\\0")[:-1]
print(" ".join(argv))
resource_dir = argv[argv.index("--resource-dir") + 1]
print("\\nthe kernelspec's directory:", resource_dir)
try:
    print(open(os.path.join(resource_dir, "kernel.json")).read())
except OSError as e:
    print("(not visible from inside the container:", e.strerror + ")")
lesson.claim("launcher_argv", argv[1:4])
"""),
    md("""
The limits in that `argv` (`--memory`, `--cpus`, `--pids`) are the admin's
**ceiling**: `%cgroup_set` may move below them, never above. `kernel.json`'s
`metadata.kernel_provisioner` names our provisioner, `container-provisioner`; a
client that ignores provisioners (VS Code, older ones) just runs the `argv` and
still gets a contained kernel.

## 2. The provisioner

jupyter_client asks the provisioner to start the kernel. Ours chooses ZeroMQ **ipc**
sockets (unix sockets, in a directory of their own) rather than TCP ports, binds that
directory into the container, runs the launcher, and waits for it to say "started" or
why not, so that a container that cannot start is an error JupyterLab shows. Unix
sockets are why this kernel needs no network: its network namespace has only `lo`.
The connection file ipykernel read says so:
"""),
    code("""
from ipykernel.connect import get_connection_file
connection_file = get_connection_file()
conn = json.load(open(connection_file))
print(connection_file)
print({k: v for k, v in conn.items() if k != "key"})
lesson.claim("transport", conn["transport"])
"""),
    md("""
The network namespace, from its `/proc` files (seed point 9: `cat /proc/self/net/tcp`):
one interface, `lo`, and the TCP sockets of this namespace only. A socket listening
here listens on this namespace's `lo`, which nothing outside can reach.
"""),
    code("""
devices = [line.split(":")[0].strip() for line in open("/proc/self/net/dev").read().splitlines()[2:]]
print("interfaces:", devices)
print(open("/proc/self/net/tcp").read())
lesson.claim("interfaces", devices)
"""),
    md("""
## 3. The launcher, init, and this kernel

On the host there are three processes: the **launcher** (outside every namespace: it
owns the cgroup and the control socket), **init**, PID 1 inside (it reaps, forwards
signals, and dies with the launcher), and **ipykernel**, PID 2. `%container_ps`
shows the two inside with their host PIDs; `%container_info` names the launcher.
"""),
    code("""
%%contained_only
info = %container_info --json
host = info["host"]
print(f"launcher  host PID {host['launcher_pid']}   (outside the container)")
print(f"init      host PID {host['init_pid']}   PID 1 inside")
print(f"ipykernel host PID {host['kernel_pid']}   PID {os.getpid()} inside")
%container_ps
procs = %container_ps --json
init = next(p for p in procs if p["pid"] == 1)
lesson.claim("init_parent_is_launcher", init["ppid"] == host["launcher_pid"])
"""),
    md("""
## 4. The control socket

The magics cannot change a cgroup (the container sees `/sys/fs/cgroup` read-only) nor
read host PIDs. They send one JSON line over a unix socket to the launcher, which
checks it as if an attacker wrote it, and answers one JSON line. Here is the raw
exchange, then a request the launcher refuses:
"""),
    code("""
%%contained_only
path = os.environ["CK_CONTROL"]
print("the control socket:", path)

def ask(line):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(10)
        s.connect(path)
        s.sendall(line)
        return s.makefile().readline().strip()

print("stats  ->", ask(b'{"op": "stats"}\\n')[:150], "...")
refused = ask(b'{"op": "set", "controller": "memory", "value": "1T"}\\n')
print("set 1T ->", refused)
lesson.claim("control_refusal", refused)
"""),
    md("""
## Interrupt: the same processes

The ■ button (Kernel > Interrupt) sends an `interrupt_request` message on the
kernel's control channel (`interrupt_mode: message` in `kernel.json`), and ipykernel
raises `KeyboardInterrupt` in the running cell. Nothing is restarted. Below, a thread
sends that very message to this kernel while a cell sleeps, and the host PIDs before
and after are the same.
"""),
    code("""
%%contained_only
from jupyter_client import BlockingKernelClient

def host_pids():
    rows = %container_ps --json
    return sorted((p["pid"], p["host_pid"]) for p in rows)

me = BlockingKernelClient(connection_file=connection_file)
me.load_connection_file()
me.start_channels()
before = host_pids()
threading.Timer(1.0, lambda: me.control_channel.send(me.session.msg("interrupt_request", {}))).start()
t0 = time.monotonic()
try:
    time.sleep(30)
    interrupted = False
except KeyboardInterrupt:
    interrupted = True
print(f"interrupted after {time.monotonic() - t0:.1f} s: {interrupted}")
me.stop_channels()
after = host_pids()
print("host PIDs (inside, host) before:", before, " after:", after)
lesson.claim("interrupt", {"interrupted": interrupted, "same_pids": before == after})
"""),
    md("""
## Restart: a new container

Kernel > Restart is another thing: the provisioner stops the launcher (which stops its
container and removes its cgroup) and starts the kernelspec's `argv` again, so a new
container is made, with a new id, new host PIDs and new namespaces. Try it: run the
next cell, restart the kernel, then run the cells from the top to here and the one
after it. The file is written in the notebook's directory, the one directory a new
container sees too (`/tmp` and your home are new each time).
"""),
    code("""
%%contained_only
record = "restart-demo.json"
if not os.path.exists(record):
    json.dump({"id": info["host"]["id"], "pids": host_pids()}, open(record, "w"))
    print("saved this kernel's container id and host PIDs; now restart the kernel")
else:
    old = json.load(open(record))
    same = old["id"] == info["host"]["id"]
    print("previous container", old["id"], old["pids"])
    print("this container    ", info["host"]["id"], host_pids())
    print("the same kernel: not restarted yet" if same else "a restart made a new container")
    os.unlink(record)
"""),
    md("""
If a kernel dies on its own (the OOM killer, a signal), the launcher leaves a one-line
record beside the connection file, and the next kernel prints it at its first cell.

## Exercise 1: the launcher's host PID

Find the launcher's host PID **from `%container_ps` only**: it is the parent of the
container's PID 1.
"""),
    code("""
%%contained_only
answer_launcher = ...
""", solution="""
%%contained_only
rows = %container_ps --json
answer_launcher = [p["ppid"] for p in rows if p["pid"] == 1][0]
"""),
    code("""
%%contained_only
# check your work
lesson.check(answer_launcher, info["host"]["launcher_pid"], "launcher",
             "the row with pid 1; its ppid column is a host PID")
"""),
    md("""
## Exercise 2: why no network?

This kernel's network namespace has only `lo`, yet Jupyter talks to it. Which ZeroMQ
transport do its sockets use? (A string, as the connection file spells it.)
"""),
    code("""
answer_transport = ...
""", solution="""
answer_transport = "ipc"
"""),
    code("""
# check your work
lesson.check(answer_transport, conn["transport"], "transport", "look at conn['transport'] above")
"""),
]
