from make import code, md

CELLS = [
    md("""
# 6. cgroups: what a container may use

Namespaces decide what a process can **see**. Control groups (cgroups) decide what it
may **use**: memory, CPU time, the number of processes, disk I/O. Like `/proc`, they
are a pseudo-filesystem: a cgroup is a directory under `/sys/fs/cgroup`, a limit is a
file in it, and a process joins a cgroup by having its PID written into `cgroup.procs`.
Docker makes one cgroup per container; this project makes one per kernel.
"""),
    code("""
import json, os, time
import lesson
version = 2 if os.path.exists("/sys/fs/cgroup/cgroup.controllers") else 1
print("mode:", lesson.MODE, "| cgroup version", version)
print("/sys/fs/cgroup:", sorted(os.listdir("/sys/fs/cgroup")))
print("this process's cgroups (/proc/self/cgroup):")
print(open("/proc/self/cgroup").read())
lesson.claim("cgroup_version", version)
"""),
    code("""
one = "/sys/fs/cgroup/memory" if version == 1 else "/sys/fs/cgroup"
print(f"ls {one}:")
print("  ".join(sorted(os.listdir(one))))
"""),
    md("""
With cgroup **v1** (this host, unless you run in the v2 VM) each controller is its own
tree: `/sys/fs/cgroup/memory/...`, `/sys/fs/cgroup/pids/...`. With **v2** there is one
tree and each cgroup directory holds the files of every controller. The container's
cgroup namespace makes its own cgroup look like the root (`/` above), and the
container sees it read-only: limits are changed from outside.

## The same limits, v1 and v2 file names side by side
"""),
    code("""
FILES = [  # what, v1 file (controller/file), v2 file
    ("memory limit",        "memory/memory.limit_in_bytes",     "memory.max"),
    ("memory in use",       "memory/memory.usage_in_bytes",     "memory.current"),
    ("memory peak",         "memory/memory.max_usage_in_bytes", "memory.peak"),
    ("times the limit hit", "memory/memory.failcnt",            "memory.events"),
    ("OOM kills",           "memory/memory.oom_control",        "memory.events"),
    ("CPU quota",           "cpu/cpu.cfs_quota_us",             "cpu.max"),
    ("CPU period",          "cpu/cpu.cfs_period_us",            "cpu.max"),
    ("CPU time used",       "cpuacct/cpuacct.usage",            "cpu.stat"),
    ("CPU throttling",      "cpu/cpu.stat",                     "cpu.stat"),
    ("process limit",       "pids/pids.max",                    "pids.max"),
    ("processes now",       "pids/pids.current",                "pids.current"),
    ("I/O limits",          "blkio/blkio.throttle.read_bps_device", "io.max"),
]

def read(path):
    try:
        return open(path).read().strip()
    except OSError as e:
        return f"({e.strerror})"

def cgfile(v1, v2):
    return "/sys/fs/cgroup/" + (v1 if version == 1 else v2)

print(f"{'':20} {'v1':40} {'v2':16} value here")
for what, v1, v2 in FILES:
    value = read(cgfile(v1, v2)).replace("\\n", "; ")
    print(f"{what:20} {v1:40} {v2:16} {value[:60]}")
"""),
    md("""
The launcher sees the same cgroup from the host, at its full path: the Docker
equivalent is `/sys/fs/cgroup/memory/docker/CONTAINER_ID/`. `%cgroup` reads it from
there, with the ceiling the kernelspec set (which no one inside can exceed).
"""),
    code("""
%%contained_only
%cgroup
stats = %cgroup --json
paths = stats["stats"]["paths"]
host_path = paths.get("memory") or next(iter(paths.values()))
print("\\nthe memory cgroup, on the host:", host_path)
lesson.claim("host_cgroup_path", host_path)
"""),
    code("""
if not lesson.CONTAINED:
    print(lesson.why_not_contained(), "\\nThe cgroup this kernel is in anyway (Binder's, say):\\n")
    lesson.claim("outer_view", lesson.outer_view())
"""),
    md("""
## Memory: a limit, and the OOM killer

`docker run --memory=100M` writes 100 MiB into the container's memory limit file.
`%cgroup_set memory 100M` does the same for this kernel: it asks the launcher, which
writes the file on the host and reads it back. Inside, the read-only file shows it.
"""),
    code("""
%%contained_only
%cgroup_set memory 100M
limit_file = cgfile("memory/memory.limit_in_bytes", "memory.max")
print(limit_file, "=", read(limit_file))
lesson.claim("memory_limit_file", int(read(limit_file)))
%cgroup_set memory max
"""),
    md("""
When a cgroup needs more memory than its limit and nothing can be reclaimed, the
kernel's **OOM killer** kills a process in it. To watch that without losing this
kernel, `%%sandbox memory=100M` runs the cell in a throw-away fork of the kernel, in a
child cgroup limited to 100 MiB (the Docker equivalent: `docker run --rm
--memory=100M IMAGE python -c ...`). The cell asks for 300 MiB and touches every page:
"""),
    code("""
%%contained_only
%%sandbox memory=100M
block = bytearray(300 << 20)
for i in range(0, len(block), 4096):
    block[i] = 1
print("still alive?")
""", claim_output="oom_notice"),
    code("""
%%contained_only
print("this kernel is untouched, and so are its variables:", version, len(FILES))
lesson.claim("kernel_survived_oom", True)
"""),
    md("""
## CPU: a quota, measured

A CPU limit is a quota of CPU time per period: `0.25` CPUs is 25 ms in every 100 ms
(`cpu.cfs_quota_us=25000`, `cpu.cfs_period_us=100000` in v1; `cpu.max` = `25000 100000`
in v2); `docker run --cpus=0.25` writes the same. A process that wants more is
**throttled**: stopped until the next period. Below, a busy loop runs for two seconds
at a quarter of a CPU, and the cgroup's own counters say what it got.
"""),
    code("""
%%contained_only
def spin(seconds):
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        pass

def cpu_counters():
    s = %cgroup --json
    return s["stats"]["cpu"]

%cgroup_set cpu 0.25
before, t0 = cpu_counters(), time.monotonic()
spin(2.0)
after, wall = cpu_counters(), time.monotonic() - t0
%cgroup_set cpu max
used = (after["usage_ns"] - before["usage_ns"]) / 1e9 / wall
throttled = after["nr_throttled"] - before["nr_throttled"]
print(f"asked 0.25 CPUs, got {used:.2f} CPUs; throttled in {throttled} of "
      f"{after['nr_periods'] - before['nr_periods']} periods")
lesson.claim("cpu_quota", {"quota": 0.25, "measured": round(used, 3), "throttled": throttled})
"""),
    md("""
(On a busy machine the loop may get less than its quota: a quota is a ceiling, not a
reservation. `cpu.shares` in v1, `cpu.weight` in v2, are the other knob: relative
weights that only matter when the CPUs are contended.)

## Processes: a fork bomb, contained by pids.max

A fork bomb is a process that forks copies of itself that fork too, until the machine
can start nothing else. The pids controller caps the number of processes in a cgroup
(`pids.max`; `docker run --pids-limit=32`): past it, `fork()` fails with `EAGAIN`.
The bomb below runs in a sandbox with at most 32 processes, for two seconds.
"""),
    code("""
%%contained_only
%%sandbox pids=32
import os, time
refused, is_child, end = 0, False, time.time() + 2
while time.time() < end:
    try:
        if os.fork() == 0:
            is_child, refused = True, 0      # a copy of the bomb: it forks too
    except BlockingIOError:
        refused += 1
        time.sleep(0.01)
if is_child:
    os._exit(0)
print(f"the first bomb process was refused {refused} forks: pids.max held")
""", claim_output="fork_bomb"),
    code("""
%%contained_only
procs = %container_ps --json
print(f"after the sandbox: {len(procs)} processes in the container; the kernel is fine")
lesson.claim("processes_after_bomb", len(procs))
"""),
    md("""
## I/O: a write rate

The I/O controller limits bytes (or operations) per second, per disk: `blkio.throttle.write_bps_device`
in v1, `io.max` in v2 (`docker run --device-write-bps /dev/sda:10mb`). `%cgroup_set io`
takes the disk that holds the notebook's directory unless given one (and says so when
that directory is on no disk, as on a tmpfs).
"""),
    code("""
%%contained_only
from IPython.core.error import UsageError
try:
    %cgroup_set io write 10M/s
    io_file = cgfile("blkio/blkio.throttle.write_bps_device", "io.max")
    print(io_file, "=", read(io_file))
    lesson.claim("io_limit_file", read(io_file))
    %cgroup_set io write max
except UsageError as e:   # the notebook's directory is on tmpfs or overlay: no disk to limit
    print(e)
    lesson.claim("io_limit_file", f"no disk: {e}")
"""),
    md("""
## The live monitor

`%container_monitor` shows the cgroup's counters about once a second, with sliders
that change the limits as `%cgroup_set` does (the Docker equivalent: `docker stats`).
Run the memory or CPU cells above again and watch it. `monitor.close()` stops it.
"""),
    code("""
%%contained_only
monitor = %container_monitor
display(monitor)
lesson.claim("monitor", type(monitor).__name__)
"""),
    md("""
## Exercise 1: set a limit, read it from the cgroup file

Limit this kernel to 64 processes with `%cgroup_set`, then read the limit from the
container's own cgroup file (use `cgfile(...)` and `read(...)` from above) and put it,
as an int, in `answer_pids`.
"""),
    code("""
%%contained_only
# %cgroup_set pids ...
answer_pids = ...
""", solution="""
%%contained_only
%cgroup_set pids 64
answer_pids = int(read(cgfile("pids/pids.max", "pids.max")))
"""),
    code("""
%%contained_only
# check your work
now = %cgroup --json
lesson.check(answer_pids, 64, "pids", "the file is pids.max, in the pids controller's tree on v1")
assert now["stats"]["pids"]["limit"] == 64, "the launcher does not see 64: did %cgroup_set run?"
%cgroup_set pids max
"""),
    md("""
## Exercise 2: v1 to v2

Your notes say `cat memory.limit_in_bytes` (cgroup v1). Which file holds the same
limit on a cgroup v2 host? Give its name as a string.
"""),
    code("""
answer_v2 = ...
""", solution="""
answer_v2 = "memory.max"
"""),
    code("""
# check your work
lesson.check(answer_v2, "memory.max", "v2_name", "see the table above")
"""),
]
