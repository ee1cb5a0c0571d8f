from make import code, md

CELLS = [
    md("""
# 1. Processes: fork, exec, clone, and /proc

A container is not a thing the Linux kernel knows about. It is ordinary processes,
started in a particular way: with **namespaces** (what they can see), **cgroups** (what
they may use) and a root filesystem of their own. This notebook starts with the
process itself: how one is made, and where the kernel shows what it knows of it.
"""),
    code("""
import ctypes, errno, json, os, subprocess, sys, threading
import lesson
print("mode:", lesson.MODE)
print("this kernel: PID", os.getpid(), "parent", os.getppid())
print("PID 1 is", open("/proc/1/comm").read().strip())
"""),
    md("""
## fork, then exec

`fork()` copies the calling process: the child gets a new PID and a copy-on-write copy
of the parent's memory. `exec()` then replaces the program running in a process,
keeping its PID. Every command a shell starts is a fork followed by an exec. Below the
child first changes a variable (the parent's copy is untouched), then execs `cat` on
its own `/proc/self/status`: same PID, another program.
"""),
    code("""
counter = 1
r, w = os.pipe()
pid = os.fork()
if pid == 0:                       # the child
    counter = 100                  # its own copy of the memory
    os.dup2(w, 1)
    os.write(1, f"child: PID {os.getpid()}, counter {counter}\\n".encode())
    os.execv("/usr/bin/cat", ["cat", "/proc/self/status"])   # same PID, new program
os.close(w)
output = os.fdopen(r).read()
os.waitpid(pid, 0)
print(f"parent: forked PID {pid}, its counter is still {counter}")
status = dict(line.split(":\\t", 1) for line in output.splitlines()[1:] if ":\\t" in line)
print(output.splitlines()[0])
print("after exec: Name", status["Name"].strip(), " Pid", status["Pid"].strip())
lesson.claim("exec_keeps_pid", int(status["Pid"]) == pid)
lesson.claim("fork_copies_memory", counter == 1)
"""),
    md("""
## clone(): fork with a say in what is shared

`fork()` is a special case of the `clone()` system call. `clone()` takes flags that
say what parent and child share, and what the child gets new:

| flag | shared or new |
|------|---------------|
| `CLONE_VM` | the memory (a thread, not a copy) |
| `CLONE_FS`, `CLONE_FILES` | the current directory and umask; the file descriptors |
| `CLONE_SIGHAND`, `CLONE_THREAD` | the signal handlers; the same thread group (what threads are) |
| `CLONE_NEWUTS`, `CLONE_NEWPID`, `CLONE_NEWNS`, `CLONE_NEWNET`, `CLONE_NEWIPC`, `CLONE_NEWUSER`, `CLONE_NEWCGROUP` | a **new namespace** of that kind |

A container runtime calls `clone()` (or `unshare()`) with the `CLONE_NEW*` flags: that
is where a container begins. Below we call the raw system call through `ctypes`: with
only `SIGCHLD` it is exactly a fork. The child exits at once with status 7.

We make the call in a fresh Python of its own, not in this kernel. A clone copies
only the thread that calls it, and ipykernel runs a dozen threads: the copy can find
the interpreter's lock held by a thread that did not come along, and wait for it
forever. `os.fork()` repairs that in the child; a raw system call does not. Container
runtimes meet the same problem, and so do their namespace work in a fresh
single-threaded process (runc's `nsenter` runs before Go starts its threads).
"""),
    code("""
CLONE = r'''
import ctypes, errno, json, os, platform, sys
libc = ctypes.CDLL(None, use_errno=True)
SYS_clone = {"x86_64": 56, "aarch64": 220}[platform.machine()]
pid = libc.syscall(SYS_clone, int(sys.argv[1]), 0, 0, 0, 0)
if pid == 0:
    os._exit(7)                    # the child
if pid < 0:
    print(json.dumps({"error": errno.errorcode[ctypes.get_errno()]}))
else:
    print(json.dumps({"pid": pid, "status": os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])}))
'''
SIGCHLD, CLONE_NEWUTS = 17, 0x04000000

def raw_clone(flags):
    \"\"\"clone(flags) in a fresh, single-threaded Python: {"pid", "status"} or {"error"}.\"\"\"
    out = subprocess.run([sys.executable, "-c", CLONE, str(flags)], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)

child = raw_clone(SIGCHLD)
print(f"clone(SIGCHLD): child PID {child['pid']} exited with {child['status']}")
lesson.claim("clone_as_fork_status", child["status"])
"""),
    md("""
Now ask for a new UTS namespace (its own hostname). In the container kernel this is
refused: the kernel keeps no `CAP_SYS_ADMIN`, and its seccomp filter refuses every
`CLONE_NEW*` flag, so code in a notebook cannot build a container of its own. The
demos of later notebooks ask the launcher, outside, to start a sibling container.
(On a host without these guards, as root, the call would succeed.)
"""),
    code("""
%%contained_only
child = raw_clone(CLONE_NEWUTS | SIGCHLD)
err = child.get("error")
print("clone(CLONE_NEWUTS):", f"refused: {err} ({os.strerror(getattr(errno, err))})" if err else "made a child")
lesson.claim("clone_newuts", err or "child")
"""),
    md("""
Threads are clones too, sharing almost everything (`CLONE_VM | CLONE_FS | CLONE_FILES |
CLONE_SIGHAND | CLONE_THREAD`). A thread has its own ID (TID) but the process's PID:
`/proc/self/task/` lists this kernel's threads (ipykernel runs several).
"""),
    code("""
tids = sorted(int(t) for t in os.listdir("/proc/self/task"))
print(f"PID {os.getpid()} has {len(tids)} threads, TIDs {tids}")
print("this thread:", threading.get_native_id())
lesson.claim("threads", len(tids))
"""),
    md("""
## /proc/self/ns: the namespaces of a process

Each namespace a process is in appears as a symbolic link in `/proc/PID/ns/`; the
number in brackets is its inode, the namespace's identity. Two processes are in the
same namespace exactly when the inodes are equal.
"""),
    code("""
for name in sorted(os.listdir("/proc/self/ns")):
    print(f"{name:20} {os.readlink('/proc/self/ns/' + name)}")
"""),
    md("""
The launcher, outside, reads the same links for the host's first process and for this
kernel. `%container_info` puts them side by side: a namespace is **isolated** when
the inodes differ.
"""),
    code("""
info = %container_info --json
if lesson.CONTAINED:
    for ns in info["namespace_table"]:
        print(f"{ns['type']:7} inside {ns['inside']}  host {ns['host']}  "
              f"{'isolated' if ns['isolated'] else 'shared  '}  {ns['what']}")
    lesson.claim("isolated_namespaces", [ns["type"] for ns in info["namespace_table"] if ns["isolated"]])
else:
    print(lesson.why_not_contained(), "\\nThe host's inodes are not known here; this is the container around us:\\n")
    lesson.claim("outer_view", lesson.outer_view())
"""),
    md("""
**IPC** is the namespace of System V shared memory, semaphores and message queues,
and of POSIX message queues: objects named by a number or a name, not by a path, so
the mount namespace cannot hide them. Make a shared memory segment: it is listed in
this namespace's `/proc/sysvipc/shm` (created by PID `cpid`, a PID of ours), and in no
other IPC namespace's; the host's list does not have it (`ipcs -m` there).
"""),
    code("""
IPC_PRIVATE, IPC_CREAT, IPC_RMID = 0, 0o1000, 0
libc_ipc = ctypes.CDLL(None, use_errno=True)
shmid = libc_ipc.shmget(IPC_PRIVATE, 4096, IPC_CREAT | 0o600)
print(open("/proc/sysvipc/shm").read())
listed = [line.split() for line in open("/proc/sysvipc/shm").read().splitlines()[1:]]
libc_ipc.shmctl(shmid, IPC_RMID, None)
lesson.claim("shm_segments_here", len(listed))
"""),
    md("""
`user` is shared here: this kernel runs as the host's root, in the host's user
namespace (its capabilities are cut down instead: see 09-escape-lab).
03-user-namespaces makes a container whose root is nobody on the host.

## /proc is the kernel's window

`/proc` holds no files on any disk. It is a **pseudo-filesystem**: each read asks the
kernel, which writes the answer on the spot. Its files have size 0, yet they read
full. And it shows only the processes of the PID namespace it was mounted for, which
is why a container mounts a new `/proc` (the Docker-less way to see this: `mount |
grep proc`).
"""),
    code("""
print("size of /proc/self/status on disk:", os.stat("/proc/self/status").st_size)
print("bytes read from it:", len(open("/proc/self/status").read()))
for line in open("/proc/self/mounts"):
    if " proc " in line:
        print("mounted:", line.strip())
lesson.claim("proc_size_zero", os.stat("/proc/self/status").st_size == 0)
"""),
    md("""
`ps` is nothing but a reader of `/proc`: it lists the numbered directories and reads
each one's `stat` file. Here is the same in five lines, then the real `ps`.
"""),
    code("""
def my_ps():
    for pid in sorted(int(p) for p in os.listdir("/proc") if p.isdigit()):
        stat = open(f"/proc/{pid}/stat").read()
        comm, rest = stat[stat.index("(") + 1:stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        yield pid, int(rest[1]), rest[0], comm     # PID, PPID, state, command

print("  PID  PPID S COMMAND")
for pid, ppid, state, comm in my_ps():
    print(f"{pid:5} {ppid:5} {state} {comm}")
!ps -e -o pid,ppid,stat,comm
"""),
    md("""
## The host's view beside the container's

From the host, the same processes have other PIDs: the PID namespace numbers them
again for those inside, and the host sees its own numbers. `%container_ps` asks the
launcher, which lists the container's cgroup and reads each process on the host side
(like `docker top`). PID 1 inside is the host's process whose parent is the launcher.
"""),
    code("""
%%contained_only
%container_ps
procs = %container_ps --json
me = next(p for p in procs if p["pid"] == os.getpid())
print(f"\\nthis kernel: PID {me['pid']} inside, {me['host_pid']} on the host")
lesson.claim("kernel_pids", {"inside": me["pid"], "host": me["host_pid"]})
"""),
    md("""
## Exercise 1: this kernel's PID on the host

Find this kernel's host PID (`%container_ps --json` gives a list of dicts; or
`%container_info --json`'s `host` part). Put it in `answer`.
"""),
    code("""
%%contained_only
answer_host_pid = ...   # a number
""", solution="""
%%contained_only
rows = %container_ps --json
answer_host_pid = [p["host_pid"] for p in rows if p["pid"] == os.getpid()][0]
"""),
    code("""
%%contained_only
# check your work
host = %container_info --json
lesson.check(answer_host_pid, host["host"]["kernel_pid"], "host_pid",
             "the row of %container_ps whose pid is os.getpid()")
"""),
    md("""
## Exercise 2: count the processes, the way ps does

Count the processes this kernel can see, by reading `/proc` only (no `ps`).
"""),
    code("""
answer_count = ...   # how many processes /proc shows
""", solution="""
answer_count = len([p for p in os.listdir("/proc") if p.isdigit()])
"""),
    code("""
# check your work
expected = len([p for p in os.listdir("/proc") if p.isdigit()])
lesson.check(answer_count, expected, "count", "each process is a numbered directory in /proc")
if lesson.CONTAINED and answer_count is not ...:
    seen = %container_ps --json
    print(f"the host agrees: %container_ps lists {len(seen)} processes")
"""),
]
