from make import code, md

CELLS = [
    md("""
# 9. Escape lab

Namespaces hide the host, cgroups bound what is used; neither stops root inside from
asking the Linux kernel for something dangerous: to mount the host's disk, load a
kernel module, or make a new namespace of its own. Four more guards do, as in Docker:

- **capabilities**: root's powers, split into about 40 named pieces; this kernel keeps
  Docker's default few less `CAP_MKNOD`: no `CAP_SYS_ADMIN`, `CAP_SYS_MODULE`, `CAP_SYS_PTRACE`...
- **no_new_privs**: no program it runs can gain privileges (a setuid binary stays
  the caller's user), and it cannot be turned off;
- **seccomp**: a filter on system calls (Docker's default profile, plus: no namespace
  may be made or entered);
- **masked and read-only paths**: the parts of `/proc` and `/sys` that reach the host
  are hidden (`/dev/null` bound over a file, an empty directory over a directory) or
  read-only.

Every attempt below is harmless if it succeeded, and each runs only in the container
kernel. Each fails; the table says which guard stopped it.
"""),
    code("""
import ctypes, errno, os, platform, signal
import lesson
print("mode:", lesson.MODE)
"""),
    code("""
%%contained_only
info = %container_info --json
print("capabilities kept:", ", ".join(info["capabilities"]))
status = dict(l.split(":\\t", 1) for l in open("/proc/self/status") if ":\\t" in l)
print("NoNewPrivs:", status["NoNewPrivs"].strip(), "  Seccomp:", status["Seccomp"].strip(), "(2 = filter)")
sec = info["host"]["security"]
print(sec["seccomp"])
print("masked:", ", ".join(sec["masked_paths"]))
print("read-only:", ", ".join(sec["readonly_paths"]))
lesson.claim("guards", {"caps": info["capabilities"], "no_new_privs": info["no_new_privs"],
                        "seccomp": info["seccomp"]})
"""),
    md("""
## The attempts

Each returns an errno name (or what it saw), and names the guard that answered. Where
two guards would refuse, the first one the call meets is named: seccomp filters a
system call before the kernel even looks at capabilities.
"""),
    code("""
libc = ctypes.CDLL(None, use_errno=True)
NR = {"x86_64": {"init_module": 175, "open_by_handle_at": 304, "reboot": 169, "keyctl": 250},
      "aarch64": {"init_module": 105, "open_by_handle_at": 265, "reboot": 142, "keyctl": 219}}[platform.machine()]
have = set(info["capabilities"]) if lesson.CONTAINED else set()

def call(result):
    return "succeeded" if result >= 0 else errno.errorcode[ctypes.get_errno()]

def write(path, text):
    try:
        with open(path, "w") as f:
            f.write(text)
        return "succeeded"
    except OSError as e:
        return errno.errorcode[e.errno]

def guard(syscall, cap):
    rule = lesson.seccomp_rule(syscall)
    if rule != "allowed" and cap.lower().removeprefix("cap_") not in have:
        return f"seccomp ({rule}), and no {cap}"
    return f"no {cap}" if cap.lower().removeprefix("cap_") not in have else "?"

ATTEMPTS = [
    # name, what it would do, how, guard
    ("new user namespace", "become root of a namespace of one's own, with every capability",
     lambda: call(libc.unshare(0x10000000)), "seccomp: no namespaces (our policy, whatever the capabilities)"),
    ("mount a filesystem", "mount the host's disk, or a cgroupfs to use release_agent (CVE-2022-0492)",
     lambda: call(libc.mount(b"none", b"/tmp", b"tmpfs", 0, None)), guard("mount", "CAP_SYS_ADMIN")),
    ("load a kernel module", "run code in the host's kernel",
     lambda: call(libc.syscall(NR["init_module"], None, 0, b"")), guard("init_module", "CAP_SYS_MODULE")),
    ("open_by_handle_at", "the 2014 'shocker' escape: open host files by inode handle",
     lambda: call(libc.syscall(NR["open_by_handle_at"], -100, None, 0)), guard("open_by_handle_at", "CAP_DAC_READ_SEARCH")),
    ("reboot", "reboot the machine (here: an invalid command, refused before it is read)",
     lambda: call(libc.syscall(NR["reboot"], 0, 0, 0, 0)), guard("reboot", "CAP_SYS_BOOT")),
    ("make a disk device", "mknod /dev/sda's twin (block 8:0), then read the host's disk",
     lambda: call(libc.mknod(b"/tmp/sda", 0o060600, os.makedev(8, 0))), "no CAP_MKNOD (and the devices cgroup)"),
    ("set the hostname", "even in its own UTS namespace",
     lambda: call(libc.sethostname(b"owned", 5)), guard("sethostname", "CAP_SYS_ADMIN")),
    ("write a kernel setting", "change /proc/sys/kernel/hostname, or any sysctl",
     lambda: write("/proc/sys/kernel/hostname", "owned"), "read-only path: /proc/sys"),
    ("raise its own memory limit", "write the cgroup file directly",
     lambda: write("/sys/fs/cgroup/" + ("memory/memory.limit_in_bytes" if os.path.isdir("/sys/fs/cgroup/memory")
                                         else "memory.max"), "max"), "read-only mount: only the launcher writes cgroups"),
    ("undo no_new_privs", "so that setuid programs work again",
     lambda: call(libc.prctl(38, 0, 0, 0, 0)), "no_new_privs is one-way (the kernel answers EINVAL)"),
    ("kill PID 1", "SIGKILL the container's init",
     lambda: (os.kill(1, signal.SIGKILL), "ignored: init lives" if os.path.exists("/proc/1") else "killed")[1],
     "the kernel ignores signals to a namespace's init that it has no handler for"),
]
"""),
    code("""
%%contained_only
results = {}
print(f"{'attempt':28} {'result':22} stopped by")
for name, what, attempt, stopped_by in ATTEMPTS:
    results[name] = attempt()
    print(f"{name:28} {results[name]:22} {stopped_by}")
lesson.claim("attempts", results)
"""),
    md("""
None succeeded. `mknod` is allowed by seccomp (Docker allows it) and by the device
cgroup for harmless devices, but a block device needs `CAP_MKNOD`. `/dev/null`,
`/dev/zero` and friends are there already.

## Masked paths

Some `/proc` files tell about, or reach into, the host: `/proc/keys` (the kernel's
keyrings), `/proc/timer_list`, `/proc/kcore` (the host's memory, where it exists).
They are masked: `/dev/null` is bound over each file, and an empty read-only tmpfs
over directories such as `/proc/acpi` and `/sys/firmware`.
"""),
    code("""
%%contained_only
masked = {}
for path in info["host"]["security"]["masked_paths"]:
    if not os.path.exists(path):
        continue                   # not in this kernel's /proc: nothing to hide
    st = os.stat(path)
    if os.path.isdir(path):
        seen = f"an empty directory ({len(os.listdir(path))} entries)"
    else:
        seen = f"char device {os.major(st.st_rdev)}:{os.minor(st.st_rdev)} (/dev/null), reads {len(open(path).read())} bytes"
    masked[path] = seen
    print(f"{path:32} {seen}")
lesson.claim("masked", masked)
"""),
    md("""
## Docker's equivalent

What this kernel has is what `docker run` gives by default. Each guard can be relaxed
there, which is exactly what makes a container escapable:

| guard | Docker's default | what undoes it |
|-------|------------------|----------------|
| capabilities | 14 kept (here 13: no `MKNOD`) | `--cap-add SYS_ADMIN`, `--privileged` |
| no_new_privs | off (on with `--security-opt no-new-privileges`) | |
| seccomp | the default profile | `--security-opt seccomp=unconfined` |
| masked paths | `/proc/kcore`, `/proc/keys`, ... | `--security-opt systempaths=unconfined` |

`container-kernel run` takes the same `--security-opt` words.

## Exercise 1: read the errno

Which errno did the attempt to mount a filesystem get? Give its name as a string, as
the table spells it.
"""),
    code("""
%%contained_only
answer_mount = ...
""", solution="""
%%contained_only
answer_mount = results["mount a filesystem"]
"""),
    code("""
%%contained_only
# check your work
lesson.check(answer_mount, "EPERM", "mount_errno", "the results dict holds it; EPERM is 'Operation not permitted'")
"""),
    md("""
## Exercise 2: the capability behind seccomp

Docker's seccomp profile allows some system calls only to a container that keeps a
given capability. Which capability would `open_by_handle_at` need? Give it as
`"CAP_..."`; `lesson.seccomp_rule("open_by_handle_at")` can tell you.
"""),
    code("""
answer_cap = ...
""", solution="""
answer_cap = lesson.seccomp_rule("open_by_handle_at").split()[-1]
"""),
    code("""
# check your work
lesson.check(answer_cap, "CAP_DAC_READ_SEARCH", "shocker_cap",
             "it reads files by handle, bypassing directory permission checks")
"""),
]
