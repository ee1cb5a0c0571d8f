"""`container-kernel run`: real containers, asserted from inside with the probe."""
import os
import signal
import socket
import subprocess
import textwrap
import time

import pytest

from tests.helpers import (CK, alive, children, ck, host_ns, kill_tree, probe, requires_root,
                           start, state_of, within)

pytestmark = requires_root


def py(code):
    return ["python3", "-c", textwrap.dedent(code)]


# ---- namespaces ------------------------------------------------------------------------------

def test_every_namespace_differs_from_the_hosts():
    inside = probe()
    for kind in ("pid", "mnt", "uts", "ipc", "net", "cgroup"):
        assert inside["namespaces"][kind] != host_ns(kind), kind


def test_hostname_is_the_containers_and_the_hosts_is_unchanged():
    before = socket.gethostname()
    inside = probe("--hostname", "inside-box")
    assert inside["hostname"] == "inside-box"
    assert socket.gethostname() == before
    default = probe()
    assert default["hostname"] != before and len(default["hostname"]) == 12


def test_proc_shows_only_init_the_payload_and_its_children():
    inside = probe()
    assert inside["pid"] == 2 and inside["ppid"] == 1
    assert inside["proc_pids"] == [1, 2]
    assert inside["proc_comms"]["1"] == "ck-init"


def test_the_host_sees_the_payload_under_another_pid():
    p = start("run", "--", "sleep", "30")
    try:
        state = state_of(p.pid)
        (payload,) = children(state["init_pid"])
        assert payload != 2
        with open(f"/proc/{payload}/status") as f:
            nspid = [line.split()[1:] for line in f if line.startswith("NSpid:")][0]
        assert nspid == [str(payload), "2"]  # host PID, then the PID inside
    finally:
        kill_tree(p)


# ---- init: zombies, signals, exit status -----------------------------------------------------

def test_orphans_are_reaped_no_zombies():
    r = ck("run", "--", *py("""
        import os, time
        for _ in range(20):
            if os.fork() == 0:          # child: fork a grandchild, then die at once;
                if os.fork() == 0:      # the grandchild is orphaned to PID 1 (init)
                    time.sleep(0.2); os._exit(0)
                os._exit(0)
        time.sleep(1.5)
        zombies = [p for p in os.listdir('/proc') if p.isdigit()
                   and open(f'/proc/{p}/stat').read().rpartition(')')[2].split()[0] == 'Z']
        # our own 20 children are ours to reap; the 20 orphans are init's
        print(len(zombies), len([p for p in os.listdir('/proc') if p.isdigit()]))
        """))
    assert r.returncode == 0, r.stderr
    zombies, procs = map(int, r.stdout.split())
    assert zombies == 20   # exactly the payload's own unreaped children, not the orphans
    assert procs == 22     # init + payload + its 20 zombie children: every orphan was reaped


def test_exit_status_is_the_payloads():
    assert ck("run", "--", "sh", "-c", "exit 7").returncode == 7
    assert ck("run", "--", "sh", "-c", "kill -USR1 $$").returncode == 128 + signal.SIGUSR1


def test_sigterm_to_the_launcher_reaches_the_payload():
    p = start("run", "--", *py("""
        import signal, sys, time
        import os
        signal.signal(signal.SIGTERM, lambda *a: (os.write(1, b'got TERM\\n'), sys.exit(42)))
        print('ready', flush=True)
        time.sleep(30)
        """))
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=10)
        assert "got TERM" in out and p.returncode == 42, err
    finally:
        kill_tree(p)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
                                 signal.SIGUSR2])
def test_other_signals_are_forwarded(sig):
    p = start("run", "--", *py(f"""
        import signal, sys, time
        import os
        # os.write, not print: the signal may land while print('ready') is still flushing
        signal.signal({int(sig)}, lambda *a: (os.write(1, b'got {int(sig)}\\n'), sys.exit(3)))
        print('ready', flush=True)
        time.sleep(30)
        """))
    try:
        assert p.stdout.readline().strip() == "ready"
        p.send_signal(sig)
        out, err = p.communicate(timeout=10)
        assert f"got {int(sig)}" in out and p.returncode == 3, err
    finally:
        kill_tree(p)


def test_sigkill_to_the_launcher_kills_everything_inside_within_1s():
    p = start("run", "--", "sh", "-c", "sleep 100 & sleep 100")
    try:
        init_pid = state_of(p.pid)["init_pid"]

        def everything_inside():  # init, sh, and the sleeps once sh has forked them
            found = [init_pid] + children(init_pid)
            return found + [c for pid in found[1:] for c in children(pid)]
        assert within(5, lambda: len(everything_inside()) >= 3), everything_inside()
        inside = everything_inside()
        p.kill()
        p.wait()
        deadline = time.time() + 1.0
        while time.time() < deadline and any(alive(pid) for pid in inside):
            time.sleep(0.01)
        assert not any(alive(pid) for pid in inside)
    finally:
        kill_tree(p)
    ck("run", "--", "true")  # collects the killed container's cgroup and run dir


