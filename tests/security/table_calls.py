"""Attempts at calls that root in a container must not make: seccomp (Docker's profile plus
no namespaces) and the dropped capabilities answer EPERM before the kernel looks at the
arguments. On the host the same calls get past the privilege check: with invalid arguments
the kernel's own validation answers (EINVAL, EFAULT, EBADF, ENOENT), which proves it.
"""

from .attempts import attempt, enosys_na, not_eperm


def _ok(r):
    return bool(r.get("ok"))


def _probe(name, doc, call, in_child=False, keys=()):
    """An attempt whose code is one privilege probe: report(**call) (or several, by key)."""
    code = f"report(**in_child(lambda: {call}))" if in_child else f"report(**{call})"
    return attempt(name, doc, code, not_eperm(*keys), enosys_na(*keys))


ATTEMPTS = [
    _probe("keyctl", """keyctl() with an invalid operation: the kernel keyring is not namespaced,
        so a container must not reach it at all (Docker's profile denies keyctl: EPERM; the
        host answers EOPNOTSUPP for the bad operation).""",
           "syscall(250, 9999, 0, 0, 0, 0)"),
    _probe("add_key", """add_key() with NULL arguments: adding keys to the host-wide keyring; must be
        EPERM (seccomp), not the EFAULT of a call that reached the kernel.""",
           "syscall(248, None, None, None, 0, 0)"),
    _probe("bpf", """bpf() with an invalid command: eBPF is a kernel attack surface and sees the
        host; without CAP_BPF/CAP_SYS_ADMIN seccomp answers EPERM (the host: EINVAL).""",
           "syscall(321, 9999, None, 0)"),
    _probe("io_uring_setup", """io_uring_setup(0, NULL): io_uring bypasses seccomp for the calls it
        submits, so Docker denies it: EPERM (the host: EFAULT).""",
           "syscall(425, 0, None)"),
    _probe("perf_event_open", """perf_event_open(NULL, ...): perf events see the host's CPUs and
        kernel; denied without CAP_PERFMON/CAP_SYS_ADMIN: EPERM (the host: EFAULT).""",
           "syscall(298, None, 0, -1, -1, 0)"),
    _probe("open_by_handle_at", """open_by_handle_at(AT_FDCWD, NULL, 0): the "shocker" escape opens
        any inode of a mounted filesystem by handle, outside the container's root; needs
        CAP_DAC_READ_SEARCH: EPERM (the host: EFAULT).""",
           "syscall(304, -100, None, 0)"),
    attempt("clone3", """clone3(NULL, 88): seccomp cannot look into clone3's struct to refuse
        CLONE_NEW* flags, so Docker's profile answers ENOSYS and glibc falls back to clone();
        anything but ENOSYS (the host: EFAULT) means the call reached the kernel.""",
            "report(**syscall(435, None, 88))",
            lambda r: r.get("errno") != "ENOSYS"),
    attempt("clone_newuser", """clone(CLONE_NEWUSER|SIGCHLD) in a forked child: a nested user
        namespace gives root there every capability over namespaces it creates, the start of
        many kernel exploits; our policy denies namespace-creating clone: EPERM.""",
            """
            def child():
                r = syscall(56, 0x10000000 | signal.SIGCHLD, 0, 0, 0, 0)
                if r["ok"] and r["ret"] == 0:
                    os._exit(0)  # the grandchild, in its own user namespace
                if r["ok"]:
                    os.waitpid(r["ret"], 0)
                return r
            report(**in_child(child))
            """, _ok),
    _probe("unshare_newuser", """unshare(CLONE_NEWUSER), raw, in a single-threaded forked child:
        the nested user namespace again; denied by our no-namespaces rule: EPERM.""",
           "syscall(272, 0x10000000)", in_child=True),
    attempt("unshare_Ur", """`unshare -Ur true`: util-linux making a user namespace with root
        mapped, the usual first step of a container breakout; must fail (EPERM inside).""",
            """
            p = subprocess.run(["unshare", "-Ur", "true"], capture_output=True, text=True, timeout=30)
            report(ok=p.returncode == 0, returncode=p.returncode, stderr=p.stderr.strip()[-200:])
            """, _ok),
    attempt("setns", """setns() into /proc/1/ns/net (or our own netns when init's is not even
        openable): joining another namespace is how an escape lands in the host's; denied by
        our policy whatever the capabilities: EPERM.""",
            """
            def child():
                opened = attempt(os.open, "/proc/1/ns/net", os.O_RDONLY)
                fd = opened.get("value")
                if fd is None:
                    fd = os.open("/proc/self/ns/net", os.O_RDONLY)
                r = syscall(308, fd, 0x40000000)
                return {**r, "open_pid1": opened.get("errno", "ok")}
            report(**in_child(child))
            """, _ok),
    attempt("mount_tmpfs", """mount("tmpfs") on a temp dir: any mount needs CAP_SYS_ADMIN, and
        mounting is how masks are lifted and host filesystems reached: EPERM. (The host mounts
        it and unmounts it at once.)""",
            """
            d = tempfile.mkdtemp(prefix="ck-sec-mnt-")
            r = syscall(165, "ck-sec", d, "tmpfs", 0, "size=64k")
            if r["ok"]:
                syscall(166, d, 2)
            os.rmdir(d)
            report(**r)
            """, _ok, rootless="in its own user namespace root holds CAP_SYS_ADMIN over its mount "
                              "namespace unless dropped: the capability drop and seccomp refuse it"),
    attempt("fsopen", """fsopen("tmpfs"): the new mount API (fsopen/fsmount/move_mount) is a second
        door to mount(); needs CAP_SYS_ADMIN: EPERM. (The host gets an fd and closes it.)""",
            """
            r = syscall(430, "tmpfs", 0)
            if r["ok"]:
                os.close(r["ret"])
            report(**r)
            """, _ok),
    attempt("umount2", """umount2() of a directory that is not a mount point (EINVAL once past the
        privilege check) and, contained, of the /proc/keys mask: unmounting a mask reveals what
        it hides; needs CAP_SYS_ADMIN: EPERM.""",
            """
            d = tempfile.mkdtemp(prefix="ck-sec-umnt-")
            r = syscall(166, d, 0)
            os.rmdir(d)
            if CONTAINED:  # never on the host: its own masks (if it is a container) stay
                r["mask"] = syscall(166, "/proc/keys", 2)
            report(**r)
            """, lambda r: r.get("errno") != "EPERM" or r.get("mask", {}).get("ok")),
    _probe("pivot_root", """pivot_root() between two paths that do not exist: a second pivot_root
        could put back a root the container left; the privilege check comes first, so EPERM
        here and ENOENT on the host (which nothing can pivot with these paths).""",
           'syscall(155, "/nonexistent-ck-sec-new", "/nonexistent-ck-sec-old")', in_child=True),
    attempt("load_module", """init_module(NULL, 0, "") and finit_module(-1, "", 0): a module is
        code in the host's kernel; CAP_SYS_MODULE is dropped and seccomp denies both: EPERM
        (ENOEXEC/EBADF once past the check; this suite's host kernel may have no modules).""",
            """
            report(init_module=syscall(175, None, 0, ""), finit_module=syscall(313, -1, "", 0))
            """, not_eperm("init_module", "finit_module"), enosys_na("init_module", "finit_module")),
    attempt("kexec", """kexec_load(0, 1000 segments, NULL, bad flags) and kexec_file_load(-1, -1,
        0, "", bad flags): booting another kernel replaces the host's; CAP_SYS_BOOT: EPERM
        (EINVAL for the flags once past it; never a valid or an unloading call).""",
            """
            report(kexec_load=syscall(246, 0, 1000, None, 0x100),
                   kexec_file_load=syscall(320, -1, -1, 0, "", 0x100))
            """, not_eperm("kexec_load", "kexec_file_load"), enosys_na("kexec_load", "kexec_file_load")),
    _probe("reboot", """reboot() with an invalid magic: CAP_SYS_BOOT is checked before the magic,
        so EPERM inside and EINVAL on the host (an invalid magic never reboots anything).""",
           "syscall(169, 0xdead, 0xbeef, 0, None)"),
    attempt("swapon_swapoff", """swapon/swapoff of a path that does not exist: swap is host-wide
        (and swapoff of the host's swap would push it into OOM); CAP_SYS_ADMIN: EPERM inside,
        ENOENT on the host.""",
            """
            report(swapon=syscall(167, "/nonexistent-ck-sec-swap", 0),
                   swapoff=syscall(168, "/nonexistent-ck-sec-swap"))
            """, not_eperm("swapon", "swapoff")),
    _probe("acct", """acct() of a path that does not exist: process accounting is host-wide and
        writes a file as root; CAP_SYS_PACCT: EPERM inside, ENOENT on the host.""",
           'syscall(163, "/nonexistent-ck-sec-acct/x")'),
    attempt("iopl_ioperm", """iopl(3) and ioperm(0x80, 1, 1) in a forked child: raw I/O ports reach
        the host's hardware; CAP_SYS_RAWIO: EPERM (this suite's host kernel may lack both).""",
            "report(**in_child(lambda: {'iopl': syscall(172, 3), 'ioperm': syscall(173, 0x80, 1, 1)}))",
            not_eperm("iopl", "ioperm"), enosys_na("iopl", "ioperm")),
    attempt("userfaultfd", """userfaultfd(): it lets a process stall the kernel in a page fault,
        the timing tool of many race exploits; Docker allows it only with CAP_SYS_PTRACE: EPERM.""",
            """
            r = syscall(323, os.O_CLOEXEC)
            if r["ok"]:
                os.close(r["ret"])
            report(**r)
            """, not_eperm()),
    _probe("personality", """personality(PER_LINUX32|ADDR_NO_RANDOMIZE) in a forked child: turning
        off ASLR helps an exploit; Docker allows only a few personalities: EPERM.""",
           "syscall(135, 0x0040008)", in_child=True),
    attempt("syslog", """syslog(SYSLOG_ACTION_SIZE_BUFFER): the kernel log is the host's (addresses,
        other containers' messages); CAP_SYSLOG: EPERM.""",
            "report(**syscall(103, 10, None, 0))", _ok),
    attempt("set_clock", """settimeofday(NULL, NULL), a pure CAP_SYS_TIME check that changes
        nothing, and clock_settime with an out-of-range nanosecond field: the clock is the
        host's; EPERM for both (the host: success, and EINVAL).""",
            """
            ts = (ctypes.c_long * 2)(0, 2_000_000_000)
            report(settimeofday=syscall(164, None, None), clock_settime=syscall(227, 0, ts))
            """, lambda r: r["settimeofday"].get("ok") or r["clock_settime"].get("errno") != "EPERM"),
    attempt("sethostname", """sethostname() to the current name: the UTS namespace is the
        container's, but without CAP_SYS_ADMIN even that must be EPERM. (The host gets its own
        name back.)""",
            """
            name = socket.gethostname().encode()
            report(**syscall(170, name, len(name)), name=name.decode())
            """, _ok, rootless="the UTS namespace belongs to the container's user namespace; "
                              "CAP_SYS_ADMIN over it is dropped all the same"),
    attempt("ptrace_pid1", """ptrace(PTRACE_SEIZE) of PID 1 (contained; the host seizes a child of
        its own instead, never its init): init kept every capability the payload lost, so the
        kernel refuses: EPERM. A child of one's own can be traced everywhere (the control).""",
            """
            def child():
                out = {}
                if CONTAINED:
                    out["pid1"] = syscall(101, 0x4206, 1, 0, 0)  # SEIZE: no stop; detached at our exit
                kid = os.fork()
                if kid == 0:
                    time.sleep(30)
                    os._exit(0)
                out["own_child"] = syscall(101, 0x4206, kid, 0, 0)
                os.kill(kid, signal.SIGKILL)
                os.waitpid(kid, 0)
                out["ok"] = out["pid1" if CONTAINED else "own_child"]["ok"]
                return out
            report(**in_child(child))
            """, _ok),
    attempt("process_vm_readv_pid1", """process_vm_readv() of PID 1 (the host: of a child of its
        own): reading init's memory, a copy of the launcher's, with the host's environment;
        the ptrace access check answers EPERM (EFAULT or success: it got past).""",
            """
            class IOVec(ctypes.Structure):
                _fields_ = [("base", ctypes.c_void_p), ("len", ctypes.c_size_t)]
            buf = ctypes.create_string_buffer(b"ck-sec-probe", 16)
            def child():
                target = 1
                if not CONTAINED:
                    target = os.fork()
                    if target == 0:
                        time.sleep(30)
                        os._exit(0)
                mine = ctypes.create_string_buffer(16)
                local, remote = IOVec(ctypes.addressof(mine), 16), IOVec(ctypes.addressof(buf), 16)
                r = syscall(310, target, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
                if target != 1:
                    os.kill(target, signal.SIGKILL)
                    os.waitpid(target, 0)
                return {**r, "target": "pid 1" if target == 1 else "own child", "read": mine.raw[:12].decode(errors="replace")}
            report(**in_child(child))
            """, lambda r: r.get("errno") not in ("EPERM", "ESRCH")),
    attempt("mknod_block_device", """mknod() of a block device node (8:0, a host disk) in a temp
        dir: a node is a door to the host's disk; CAP_MKNOD is dropped (and v1's devices cgroup
        has no "m"): EPERM. (The host makes the node and deletes it.)""",
            """
            d = tempfile.mkdtemp(prefix="ck-sec-dev-")
            r = attempt(os.mknod, d + "/sda", stat.S_IFBLK | 0o600, os.makedev(8, 0))
            if r["ok"]:
                os.unlink(d + "/sda")
            os.rmdir(d)
            report(**r)
            """, _ok),
]
