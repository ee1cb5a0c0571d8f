"""The escape suite through `container-kernel run` (the CLI) as root: the whole table in one
container, a few attempts as plain commands with their exit status and output, bad
--security-opt input, and proof that the --security-opt switches are wired."""
import glob
import json
import os
import subprocess
import time

import pytest

from container_kernel.runtime.spec import default_run_base
from tests.helpers import CK, ck, our_cgroups

from .attempts import GATE, all_attempts, batch_argv, judge_batch, parse_batch, skip_unless_applies
from .targets import contained_writes, run_limits

ATTEMPTS = all_attempts()
BY_NAME = {a.name: a for a in ATTEMPTS}
pytestmark = GATE


@pytest.fixture(scope="module")
def sec_run_results(sec_host):
    host = sec_host["facts"]
    r = ck("run", *run_limits(host), "--", *batch_argv(ATTEMPTS, host, "run"), timeout=180)
    assert r.returncode == 0, r.stderr[-2000:]
    return parse_batch(r.stdout)


@pytest.mark.parametrize("a", ATTEMPTS, ids=[a.name for a in ATTEMPTS])
def test_refused_in_container_kernel_run(a, sec_run_results, sec_host):
    skip_unless_applies(a, sec_host["facts"], "run")
    judge_batch(a, sec_run_results, sec_host["facts"], "container-kernel run")
    assert contained_writes(sec_host["facts"]) == []


# (argv, what the command must not do, the words its output must have)
COMMANDS = {
    "core_pattern": (["sh", "-c", "cat /proc/sys/kernel/core_pattern > /proc/sys/kernel/core_pattern"],
                     ["Read-only file system"]),
    "unshare_Ur": (["unshare", "-Ur", "true"], ["Operation not permitted"]),
    "proc1_root": (["ls", "/proc/1/root/"], ["Permission denied"]),
}


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_escape_commands_fail_with_the_kernels_refusal(name, sec_host):
    argv, words = COMMANDS[name]
    r = ck("run", "--", *argv)
    assert r.returncode not in (0, 125, 126, 127), (r.returncode, r.stdout, r.stderr)
    for w in words:
        assert w in r.stderr, (w, r.stderr)


def test_fds_of_a_shell_are_pipes_and_the_containers_dev_null(sec_host):
    """Every fd of the payload names a pipe or the container's own /dev/null (not a node of the
    host's /dev mount: readlink shows where an fd was opened)."""
    r = ck("run", "--", "sh", "-c", 'for f in /proc/$$/fd/*; do echo "$f $(readlink $f)"; done')
    assert r.returncode == 0, r.stderr
    links = dict(line.split(" ", 1) for line in r.stdout.splitlines())
    bad = {f: t for f, t in links.items() if not (t.startswith("pipe:") or t == "/dev/null")}
    assert not bad, f"fds that are neither pipes nor the container's /dev/null: {bad}"


# ---- bad input: one line, exit 2, nothing created --------------------------------------------

def _owner_pid(run_dir):
    try:
        with open(os.path.join(run_dir, "owner")) as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _snapshot():
    base = default_run_base(False)
    runs = set(glob.glob(os.path.join(base, "*")))
    return runs, set(our_cgroups())


def _created(before, after, pid):
    """What this command left. Other engineers' containers come and go meanwhile: a new run dir
    counts when its owner file names our command (or it has none a second later); a new cgroup
    when it outlives that second with no run dir of its id."""
    new_runs, cgroups = after[0] - before[0], after[1] - before[1]
    runs = [d for d in new_runs if _owner_pid(d) == pid]
    unsure = [d for d in new_runs if _owner_pid(d) is None]
    if cgroups or unsure:
        time.sleep(1)  # long enough for a starting container to write its owner file
        live_ids = {os.path.basename(d) for d in _snapshot()[0]}
        runs += [d for d in unsure if os.path.isdir(d) and _owner_pid(d) in (pid, None)]
        cgroups = {c for c in cgroups if os.path.isdir(c) and os.path.basename(c) not in live_ids}
    return sorted(runs) + sorted(cgroups)


def _bad_profiles(tmp_path):
    unparsable = tmp_path / "broken.json"
    unparsable.write_text('{"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [')
    unknown = tmp_path / "unknown.json"
    unknown.write_text(json.dumps({"defaultAction": "SCMP_ACT_ERRNO", "syscalls": [
        {"names": ["read", "no_such_syscall_ck_sec"], "action": "SCMP_ACT_ALLOW"}]}))
    return {"unknown-option": ("bogus=1", ["--security-opt", "'bogus=1'"]),
            "profile-does-not-parse": (f"seccomp={unparsable}", ["seccomp=", "not JSON"]),
            "profile-names-unknown-syscall": (f"seccomp={unknown}", ["no_such_syscall_ck_sec"])}


@pytest.mark.parametrize("case", ["unknown-option", "profile-does-not-parse", "profile-names-unknown-syscall"])
def test_bad_security_opt_gets_one_line_exit_2_and_creates_nothing(case, tmp_path):
    value, words = _bad_profiles(tmp_path)[case]
    before = _snapshot()
    p = subprocess.Popen([CK, "run", "--security-opt", value, "--", "true"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 2, (p.returncode, err)
    assert out == "" and err.count("\n") == 1 and err.startswith("container-kernel: "), err
    assert "Traceback" not in err
    for w in words:
        assert w in err, (w, err)
    assert _created(before, _snapshot(), p.pid) == []


# ---- the switches change what the table sees ---------------------------------------------------

def _run_attempts(host, names, *options):
    r = ck("run", *options, "--", *batch_argv([BY_NAME[n] for n in names], host, "run"), timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return parse_batch(r.stdout)


def test_seccomp_unconfined_lets_keyctl_reach_the_kernel(sec_host):
    host = sec_host["facts"]
    res = _run_attempts(host, ["keyctl", "io_uring_setup", "nnp_seccomp"], "--security-opt", "seccomp=unconfined")
    assert BY_NAME["keyctl"].escaped(res["keyctl"]), res  # EOPNOTSUPP: no filter answered
    assert BY_NAME["io_uring_setup"].escaped(res["io_uring_setup"]), res
    assert res["nnp_seccomp"] == {"no_new_privs": "1", "seccomp": "0"}, res
    # and the default really is the filter:
    res = _run_attempts(host, ["keyctl"])
    assert res["keyctl"]["errno"] == "EPERM"


def test_no_new_privileges_false_turns_it_off(sec_host):
    res = _run_attempts(sec_host["facts"], ["nnp_seccomp"], "--security-opt", "no-new-privileges=false")
    assert res["nnp_seccomp"] == {"no_new_privs": "0", "seccomp": "2"}, res


def test_systempaths_unconfined_unmasks_proc_when_supported(sec_host):
    probe = ck("run", "--security-opt", "systempaths=unconfined", "--", "true")
    if probe.returncode == 2:
        pytest.skip(f"this runtime has no systempaths=unconfined: {probe.stderr.strip()}")
    res = _run_attempts(sec_host["facts"], ["proc_keys", "proc_timer_list"],
                        "--security-opt", "systempaths=unconfined")
    assert BY_NAME["proc_timer_list"].escaped(res["proc_timer_list"]), res
