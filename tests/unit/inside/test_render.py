"""inside/render.py: the views of hand-made records, as text a reader (and a test) can rely on."""

from container_kernel import protocol
from container_kernel.inside import facts, render
from container_kernel.runtime.cgroups.stats import IO, Cpu, IORule, Memory, Pids, Stats
from container_kernel.runtime.procfs import Mount

MiB = 1 << 20
PATHS = {"memory": "/sys/fs/cgroup/memory/container-kernel/c1",
         "pids": "/sys/fs/cgroup/pids/container-kernel/c1"}
STATS = Stats(1, PATHS, Memory(512 * MiB, 512 * MiB, 100 * MiB, 200 * MiB, 2, 5),
              Cpu(0.5, 12_345_000_000, 100, 7, 2_500_000_000), Pids(100, 12, 3),
              IO((IORule(8, 0, MiB, None),), 4096, 1 << 30))
CEILING = protocol.Ceiling(memory=512 * MiB, cpu=1.0, pids=100)
HOST_NS = {"pid": 11, "mnt": 12, "user": 17}


def host_info(**changes):
    info = protocol.Info(
        id="c1", host_hostname="laptop", launcher_pid=100, init_pid=101, kernel_pid=102,
        init_children=(protocol.InitChild(102, 2),), host_namespaces=HOST_NS,
        container_namespaces=None, namespaces=["pid", "mnt"],
        cgroup=protocol.CgroupView(1, PATHS, STATS), ceiling=CEILING, uid_map="0 0 4294967295\n",
        gid_map="0 0 4294967295\n", rootfs="host", network="none", rootless=False, workspace="/w",
        enforced={"memory": "cgroup v1", "cpu": "cgroup v1"}, mapping=None)
    return info._replace(**changes)


def make_facts(host=None, **changes):
    inside = {"pid": 21, "mnt": 22, "user": 17}
    uid_map = [(0, 0, 4294967295)]
    f = facts.Facts(
        kernel="container-kernel", contained=True, warning=None, outer_container=None,
        hostname="c1", pid=2, ppid=1, namespaces=inside, uid_map=uid_map, gid_map=uid_map,
        users=facts.users(uid_map, uid_map), cwd="/w",
        mounts=[Mount("/", "/", "tmpfs", "tmpfs", ("rw",), ()),
                Mount("/usr", "/usr", "ext4", "/dev/vda", ("ro", "nosuid"), ())],
        capabilities=["chown", "kill"], no_new_privs=True, seccomp="filter",
        links=[facts.Link("lo", "unknown")], host=host, host_error=None, interfaces=["lo"],
        namespace_table=facts.namespace_table(inside, host.host_namespaces if host else {}),
        cgroup=facts.cgroup_facts(host) if host else None)
    return f._replace(**changes)


def test_limit_rows_of_known_stats():
    headers, rows = render.limit_rows(STATS, CEILING)
    assert headers == ("controller", "limit", "ceiling", "usage", "peak", "counters")
    assert rows == [
        ("memory", "512 MiB", "512 MiB", "100 MiB", "200 MiB", "OOM kills 2, limit hit 5 times"),
        ("cpu", "0.5 CPUs", "1 CPU", "12.35 CPU-s", "", "throttled 7 of 100 periods, 2.50 s"),
        ("pids", "100", 100, 12, "", "forks refused 3"),
        ("io", "8:0 read 1 MiB/s write unlimited", "none", "read 4 KiB, written 1 GiB", "", ""),
    ]
    # No ceiling (no launcher), and a cgroup that says nothing: "none", "unlimited", zeros.
    empty = Stats(2, {"unified": "/sys/fs/cgroup"}, Memory(), Cpu(), Pids(), IO())
    assert render.limit_rows(empty)[1] == [
        ("memory", "unlimited", "none", "unlimited", "unlimited", "OOM kills 0, limit hit 0 times"),
        ("cpu", "unlimited", "none", "0.00 CPU-s", "", "throttled 0 of 0 periods, 0.00 s"),
        ("pids", "unlimited", "none", "?", "", "forks refused 0"),
        ("io", "unlimited", "none", "read 0 B, written 0 B", "", ""),
    ]
    assert render.limit_rows(empty, protocol.Ceiling()) == render.limit_rows(empty)


def test_cgroup_view_text():
    text, page = render.render_cgroup(STATS, CEILING, "the host, by the launcher")
    assert text.splitlines() == [
        "cgroup v1 /sys/fs/cgroup/{memory,pids}/container-kernel/c1 (seen from the host, by the launcher)",
        "  controller  limit                             ceiling  usage                      peak     counters",
        "  memory      512 MiB                           512 MiB  100 MiB                    200 MiB  OOM kills 2, limit hit 5 times",
        "  cpu         0.5 CPUs                          1 CPU    12.35 CPU-s                         throttled 7 of 100 periods, 2.50 s",
        "  pids        100                               100      12                                  forks refused 3",
        "  io          8:0 read 1 MiB/s write unlimited  none     read 4 KiB, written 1 GiB",
    ]
    assert page.startswith("<p>cgroup v1 ") and "<table>" in page
    text, page = render.render_cgroup(STATS, None, "inside, read-only", warning="not <contained>")
    assert text.startswith("!! not <contained>\ncgroup v1 ") and "not &lt;contained&gt;" in page