# ---- mounts and files ------------------------------------------------------------------------

def test_no_mount_propagates_shared():
    mountinfo = probe()["mountinfo"]
    assert "shared:" not in mountinfo


def test_a_mount_made_inside_does_not_appear_on_the_host():
    p = start("run", "--cap-add", "SYS_ADMIN", "--", *py("""
        import ctypes, os, time
        os.mkdir('/tmp/inside-mount')
        libc = ctypes.CDLL(None, use_errno=True)
        assert libc.mount(b'ck-test-inside', b'/tmp/inside-mount', b'tmpfs', 0, None) == 0
        print('mounted', flush=True)
        time.sleep(30)
        """))
    try:
        assert p.stdout.readline().strip() == "mounted"
        with open("/proc/self/mountinfo") as f:
            assert "ck-test-inside" not in f.read()
        for pid in (int(x) for x in os.listdir("/proc") if x.isdigit()):
            try:  # nor in any host process's view (init is in the container's mount ns)
                if host_ns("mnt", pid) == host_ns("mnt"):
                    with open(f"/proc/{pid}/mountinfo") as f:
                        assert "ck-test-inside" not in f.read()
            except OSError:
                pass
    finally:
        kill_tree(p)
    ck("run", "--", "true")


def test_host_marker_files_are_invisible_inside(tmp_path):
    checkout = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    token = f"ck-marker-{os.getpid()}"
    markers = [f"/root/{token}", f"/var/tmp/{token}", f"{checkout}/{token}"]
    for m in markers:
        with open(m, "w") as f:
            f.write("secret")
    try:
        r = ck("run", "--", *py(f"""
            import os
            print([os.path.exists(m) for m in {markers!r}])
            print(os.path.exists('/etc/shadow'), os.path.exists('/root/.bash_history'),
                  sorted(os.listdir('/root')), os.path.exists('/home'))
            """))
        assert r.returncode == 0, r.stderr
        lines = r.stdout.splitlines()
        assert lines[0] == "[False, False, False]"
        assert lines[1] == "False False [] False"
    finally:
        for m in markers:
            os.unlink(m)


def test_writing_to_usr_fails_with_erofs():
    r = ck("run", "--", *py("""
        import errno
        for path in ('/usr/ck-test', '/etc/ck-test', '/ck-test'):
            try:
                open(path, 'w')
                print('wrote', path)
            except OSError as e:
                print(errno.errorcode[e.errno])
        open('/tmp/ok', 'w').write('tmp is writable')
        """))
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["EROFS", "EROFS", "EROFS"]


def test_dev_is_minimal_and_proc_sys_are_fresh():
    r = ck("run", "--", *py("""
        import os
        print(sorted(os.listdir('/dev')))
        open('/dev/null', 'w').write('x'); print(len(open('/dev/urandom', 'rb').read(8)))
        print(os.path.exists('/dev/vda'), os.path.exists('/dev/mem'))
        """))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert eval(lines[0]) == ["core", "fd", "full", "mqueue", "null", "ptmx", "pts", "random",
                              "shm", "stderr", "stdin", "stdout", "tty", "urandom", "zero"]
    assert lines[1:] == ["8", "False False"]


def test_volumes_rw_and_ro(tmp_path):
    (tmp_path / "in.txt").write_text("hello")
    r = ck("run", "-v", f"{tmp_path}:/data", "-v", f"{tmp_path}:/ro:ro", "--", *py("""
        print(open('/data/in.txt').read())
        open('/data/out.txt', 'w').write('from inside')
        try:
            open('/ro/x', 'w'); print('ro writable!')
        except OSError as e:
            print(e.strerror)
        """))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["hello", "Read-only file system"]
    assert (tmp_path / "out.txt").read_text() == "from inside"


def test_workdir_and_built_environment():
    os.environ["CK_SECRET_TOKEN"] = "do-not-leak"
    try:
        r = ck("run", "-w", "/tmp", "-e", "FOO=bar", "--", *py("""
            import os, json; print(os.getcwd()); print(json.dumps(dict(os.environ)))
            """))
    finally:
        del os.environ["CK_SECRET_TOKEN"]
    assert r.returncode == 0, r.stderr
    cwd, env = r.stdout.splitlines()
    import json
    env = json.loads(env)
    assert cwd == "/tmp"
    assert env["FOO"] == "bar" and env["container"] == "container-kernel"
    assert "CK_SECRET_TOKEN" not in env and "SSH_AUTH_SOCK" not in env
    assert set(env) <= {"PATH", "HOSTNAME", "HOME", "LANG", "TERM", "container", "FOO"}


