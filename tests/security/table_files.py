"""Attempts through files: /proc and /sys, the rootfs, /dev, cgroupfs, and the fds and
directories a container must not hold of the host's tree (runc's CVEs: 2019-5736, 2022-0492,
2024-21626)."""

from .attempts import attempt

DEV_ALLOWED = {"null", "zero", "full", "random", "urandom", "tty", "ptmx", "pts", "shm", "mqueue",
               "fd", "stdin", "stdout", "stderr", "core"}
# runtime/devices.py's v1 list, written out again here: the suite checks it, it does not copy it.
DEVICES_LIST = {"c 1:3 rw", "c 1:5 rw", "c 1:7 rw", "c 1:8 rw", "c 1:9 rw", "c 5:0 rw", "c 5:2 rw",
                "c 136:* rw"}


def _ok(r):
    return bool(r.get("ok"))


def _nonempty(r):
    return r.get("bytes", 0) > 0


def _v1_only(host, mode):
    if host["cgroup"] != 1:
        return "cgroup v2: no devices.list (the kernel takes a BPF program instead)"
    if mode == "rootless":
        return ("rootless: no v1 devices cgroup; in a user namespace no device node can be made "
                "(mknod is EPERM) and /dev holds only the bound nodes")
    return None


ATTEMPTS = [
    attempt("core_pattern", """Open /proc/sys/kernel/core_pattern for writing and write back its
        own value: a pattern "|/path" makes the host run that program as root at the next crash
        (the classic sysctl escape); /proc/sys is read-only inside: EROFS.""",
            """
            path = "/proc/sys/kernel/core_pattern"
            value = open(path, "rb").read()
            try:
                fd = os.open(path, os.O_WRONLY)
            except OSError as e:
                report(ok=False, errno=ename(e.errno))
            else:
                try:
                    os.write(fd, value)  # its own current value: nothing changes
                    report(ok=True, wrote=value.decode().strip())
                except OSError as e:
                    report(ok=False, opened=True, errno=ename(e.errno))
                finally:
                    os.close(fd)
            """, lambda r: r.get("ok") or r.get("opened")),
    attempt("drop_caches", """Open /proc/sys/vm/drop_caches for writing (never written): dropping
        the host's page cache is a host-wide denial of service; /proc/sys is read-only: EROFS.""",
            'report(**attempt(lambda: os.close(os.open("/proc/sys/vm/drop_caches", os.O_WRONLY))))',
            _ok),
    attempt("sysrq_trigger", """Write access to /proc/sysrq-trigger: one byte reboots, crashes or
        freezes the host; read-only inside (EROFS; contained targets open it for writing and
        never write). On the host it is never opened: os.access(W_OK) as root is the evidence.""",
            """
            path = "/proc/sysrq-trigger"
            if CONTAINED:
                report(**attempt(lambda: os.close(os.open(path, os.O_WRONLY))), exists=os.path.exists(path))
            else:
                report(ok=os.access(path, os.W_OK), exists=os.path.exists(path),
                       evidence="os.access(W_OK), never opened")
            """, _ok, lambda r: None if r["exists"] else
            "this host's kernel has no /proc/sysrq-trigger (CONFIG_MAGIC_SYSRQ off)"),
    attempt("proc_keys", """Read /proc/keys: the keys of the host's keyrings (not namespaced);
        masked with /dev/null: empty.""", 'report(**read_file("/proc/keys"))', _nonempty),
    attempt("proc_timer_list", """Read /proc/timer_list: the host's timers, with kernel addresses
        and other processes' names; masked: empty.""", 'report(**read_file("/proc/timer_list"))',
            _nonempty),
    attempt("proc_kcore", """Read /proc/kcore: the host kernel's memory as an ELF core; masked
        (empty, or absent where the kernel has none).""", 'report(**read_file("/proc/kcore", 64))',
            _nonempty, lambda r: "this host's kernel has no /proc/kcore (CONFIG_PROC_KCORE off)"
            if r.get("errno") == "ENOENT" else None),
    attempt("sys_firmware", """List /sys/firmware: ACPI tables, EFI variables (writable ones can
        brick a machine); masked with an empty read-only tmpfs.""",
            """
            try:
                report(entries=sorted(os.listdir("/sys/firmware")))
            except OSError as e:
                report(entries=[], errno=ename(e.errno))
            """, lambda r: bool(r["entries"])),
    attempt("rootfs_readonly", """Write into /usr, /etc, /etc/passwd, the venv and our package: the
        host rootfs's system dirs are bound read-only, the rest is the container's own read-only
        tmpfs: EROFS. (The host only asks os.access(W_OK): nothing is written there.)""",
            """
            out = {}
            dirs = ["/usr", "/etc", HOST["venv"], HOST["package_dir"]]
            for d in dirs:
                if not CONTAINED:
                    out[d] = os.access(d, os.W_OK)
                    continue
                probe = f"{d}/ck-sec-{HOST['token']}"
                try:
                    os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
                    os.unlink(probe)  # got through: take it back at once
                    out[d] = True
                except OSError as e:
                    out[d] = ename(e.errno)
            if CONTAINED:
                r = attempt(lambda: os.close(os.open("/etc/passwd", os.O_WRONLY | os.O_APPEND)))
                out["/etc/passwd"] = True if r["ok"] else r["errno"]
            else:
                out["/etc/passwd"] = os.access("/etc/passwd", os.W_OK)
            report(results=out, writable=[p for p, v in out.items() if v is True])
            """, lambda r: bool(r["writable"])),
    attempt("dev_minimal", """List /dev: only null zero full random urandom tty ptmx pts shm mqueue
        fd stdin stdout stderr core; any other node (a disk, /dev/mem, /dev/kmsg) is the host's
        hardware.""",
            f"""
            allowed = {sorted(DEV_ALLOWED)!r}
            entries = sorted(os.listdir("/dev"))
            report(extra=[e for e in entries if e not in allowed], entries=entries[:60])
            """, lambda r: bool(r["extra"])),
    attempt("dev_node_metadata", """chmod, chown and utime, each to its current value, of every
        /dev node and masked /proc file that is the host's own inode (same device and inode as the
        host's /dev/null, zero, full, random, urandom, tty): whoever may change them may chmod 000
        the host's /dev/null or chown its tty; they must be refused (EROFS or EPERM).""",
            """
            host_nodes = {tuple(v): k for k, v in HOST["dev_nodes"].items()}
            paths = ["/dev/" + n for n in sorted(os.listdir("/dev"))] + [
                "/proc/" + n for n in ("keys", "timer_list", "interrupts", "kcore", "latency_stats",
                                       "timer_stats", "sched_debug")]
            out = {}
            for p in paths:
                if os.path.islink(p):
                    continue  # /dev/stdin and the like: their targets are listed themselves
                try:
                    st = os.stat(p)
                except OSError:
                    continue
                if (st.st_dev, st.st_ino) not in host_nodes:
                    continue
                out[p] = {"chmod": attempt(os.chmod, p, stat.S_IMODE(st.st_mode)),
                          "chown": attempt(os.chown, p, st.st_uid, st.st_gid),
                          "utime": attempt(os.utime, p, ns=(st.st_atime_ns, st.st_mtime_ns))}
            changed = sorted(f"{p} {op}" for p, r in out.items() for op, x in r.items() if x["ok"])
            report(host_inodes=sorted(out), changed=changed)
            """, lambda r: bool(r["changed"]),
            rootless="rootless the nodes belong to the host's root, unmapped in the user namespace: EPERM"),
    attempt("open_host_block_device", """Open the host's block devices (each name in its
        /sys/block, and /dev/vda, sda, nvme0n1, mem, kmem, port, kmsg) read-only: a disk node
        gives the host's filesystem raw; none exists inside: ENOENT.""",
            """
            names = sorted(set(HOST["block_devices"]) | {"vda", "sda", "nvme0n1", "xvda", "mem", "kmem", "port", "kmsg"})
            out = {}
            for n in names:
                r = attempt(lambda: os.close(os.open("/dev/" + n, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)))
                out[n] = "opened" if r["ok"] else r["errno"]
            report(opened=[n for n, v in out.items() if v == "opened"], results=out)
            """, lambda r: bool(r["opened"])),
    attempt("devices_cgroup_list", """Read the devices cgroup's devices.list (v1): only the minimal
        set, read and write, no "m" and no "a *:* rwm"; it refuses any other node even to a
        process that could make one.""",
            f"""
            allowed = {sorted(DEVICES_LIST)!r}
            path = "/sys/fs/cgroup/devices" + (own_cgroup("devices") if not CONTAINED else "") + "/devices.list"
            lines = [l.strip() for l in open(path) if l.strip()]
            report(lines=lines, extra=[l for l in lines if l not in allowed])
            """, lambda r: bool(r["extra"]), skip=_v1_only),
    attempt("cgroupfs_mount", """Mount a cgroup v1 hierarchy (rdma, memory; CVE-2022-0492): in a
        fresh hierarchy root may write release_agent, a program the host runs as root when a
        cgroup empties; mounting needs CAP_SYS_ADMIN: EPERM. (The host mounts one of its own
        hierarchies in a temp dir, checks release_agent is writable, and unmounts it.)""",
            """
            results = {}
            options = ["rdma", "memory"] if CONTAINED else [HOST["cgroup_mount_option"]]
            for option in options:
                d = tempfile.mkdtemp(prefix="ck-sec-cg-")
                fstype = "cgroup2" if option == "cgroup2" else "cgroup"
                r = syscall(165, "cgroup", d, fstype, 0xe, None if fstype == "cgroup2" else option)
                if r["ok"]:
                    r["release_agent_writable"] = os.access(d + "/release_agent", os.W_OK)
                    syscall(166, d, 2)
                os.rmdir(d)
                results[option] = r
            report(results=results, mounted=[o for o, r in results.items() if r["ok"]])
            """, lambda r: bool(r["mounted"])),
    attempt("release_agent_write", """Open every release_agent and notify_on_release visible
        under /sys/fs/cgroup for writing (notify_on_release gets its own value back, release_agent
        is never written): the other half of CVE-2022-0492; /sys/fs/cgroup is read-only: EROFS.""",
            """
            import glob
            found = {}
            for name in ("release_agent", "notify_on_release"):
                for path in glob.glob("/sys/fs/cgroup/" + name) + glob.glob("/sys/fs/cgroup/*/" + name):
                    try:
                        fd = os.open(path, os.O_WRONLY)
                    except OSError as e:
                        found[path] = ename(e.errno)
                        continue
                    try:
                        if name == "notify_on_release":
                            os.write(fd, open(path, "rb").read())  # its own value
                    finally:
                        os.close(fd)
                    found[path] = "writable"
            report(results=found, writable=[p for p, v in found.items() if v == "writable"])
            """, lambda r: bool(r["writable"]),
            lambda r: "no release_agent or notify_on_release here (cgroup v2)" if not r["results"] else None),
    attempt("lift_own_limits", """Open the container's own memory and pids limit files for writing
        (never written): root that can write them lifts its limits; the container's cgroupfs is
        read-only: EROFS. (The host opens its own cgroup's files.)""",
            """
            out = {}
            if os.path.isdir("/sys/fs/cgroup/memory"):
                files = [f"/sys/fs/cgroup/memory{own_cgroup('memory')}/memory.limit_in_bytes",
                         f"/sys/fs/cgroup/pids{own_cgroup('pids')}/pids.max"]
            else:
                files = [f"/sys/fs/cgroup{own_cgroup('')}/{n}" for n in ("memory.max", "pids.max")]
            for path in files:
                r = attempt(lambda: os.close(os.open(path, os.O_WRONLY)))
                out[path] = "writable" if r["ok"] else r["errno"]
            report(results=out, writable=[p for p, v in out.items() if v == "writable"])
            """, lambda r: bool(r["writable"])),
    attempt("proc1_root", """Look for the host's marker files through /proc/PID/root of every
        visible process, and create a file in a host dir through /proc/1/root: a process whose
        root is the host's would be a way out; inside, /proc/1 is our own init (and its root is
        not even readable to the payload).""",
            """
            reached = {}
            for pid in pids():
                try:
                    st = os.stat(f"/proc/{pid}/root/")
                except OSError:
                    continue
                seen = markers_at(f"/proc/{pid}/root")
                if seen or is_host_root(st):
                    reached[pid] = seen
            path = f"/proc/1/root{HOST['write_dir']}/from-{MODE}"
            write = attempt(lambda: os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)))
            report(reached=reached, write=write)
            """, lambda r: bool(r["reached"]) or r["write"]["ok"]),
    attempt("proc1_exe", """Open /proc/1/exe (the host: a child's) with O_PATH, then for writing through /proc/self/fd
        (CVE-2019-5736): init's binary is the host's python, and a handle on it becomes writable
        once it stops running (ETXTBSY lasts only that long), unless its mount is read-only;
        the payload may not even open the link (EACCES: init has more capabilities).""",
            """
            # On the host a child of our own stands for init (the host's own init is not ours to touch).
            child = None if CONTAINED else subprocess.Popen(["sleep", "30"])
            pid = 1 if CONTAINED else child.pid
            try:
                fd = os.open(f"/proc/{pid}/exe", os.O_PATH)
            except OSError as e:
                report(path_opened=False, errno=ename(e.errno), pid=pid)
            else:
                w = attempt(lambda: os.close(os.open(f"/proc/self/fd/{fd}", os.O_WRONLY)))  # never written
                readonly = bool(os.statvfs(f"/proc/self/fd/{fd}").f_flag & os.ST_RDONLY)
                os.close(fd)
                report(path_opened=True, write_ok=w["ok"], errno=w.get("errno"), readonly_mount=readonly, pid=pid)
            if child:
                child.kill()
                child.wait()
            """, lambda r: r["path_opened"] and (r["write_ok"] or not r["readonly_mount"])),
    attempt("self_exe", """Open /proc/self/exe for writing (CVE-2019-5736's other half): our
        interpreter is the host's file and must sit on a read-only mount, or be a sealed copy
        (a warm kernel's, forked from a template that re-exec'd from a sealed memfd, as runc
        does). The kernel answers ETXTBSY before EROFS while it runs, so the mount's
        read-only flag (statvfs), or the copy's seals, decide.""",
            """
            import fcntl
            r = attempt(lambda: os.close(os.open("/proc/self/exe", os.O_WRONLY)))  # never written
            fd = os.open("/proc/self/exe", os.O_RDONLY)
            try:
                seals = fcntl.fcntl(fd, fcntl.F_GET_SEALS)  # EINVAL: not a memfd
            except OSError:
                seals = 0
            os.close(fd)
            sealed = all(seals & s for s in (fcntl.F_SEAL_WRITE, fcntl.F_SEAL_SHRINK, fcntl.F_SEAL_GROW,
                                             fcntl.F_SEAL_SEAL))
            report(**r, readonly_mount=bool(os.statvfs("/proc/self/exe").f_flag & os.ST_RDONLY),
                   sealed_copy=sealed)
            """, lambda r: r["ok"] or not (r["readonly_mount"] or r["sealed_copy"])),
    attempt("leaked_fds", """readlink every /proc/self/fd/* (CVE-2024-21626): only pipes, sockets,
        anon inodes, and files the container can name (the path resolves inside to the same
        inode); no fd on a host file the suite knows (its markers, the kernels' log file), no
        directory fd from which '..' reaches the host's root; fds 1 and 2 are pipes.""",
            """
            mounted = set()
            for line in open("/proc/self/mountinfo"):
                major, minor = line.split()[2].split(":")
                mounted.add(os.makedev(int(major), int(minor)))
            witnesses = {tuple(v) for v in HOST["witnesses"].values()}
            fds, bad = {}, []
            for name in sorted(os.listdir("/proc/self/fd"), key=int):
                fd = int(name)
                try:
                    link, st = os.readlink(f"/proc/self/fd/{fd}"), os.fstat(fd)
                except OSError:
                    continue  # listdir's own fd, closed by now
                fds[fd] = link
                why = []
                if fd in (1, 2) and not link.startswith("pipe:"):
                    why.append("stdout/stderr not a pipe")
                if link.split(":")[0] in ("pipe", "socket", "anon_inode"):
                    pass
                elif link.endswith(" (deleted)"):
                    if st.st_dev not in mounted:
                        why.append("a deleted file of a filesystem not mounted here")
                else:
                    try:
                        named = os.stat(link)
                        if not os.path.samestat(named, st):
                            why.append("its path names another file here")
                    except OSError as e:
                        why.append(f"its path does not resolve here ({ename(e.errno)})")
                if (st.st_dev, st.st_ino) in witnesses:
                    why.append("a host file the suite made")
                if stat.S_ISDIR(st.st_mode):
                    top = walk_up(os.open(f"/proc/self/fd/{fd}", os.O_PATH | os.O_DIRECTORY))
                    if markers_at(dir_fd=top) or is_host_root(os.fstat(top)):
                        why.append("'..' from it reaches the host's root")
                    os.close(top)
                if why:
                    bad.append({"fd": fd, "link": link, "why": why})
            report(bad=bad, fds=fds)
            """, lambda r: bool(r["bad"])),
    attempt("cwd_walk", """'..' from the working directory, 64 times (CVE-2024-21626's shape: a cwd
        outside the root walks up the host's tree): /proc/self/cwd must be inside, and the walk
        must end at the container's own root, with none of the host's markers.""",
            """
            link = os.readlink("/proc/self/cwd")
            top = walk_up(os.open(".", os.O_PATH | os.O_DIRECTORY))
            st = os.fstat(top)
            report(cwd=os.getcwd(), link=link, markers=markers_at(dir_fd=top),
                   host_root=is_host_root(st), our_root=os.path.samestat(st, os.stat("/")))
            os.close(top)
            """, lambda r: bool(r["markers"]) or r["host_root"] or not r["our_root"]
            or not r["link"].startswith("/")),
    attempt("chroot_breakout", """The chroot breakout, in a forked child: chroot into a subdir
        keeping the cwd outside it, chdir('..') 64 times, chroot('.'): under a plain chroot this
        reaches the real root; after pivot_root (old root detached) it reaches only the
        container's own root: same inode as '/', no host marker.""",
            """
            base = tempfile.mkdtemp(prefix="ck-sec-chroot-")
            os.mkdir(base + "/jail")
            def child():
                before = os.stat("/")
                os.chroot(base + "/jail")  # the cwd stays outside the new root
                for _ in range(64):
                    os.chdir("..")
                os.chroot(".")
                st = os.stat("/")
                return {"ok": True, "markers": markers_at(), "host_root": is_host_root(st),
                        "same_root": os.path.samestat(st, before), "shadow": os.path.exists("/etc/shadow")}
            r = in_child(child)
            os.rmdir(base + "/jail")
            os.rmdir(base)
            report(**r)
            """, lambda r: bool(r.get("markers")) or r.get("host_root") or (r.get("ok") and not r["same_root"])),
    attempt("host_files_invisible", """Look for the marker files the suite made on the host (in
        /var/tmp, /root, /tmp, /dev/shm and beside the notebook dir): nothing of the host's tree
        but the bound system dirs is visible.""",
            "report(seen=markers_at())", lambda r: bool(r["seen"])),
    attempt("etc_shadow", """Read /etc/shadow: the host's password hashes; the container's /etc is
        its own (only harmless files copied): ENOENT.""",
            'report(**read_file("/etc/shadow", 1))', _ok),
    attempt("mounts_nosuid", """Every directory mount of the container (/usr among them) is nosuid,
        so a setuid-root binary of the host's rootfs runs without gaining root.""",
            """
            lax = []
            for line in open("/proc/self/mountinfo"):
                fields = line.split()
                point, options = fields[4].replace("\\\\040", " "), fields[5].split(",")
                if "nosuid" not in options and os.path.isdir(point):
                    lax.append(point)
            report(without_nosuid=lax[:40])
            """, lambda r: bool(r["without_nosuid"])),
]