def test_no_cgroup_says_how_limits_hold():
    text, page = render.render_no_cgroup({"memory": "RLIMIT_AS per process", "cpu": "NOT enforced"})
    assert text.splitlines()[1:] == ["  cpu: NOT enforced", "  memory: RLIMIT_AS per process"]
    assert "<li>cpu: NOT enforced</li>" in page
    assert render.render_no_cgroup({})[0].endswith("\n  no limits were asked for")


def test_info_view_from_the_host():
    f = make_facts(host_info())
    assert render.headline(f) == ("Container c1: the kernel is PID 2 inside, PID 102 on the host; "
                                  "2 of 3 namespace inodes differ from the host's.")
    text, page = render.render_info(f)
    lines = text.splitlines()
    assert lines[:5] == [
        "Namespaces:",
        "  namespace  inode inside  inode on the host  isolated                   isolates",
        "  pid        21            11                 yes                        process IDs: the container has its own PID 1",
        "  mnt        22            12                 yes                        mount points: its own root and /proc",
        "  user       17            17                 NO (shared with the host)  user and group IDs: root inside can be a user outside",
    ]
    at = lines.index("Names and PIDs:")
    assert lines[at + 1:at + 6] == [
        "                      inside     on the host",
        "  hostname            c1         laptop",
        "  the kernel's PID    2          102",
        "  init's PID          1          101",
        "  the launcher's PID  (outside)  100",
    ]
    assert "  root inside is uid 0 on the host" in lines
    assert ("  rootfs: host (a tmpfs with read-only binds of the host's system dirs); 2 mounts, "
            "1 read-only; cwd /w") in lines
    assert "    /usr         ext4   ro  /dev/vda" in lines
    assert "  cgroup v1 (seen from the host): /sys/fs/cgroup/{memory,pids}/container-kernel/c1" in lines
    at = lines.index("Limits enforced:")
    assert lines[at + 1:at + 3] == ["  cpu: cgroup v1", "  memory: cgroup v1"]
    assert lines[-7:] == ["Security:", "  2 capabilities: chown, kill", "  no_new_privs: yes",
                          "  seccomp: filter", "Network:", "  mode: none", "  interfaces: lo (unknown)"]
    # the one shared namespace is marked in the page
    assert page.count("<tr style='background:#fff3cd'>") == 1
    assert "<tr style='background:#fff3cd'><td style='text-align:left'>user</td>" in page


def test_info_view_without_a_launcher():
    f = make_facts(warning="This kernel was not started by container-kernel.", outer_container="Docker")
    assert render.headline(f) is None
    text, _ = render.render_info(f)
    lines = text.splitlines()
    assert lines[0] == ("!! This kernel was not started by container-kernel. "
                        "It runs inside another container: Docker.")
    assert "  user       17            ?                  ?         user and group IDs: root inside can be a user outside" in lines
    assert "  the kernel's PID    2          ?" in lines and "  init's PID          ?          ?" in lines
    assert "cgroup:" not in lines and "Limits enforced:" not in lines and "  mode: ?" in lines
    f = make_facts(host_error="cannot reach the launcher at /x: Connection refused")
    assert render.render_info(f)[0].startswith(
        "!! The launcher did not answer: cannot reach the launcher at /x: Connection refused\n")


def test_ps_and_set_lines():
    procs = (protocol.Proc(101, 1, None, "root", [0], MiB, "sleeping", 0.01, ["init"], "/"),
             protocol.Proc(102, 2, 1, "root", [0], 50 * MiB, "running", 3.25, ["python", "-m", "ipykernel"], "/main"))
    text, page = render.render_ps(procs)
    assert text.splitlines() == [
        "  host PID  PID  PPID  user  cgroup  RSS     CPU s  state     command",
        "  101       1    -     root  /       1 MiB   0.01   sleeping  init",
        "  102       2    1     root  /main   50 MiB  3.25   running   python -m ipykernel",
    ]
    reply = protocol.SetReply("memory", 100 * MiB, "100 MiB", 512 * MiB, PATHS)
    assert render.set_line({"controller": "memory", "value": "100M"}, reply) == \
        "memory: 100 MiB (read back from the cgroup)"
    reply = protocol.SetReply("io", 10 * MiB, "10 MiB/s", None, PATHS, "write", "8:0", "/w")
    assert render.set_line({"controller": "io", "direction": "write", "value": "10M/s"}, reply) == \
        "io write: 10 MiB/s on 8:0 (/w) (read back from the cgroup)"


def test_building_blocks():
    assert render.where({"memory": "/c/memory/ck/x", "pids": "/c/pids/ck/x"}) == "/c/{memory,pids}/ck/x"
    assert render.where({"unified": "/c/ck/x"}) == "/c/ck/x"
    text = render.text_table(("a", "bb"), [(1, 2), ("long", 3)])
    assert text.splitlines()[2].split() == ["long", "3"]
    assert "<tr style='background:#fff3cd'>" in render.html_table(("a",), [("<x>",)], {0})
    assert "&lt;x&gt;" in render.html_table(("a",), [("<x>",)])
    assert render.enforcement_lines(None) == []
