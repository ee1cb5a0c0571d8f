"""jupyter-resource-usage's usage_request, answered with the container's numbers, not the host's."""
import os


from tests.jupyter.test_magics import ceil_kernel  # noqa: F401,F811  (a fixture: 512M, 1 CPU, 100 pids)

MiB = 1 << 20


def usage(kc):
    msg = kc.session.msg("usage_request", {})
    kc.control_channel.send(msg)
    while True:
        reply = kc.control_channel.get_msg(timeout=20)
        if reply["parent_header"].get("msg_id") == msg["header"]["msg_id"]:
            return reply["content"]


def host_host_memory():
    with open("/proc/meminfo") as f:
        return next(int(l.split()[1]) * 1024 for l in f if l.startswith("MemTotal:"))


def test_usage_reply_is_the_containers(ceil_kernel):
    km, kc = ceil_kernel
    first, second = usage(kc), usage(kc)
    vm = second["host_virtual_memory"]
    assert vm["total"] == 512 * MiB != host_host_memory()  # the kernelspec's limit, not the host's RAM
    assert 0 < vm["used"] < vm["total"] and vm["available"] == vm["total"] - vm["used"]
    assert second["cpu_count"] == 1 and second["container"]["cpus"] == 1.0
    assert second["container"]["pids"] >= 2 and second["pid"] == 2  # PID 2: the kernel inside
    assert "host_cpu_percent" in second and 0 <= second["host_cpu_percent"] <= 150
    # the host's view of the same cgroup agrees with what the kernel was told
    cid = km.provisioner.container_id
    v2 = f"/sys/fs/cgroup/container-kernel/{cid}/memory.max"
    path = v2 if os.path.exists(v2) else f"/sys/fs/cgroup/memory/container-kernel/{cid}/memory.limit_in_bytes"
    with open(path) as f:
        assert int(f.read()) == vm["total"]
    assert {"kernel_cpu", "kernel_memory", "hostname"} <= set(first)


def host_lru(cid):
    """active + inactive bytes of the kernel's cgroup, read by the host."""
    v2 = f"/sys/fs/cgroup/container-kernel/{cid}/memory.stat"
    path = v2 if os.path.exists(v2) else f"/sys/fs/cgroup/memory/container-kernel/{cid}/memory.stat"
    with open(path) as f:
        stat = dict(line.split() for line in f)
    pre = "" if path == v2 else "total_"
    return sum(int(stat[pre + k]) for k in ("active_anon", "active_file", "inactive_anon", "inactive_file"))


def test_active_and_inactive_are_the_containers(ceil_kernel):  # noqa: F811
    """The panel shows Active and Inactive (0 B when absent): the cgroup's LRU lists, not the host's."""
    km, kc = ceil_kernel
    vm = usage(kc)["host_virtual_memory"]
    ours, host = vm["active"] + vm["inactive"], host_lru(km.provisioner.container_id)
    assert 0 < ours <= vm["total"]
    assert abs(ours - host) < 16 * MiB, (ours, host)  # read a moment apart
