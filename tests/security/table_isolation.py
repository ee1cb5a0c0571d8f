"""Attempts at what root in a container must not see or hold: the host's namespaces,
processes, environment, network and IPC; privileges (no_new_privs, seccomp, capabilities,
setuid binaries); and its limits (pids, memory)."""

from .attempts import attempt

# Capabilities that would each be a way out (capabilities(7)); Docker's default set has none.
DANGEROUS_CAPS = {2: "dac_read_search", 9: "linux_immutable", 12: "net_admin", 16: "sys_module",
                  17: "sys_rawio", 19: "sys_ptrace", 21: "sys_admin", 22: "sys_boot",
                  24: "sys_resource", 25: "sys_time", 27: "mknod", 32: "mac_override",
                  33: "mac_admin", 34: "syslog", 38: "perfmon", 39: "bpf", 40: "checkpoint_restore"}
FORK_CAP = 1100  # the plain kernel must not fork-bomb the host: this many children at most


def _ns_kinds(mode):
    # As root the container shares the host's user namespace (as Docker's does); rootless not.
    return ["pid", "mnt", "net", "uts", "ipc", "cgroup"] + (["user"] if mode == "rootless" else [])


ATTEMPTS = [
    attempt("nnp_seccomp", """/proc/self/status says NoNewPrivs 1 and Seccomp 2 (a filter): without
        them a setuid binary gives root its capabilities back and every syscall is open.""",
            """
            status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
            report(no_new_privs=status["NoNewPrivs"].strip(), seccomp=status["Seccomp"].strip())
            """, lambda r: r["no_new_privs"] != "1" or r["seccomp"] != "2"),
    attempt("capabilities_bounding", f"""The bounding set (what any exec could ever regain) holds
        none of {", ".join(sorted(DANGEROUS_CAPS.values()))}: each is a known way out.""",
            f"""
            caps = {DANGEROUS_CAPS!r}
            status = dict(l.split(":", 1) for l in open("/proc/self/status") if ":" in l)
            bnd, eff = int(status["CapBnd"], 16), int(status["CapEff"], 16)
            report(bounding=sorted(n for b, n in caps.items() if bnd >> b & 1),
                   effective=sorted(n for b, n in caps.items() if eff >> b & 1))
            """, lambda r: bool(r["bounding"]),
            rootless="root inside a user namespace holds its capabilities over that namespace "
                     "only, and the same drop bounds them"),
    attempt("setuid_binary", """Run a setuid-root binary of the host (su, waiting on a pipe for a
        password) as uid 65534 and read its euid from /proc: with no_new_privs and nosuid mounts
        it stays 65534; on the host it becomes 0. It is killed before reading any input.""",
            """
            binary = next(p for p in ("/usr/bin/su", "/bin/su", "/usr/bin/passwd") if os.path.exists(p))
            kw = dict(stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                      user=65534, group=65534)
            try:
                p = subprocess.Popen([binary], extra_groups=[], **kw)
            except PermissionError:  # setgroups denied (a user namespace without a gid range)
                p = subprocess.Popen([binary], **kw)
            try:
                status = dict(l.split(":", 1) for l in open(f"/proc/{p.pid}/status") if ":" in l)
            finally:
                p.kill()
                p.wait()
            uids = status["Uid"].split()
            report(binary=binary, setuid_bit=bool(os.stat(binary).st_mode & stat.S_ISUID),
                   uids=uids, euid=int(uids[1]))
            """, lambda r: r["euid"] == 0,
            rootless="uid 65534 inside is a subordinate uid outside (/etc/subuid); a setuid-root "
                     "file is owned by an unmapped uid there"),
    attempt("namespaces_shared", """Compare our namespaces' inodes with the host's (and the
        hostname): pid, mnt, net, uts, ipc and cgroup (and user, rootless) must all differ.""",
            """
            kinds = ["pid", "mnt", "net", "uts", "ipc", "cgroup"] + (["user"] if MODE == "rootless" else [])
            shared = [k for k in kinds if os.stat(f"/proc/self/ns/{k}").st_ino == HOST["ns"][k]]
            report(shared=shared, hostname=socket.gethostname(),
                   same_hostname=socket.gethostname() == HOST["hostname"])
            """, lambda r: bool(r["shared"]) or r["same_hostname"],
            rootless="the user namespace differs too (as root the container shares the host's, as "
                     "Docker's does)"),
    attempt("host_namespace_reachable", """Look through /proc/*/ns/* for a namespace of the
        host's: one visible would be a setns() target out (and a PID namespace leak).""",
            """
            kinds = ["pid", "mnt", "net", "uts", "ipc", "cgroup"] + (["user"] if MODE == "rootless" else [])
            found = {}
            for pid in pids():
                for k in kinds:
                    try:
                        if os.stat(f"/proc/{pid}/ns/{k}").st_ino == HOST["ns"][k]:
                            found.setdefault(pid, []).append(k)
                    except OSError:
                        pass
            report(found={p: v for p, v in list(found.items())[:5]}, count=len(found))
            """, lambda r: r["count"] > 0),
    attempt("host_processes_invisible", """Look for the host process the suite started (its
        cmdline carries a token) in /proc, and signal its host PID with 0: the PID namespace
        shows only the container's processes.""",
            """
            seen = []
            for pid in pids():
                try:
                    if HOST["token"].encode() in open(f"/proc/{pid}/cmdline", "rb").read():
                        seen.append(pid)
                except OSError:
                    pass
            kill = attempt(os.kill, HOST["sleeper_pid"], 0)
            report(seen=seen, processes=len(pids()), kill_host_pid=kill)
            """, lambda r: bool(r["seen"])),
    attempt("host_env_invisible", """Look for the marker variable the suite set in the Jupyter
        server's (its own) environment, in os.environ and in every readable /proc/*/environ
        (init's is a copy of the launcher's): the container's environment is built, never
        inherited.""",
            """
            mine = HOST["env_var"] in os.environ or any(HOST["token"] in v for v in os.environ.values())
            others = []
            for pid in pids():
                try:
                    if HOST["token"].encode() in open(f"/proc/{pid}/environ", "rb").read():
                        others.append(pid)
                except OSError:
                    pass
            report(in_our_environ=mine, in_proc_environ=others)
            """, lambda r: r["in_our_environ"] or bool(r["in_proc_environ"])),
    attempt("host_network_invisible", """List the interfaces (if_nameindex, /sys/class/net) and
        the routes: the network namespace has only lo, and no route anywhere.""",
            """
            routes = open("/proc/net/route").read().splitlines()[1:]
            report(interfaces=sorted(n for _, n in socket.if_nameindex()),
                   sys_class_net=sorted(os.listdir("/sys/class/net")), routes=len(routes))
            """, lambda r: set(r["interfaces"]) - {"lo"} or set(r["sys_class_net"]) - {"lo"} or r["routes"]),
    attempt("raw_socket_only_lo", """Open an AF_PACKET raw socket (Docker keeps CAP_NET_RAW, and so
        do we) and an ICMP raw socket that pings the host's address: they work, but see only the
        container's network namespace: lo alone, and the host unreachable.""",
            """
            packet = attempt(lambda: socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(3)).close())
            icmp = {"ok": False, "errno": "no host address"}
            if HOST["host_ip"]:
                def ping():
                    s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
                    try:
                        s.sendto(b"\\x08\\x00\\xf7\\xff\\x00\\x00\\x00\\x00", (HOST["host_ip"], 0))
                    finally:
                        s.close()
                icmp = attempt(ping)
            report(packet_socket=packet, interfaces=sorted(n for _, n in socket.if_nameindex()),
                   ping_host=icmp)
            """, lambda r: (r["packet_socket"]["ok"] and r["interfaces"] != ["lo"]) or r["ping_host"]["ok"]),
    attempt("tcp_to_host", """Connect to a TCP port the suite listens on, on the host's 127.0.0.1
        and on its address: the container's lo is its own (ECONNREFUSED) and the host's address
        has no route (ENETUNREACH).""",
            """
            out = {}
            for ip, port in HOST["tcp"]:
                s = socket.socket()
                s.settimeout(3)
                out[ip] = attempt(s.connect, (ip, port))
                s.close()
            report(results=out, connected=[ip for ip, r in out.items() if r["ok"]])
            """, lambda r: bool(r["connected"])),
    attempt("abstract_unix_socket", """Connect to an abstract unix socket the suite listens on
        (abstract names belong to the network namespace; containerd-shim's CVE-2020-15257 was
        one): ECONNREFUSED.""",
            """
            s = socket.socket(socket.AF_UNIX)
            r = attempt(s.connect, "\\0" + HOST["abstract_socket"])
            s.close()
            report(**r)
            """, lambda r: r["ok"]),
    attempt("sysv_ipc", """shmget() of a SysV shared memory key the suite created on the host: the
        IPC namespace has its own segments: ENOENT.""",
            """
            r = syscall(29, HOST["shm_key"], 0, 0)
            report(**r)
            """, lambda r: r["ok"]),
    attempt("init_memory_environ", """Read /proc/1/environ, /proc/1/maps and open /proc/1/mem (the
        host: a child's): our
        init is a fork of the host's launcher (its environment is the host's); the ptrace access
        check refuses the payload, which has fewer capabilities: EACCES.""",
            """
            # On the host a child of our own stands for init (the host's own init is not ours to touch).
            child = None if CONTAINED else subprocess.Popen(["sleep", "30"])
            pid = 1 if CONTAINED else child.pid
            report(environ=read_file(f"/proc/{pid}/environ"), maps=read_file(f"/proc/{pid}/maps", 256),
                   mem=attempt(lambda: os.close(os.open(f"/proc/{pid}/mem", os.O_RDONLY))), pid=pid)
            if child:
                child.kill()
                child.wait()
            """, lambda r: r["environ"]["ok"] or r["maps"]["ok"] or r["mem"]["ok"]),
    attempt("fork_bomb", f"""Fork children that block on a pipe until fork fails (EAGAIN), then kill
        them: the default kernelspec's pids limit (1024) stops it below 1024 processes. The
        plain kernel stops at {FORK_CAP} children: past 1024 is proof enough.""",
            f"""
            r_end, w_end = os.pipe()
            kids, err = [], None
            for _ in range({FORK_CAP}):
                try:
                    pid = os.fork()
                except OSError as e:
                    err = ename(e.errno)
                    break
                if pid == 0:
                    try:
                        os.read(r_end, 1)
                    finally:
                        os._exit(0)
                kids.append(pid)
            os.close(w_end)
            for k in kids:
                os.kill(k, signal.SIGKILL)
            for k in kids:
                os.waitpid(k, 0)
            os.close(r_end)
            report(forked=len(kids), errno=err)
            """, lambda r: r["forked"] >= 1024,
            lambda r: f"the host itself stops forks at {r['forked']} ({r['errno']})"
            if r["errno"] and r["forked"] < 1024 else None,
            rootless="rootless on v1 the limit is RLIMIT_NPROC (per host uid), not a pids cgroup"),
    attempt("memory_ceiling", """Read the memory limit that holds us (the cgroup's, up the tree,
        and RLIMIT_AS) rather than allocate: the default kernelspec's ceiling is half the host's
        RAM; no limit would let one cell take the host's memory.""",
            """
            import resource
            limits = {}
            path = own_cgroup("memory") if os.path.isdir("/sys/fs/cgroup/memory") else own_cgroup("")
            while path is not None:
                f = (f"/sys/fs/cgroup/memory{path.rstrip('/')}/memory.limit_in_bytes"
                     if os.path.isdir("/sys/fs/cgroup/memory") else f"/sys/fs/cgroup{path.rstrip('/')}/memory.max")
                try:
                    text = open(f).read().strip()
                    limits[f] = None if text == "max" else int(text)
                except OSError:
                    pass
                path = None if path in ("/", "") else os.path.dirname(path.rstrip("/"))
            rlimit = resource.getrlimit(resource.RLIMIT_AS)[0]
            found = [v for v in limits.values() if v] + ([rlimit] if rlimit != resource.RLIM_INFINITY else [])
            report(cgroup=limits, rlimit_as=rlimit, limit=min(found) if found else None,
                   ceiling=HOST["memory_ceiling"])
            """, lambda r: r["limit"] is None or r["limit"] > r["ceiling"] * 1.01,
            rootless="rootless on v1 there is no memory cgroup: the limit is RLIMIT_AS"),
]
