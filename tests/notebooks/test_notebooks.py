"""Each teaching notebook, top to bottom in the container kernel, exercises solved:
what it claims to show is checked, not only that its cells ran."""
import nbformat
import pytest

from tests.helpers import SLOW
from tests.notebooks.conftest import NOTEBOOKS, TIMES, notebook_names
from tests.notebooks.run import execute

LIMIT_S = 120 * SLOW  # each notebook, top to bottom (issue 13); scaled under the v2 VM's emulation
ISOLATED = {"pid", "mnt", "uts", "ipc", "net", "cgroup"}


def check_00_start_here(c):
    assert c["mode"] == "contained" and c["contained"] is True
    assert ISOLATED <= set(c["isolated_namespaces"])


def check_01_processes(c):
    assert c["exec_keeps_pid"] and c["fork_copies_memory"]
    assert c["clone_as_fork_status"] == 7
    assert c["clone_newuts"] == "EPERM"  # the kernel cannot make namespaces itself
    assert c["threads"] > 1
    assert ISOLATED <= set(c["isolated_namespaces"])
    assert c["proc_size_zero"]
    assert c["shm_segments_here"] >= 1
    assert c["kernel_pids"]["inside"] == 2 and c["kernel_pids"]["host"] != 2


def check_02_uts(c):
    names = c["hostnames"]
    assert names["the sibling"] == "box"
    assert len(set(names.values())) == 3  # the host, this kernel and the sibling differ
    assert c["uts_inodes_differ"]
    assert c["rename_refused"]


def check_03_user_namespaces(c):
    assert c["userns_id_inside"].startswith("uid=0(")  # root inside
    inside, outside, _ = c["userns_map"]
    assert inside == 0 and outside != 0
    assert c["userns_host_uids"] and 0 not in c["userns_host_uids"]  # not root outside
    assert c["plain_host_uids"] == [0]


def check_04_mounts(c):
    assert c["propagation_tags"] == []  # every mount private: nothing propagates to the host
    assert c["plan"]["first"] == "private" and c["plan"]["last"] == "pivot-root"
    assert c["plan"]["masks"] > 0
    assert c["chroot"]["jailed"] == ["IN-THE-JAIL"]
    assert c["chroot"]["escaped_to_container_root"]  # out of the chroot, not out of pivot_root


def check_05_pid_and_init(c):
    bare, init = c["no_init"], c["with_init"]
    assert bare["pid"] == 1 and bare["zombies"] > 0 and bare["survived_sigterm"]
    assert init["pid"] == 2 and init["zombies"] == 0 and init["exit_code"] == 143
    pid1 = [host for pid, host in c["sibling_pids"] if pid == 1]
    assert pid1 and pid1[0] != 1


def check_06_cgroups(c):
    assert c["cgroup_version"] in (1, 2)
    assert "/container-kernel/" in c["host_cgroup_path"]
    assert c["memory_limit_file"] == 100 << 20
    assert "killed by the OOM killer at 100 MiB" in c["oom_notice"]
    assert c["kernel_survived_oom"]
    cpu = c["cpu_quota"]
    # A quota is a ceiling: on a busy host the loop may get less, never much more.
    assert 0 < cpu["measured"] <= cpu["quota"] * 1.25 + 0.02, cpu
    assert cpu["throttled"] > 0, cpu
    assert "forks: pids.max held" in c["fork_bomb"] and "refused 0 forks" not in c["fork_bomb"]
    assert c["processes_after_bomb"] <= 3  # init, the kernel (and at most a straggler)
    assert c["monitor"] == "Monitor"
    # 10 MiB/s in the file, unless the workspace is on no block device (the v2 VM's tmpfs /tmp)
    io = c["io_limit_file"]
    assert "10485760" in io or "no block device" in io, io


def check_07_network_namespaces(c):
    assert c["private_network"] == {"reply": "pong to ping", "shared_netns": True}
    assert c["isolated"]["127.0.0.1"] == "ECONNREFUSED"
    assert c["isolated"]["10.0.2.2"] == "ENETUNREACH" and c["isolated"]["1.1.1.1"] == "ENETUNREACH"


def check_08_the_kernel_you_are_in(c):
    assert c["launcher_argv"] == ["-m", "container_kernel", "kernel"]
    assert c["transport"] == "ipc"
    assert c["interfaces"] == ["lo"]
    assert c["init_parent_is_launcher"]
    assert "above this kernel's ceiling" in c["control_refusal"]
    assert c["interrupt"] == {"interrupted": True, "same_pids": True}


def check_09_escape_lab(c):
    assert "sys_admin" not in c["guards"]["caps"]
    assert c["guards"]["no_new_privs"] and c["guards"]["seccomp"] == "filter"
    attempts = c["attempts"]
    assert len(attempts) >= 10
    assert not any(r == "succeeded" for r in attempts.values()), attempts
    assert attempts["new user namespace"] == "EPERM"
    assert attempts["write a kernel setting"] == "EROFS"
    assert attempts["kill PID 1"] == "ignored: init lives"
    assert c["masked"] and all("/dev/null" in v or "empty directory" in v for v in c["masked"].values())


# check_06_cgroups checks 06-cgroups.ipynb
CHECKS = {name[len("check_"):].replace("_", "-"): f for name, f in globals().items()
          if name.startswith("check_")}
NO_CLAIMS = {"00-welcome"}  # the short tour: it only has to run


def test_every_notebook_has_its_claims_checked():
    missing = [n for n in notebook_names() if n not in CHECKS and n not in NO_CLAIMS]
    assert not missing, f"notebooks with no check_ function here: {missing}"


@pytest.mark.timeout(LIMIT_S + 60 * SLOW)
@pytest.mark.parametrize("name", notebook_names())
def test_notebook(name, notebook_kernel, workdir):
    nb, claims, seconds = execute(str(workdir / f"{name}.ipynb"), str(workdir), slow=SLOW)
    TIMES[name] = seconds
    exercises = [c for c in nb.cells if "exercise" in c.metadata]
    solved = [k for k, v in claims.items() if k.startswith("exercise:") and v is True]
    assert len(solved) == len(exercises), (solved, len(exercises))
    if name in CHECKS:
        CHECKS[name](claims)
    assert seconds < LIMIT_S, f"{name} took {seconds:.0f} s, over {LIMIT_S} s"


def test_unanswered_exercises_say_so(notebook_kernel, workdir):
    """As committed (every answer still `...`) a notebook runs through, and no check passes."""
    nb, claims, _ = execute(str(workdir / "01-processes.ipynb"), str(workdir), solutions=False, slow=SLOW)
    assert not any(k.startswith("exercise:") for k in claims)
    checks = [c for c in nb.cells if "lesson.check(" in c.source]
    assert checks and all("Not answered yet" in "".join(o.get("text", "") for o in c.outputs)
                          for c in checks)


def test_notebook_files_have_the_kernelspec_of_00_welcome():
    want = nbformat.read(f"{NOTEBOOKS}/00-welcome.ipynb", as_version=4).metadata.kernelspec
    for name in notebook_names():
        assert nbformat.read(f"{NOTEBOOKS}/{name}.ipynb", as_version=4).metadata.kernelspec == want, name