def test_no_host_fds_leak_in():
    r, w = os.pipe()
    os.set_inheritable(w, True)
    try:
        out = subprocess.run([CK, "run", "--", "ls", "/proc/self/fd"], capture_output=True,
                             text=True, pass_fds=(w,), timeout=30)
    finally:
        os.close(r)
        os.close(w)
    assert out.returncode == 0, out.stderr
    assert sorted(int(x) for x in out.stdout.split()) == [0, 1, 2, 3]  # 3: ls's own dir fd


# ---- rootfs DIR ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def busybox_rootfs(tmp_path_factory):
    busybox = "/bin/busybox"
    if not os.path.exists(busybox):
        pytest.skip("needs busybox-static (apt-get install busybox-static) to build a tiny rootfs")
    root = tmp_path_factory.mktemp("rootfs")
    for d in ("bin", "proc", "dev", "sys", "tmp", "etc", "root", "run"):
        (root / d).mkdir()
    subprocess.run(["cp", busybox, str(root / "bin/busybox")], check=True)
    for applet in ("sh", "ls", "cat", "echo", "hostname", "touch", "ps"):
        os.symlink("busybox", root / "bin" / applet)
    (root / "etc/hostname").write_text("image\n")
    (root / "etc/hosts").write_text("127.0.0.1 localhost\n")
    (root / "etc/os-release").write_text("NAME=tiny\n")
    return root


def test_rootfs_dir_is_used_read_only_with_writable_tmp(busybox_rootfs):
    r = ck("run", "--rootfs", str(busybox_rootfs), "--hostname", "tiny", "--", "/bin/sh", "-c",
           "cat /etc/os-release /etc/hostname; hostname; ls /; touch /tmp/ok && echo tmp-ok; "
           "touch /bin/x 2>&1 || true; ps")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "NAME=tiny" in out and "tiny\ntiny" in out
    assert "tmp-ok" in out and "Read-only file system" in out
    assert "usr" not in out.split()  # the host's /usr is not there
    assert not (busybox_rootfs / "tmp/ok").exists()


def test_rootfs_dir_without_the_command_is_refused(busybox_rootfs):
    r = ck("run", "--rootfs", str(busybox_rootfs), "--", "python3", "-c", "1")
    assert r.returncode == 127
    assert r.stderr.count("\n") == 1 and "'python3' not found" in r.stderr


# ---- network ---------------------------------------------------------------------------------

def test_network_none_has_only_lo_and_cannot_reach_the_host():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    port = server.getsockname()[1]
    try:
        r = ck("run", "--", *py(f"""
            import socket
            print([n for _, n in socket.if_nameindex()])
            s = socket.socket(); s.settimeout(2)
            try:
                s.connect(('127.0.0.1', {port})); print('reached the host!')
            except OSError as e:
                print('refused', e.errno)
            # lo is up: a server inside is reachable inside
            srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen()
            c = socket.create_connection(srv.getsockname(), timeout=2); print('lo up')
            """))
    finally:
        server.close()
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == "['lo']"
    assert lines[1].startswith("refused")
    assert lines[2] == "lo up"


def test_network_host_shares_the_hosts_interfaces():
    inside = probe("--network", "host")
    assert inside["namespaces"]["net"] == host_ns("net")
    assert sorted(inside["interfaces"]) == sorted(n for _, n in socket.if_nameindex())


# ---- cleanup ---------------------------------------------------------------------------------

def test_30_runs_a_third_sigkilled_leave_nothing(tmp_path):
    from tests.helpers import leftovers
    killed = 0
    for i in range(30):
        if i % 3 == 2:
            p = start("run", "--memory", "64M", "--pids", "50", "--", "sleep", "30")
            state_of(p.pid)
            p.kill()
            p.wait()
            killed += 1
        else:
            assert ck("run", "--memory", "64M", "--pids", "50", "--", "true").returncode == 0
    # The last run was SIGKILLed: its cgroup and run dir wait for the next start to collect them,
    # and nothing of it runs any more.
    assert within(5, lambda: not [x for x in leftovers() if x.startswith("process")]), leftovers()
    assert ck("run", "--", "true").returncode == 0
    assert leftovers() == []
    assert killed == 10


def test_the_payload_keeps_only_dockers_default_capabilities():
    from container_kernel.runtime import capabilities, procfs
    inside = probe()
    kept = procfs.capability_names(inside["cap_eff"])
    assert kept == [n for n in capabilities.NAMES if n in capabilities.DEFAULT]
    assert "sys_admin" not in kept and "mknod" not in kept
    added = procfs.capability_names(probe("--cap-add", "SYS_ADMIN", "--cap-drop", "chown")["cap_eff"])
    assert "sys_admin" in added and "chown" not in added
