"""The cgroup tests again, on a cgroup-v2-only kernel, inside a throw-away VM.

This host and CI have cgroup v1 controllers (hybrid), while most users run v2
only: a v2 driver tested only against a fake cgroupfs is a guess. So this test
boots Debian's kernel with cgroup v1 disabled (run_in_v2_vm.sh: QEMU, the host's
/ shared read-only under a tmpfs overlay, so the checkout and .venv run in place)
and runs BATCHES there with pytest, as root in the guest's root cgroup.

One boot runs every batch (about 8 s a boot under emulation, far less with KVM);
each batch writes JUnit XML to the xfer share, parsed here. A batch fails here if
any test in it failed, if none of its tests ran, or if the guest's pytest said
something was left behind. Without qemu or a kernel this skips with the apt-get
line, unless CK_REQUIRE_V2_VM=1 (CI; `make test-v2`), where it fails.
"""

import os
import shlex
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKOUT = os.path.dirname(os.path.dirname(HERE))
SCRIPT = os.path.join(HERE, "run_in_v2_vm.sh")
APT = "apt-get install -y qemu-system-x86 linux-image-amd64 busybox-static"
ROOTFS_CACHE = os.environ.get("CK_TEST_ROOTFS_CACHE", "/var/cache/container-kernel/test-rootfs")

# name -> (test files, guest-side time budget in s). The cgroup batch first: it is the
# point of the VM, and a later batch that runs out of time cannot take its results away.
BATCHES = {
    "cgroups": (["tests/integration/test_limits.py", "tests/integration/test_cgroup_driver_v2.py",
                 "tests/integration/test_cgroup_driver_v1.py"], 240),
    # The kernel on v2: the OOM notice (memory.events oom_kill), %cgroup_set and %%sandbox
    # (a child cgroup under the no-internal-processes rule).
    "kernel": (["tests/jupyter/test_kernel.py::test_oom_kills_the_kernel_and_the_restarted_kernel_says_so",
                "tests/jupyter/test_magics.py::test_cgroup_set_memory_kills_a_subprocess_and_the_kernel_survives",
                "tests/jupyter/test_magics.py::test_cgroup_set_refuses_above_the_ceiling_and_max_returns_to_it",
                "tests/jupyter/test_magics.py::test_sandbox_oom_leaves_the_kernel_and_its_variables"], 300),
    "runtime": (["tests/integration/test_run.py", "tests/rootless/test_rootless.py"], 300),
    # The escape attempts on v2 (no devices cgroup, memory.max, pids.max, a cgroup namespace
    # over the unified tree): in a container kernel, through run, and the control socket's
    # abuse. Two attempts stay on the host: under software emulation (TCG) forking 1024
    # children of ipykernel, or filling the default ceiling of half the guest's RAM, took
    # each past 300 s. What they rely on in v2 (pids.max, memory.max and the OOM kill of a
    # kernel) the cgroups and kernel batches above check.
    "security": (["tests/security/test_container_kernel.py", "tests/security/test_cli.py",
                  "tests/security/test_control_abuse.py",
                  "--deselect", "tests/security/test_container_kernel.py::"
                  "test_refused_in_the_container_kernel[fork_bomb]",
                  "--deselect", "tests/security/test_container_kernel.py::"
                  "test_refused_in_the_container_kernel[memory_ceiling]"], 720),
    # The teaching notebooks on v2, their claims checked (each under 45 s here, emulated), and
    # a restart and an interrupt seen by host PIDs.
    "notebooks": (["tests/notebooks/test_notebooks.py", "tests/notebooks/test_restart.py"], 600),
    # A Debian rootfs on v2: the overlay rootfs through run and through a kernel. Last, so it
    # takes only what the batches above left. The guest has no network: it uses the host's
    # cached build (tests/rootfs_cache.py), seen through the read-only share of /. Its tmp
    # dirs (the --persist layers' store) on a tmpfs: the guest's / is an overlayfs, which
    # overlayfs refuses as an upper layer (EINVAL).
    # The start-to-ready figure (six kernel starts) stays on the host: it is a benchmark.
    "rootfs": (["tests/jupyter/test_rootfs_kernel.py", "tests/integration/test_rootfs_overlay.py",
                "--basetemp", "/run/ck-rootfs-tests",
                "--deselect", "tests/jupyter/test_rootfs_kernel.py::test_start_to_ready_overlay_against_host"],
               420),
}

VM_TIMEOUT = int(os.environ.get("CK_V2VM_TIMEOUT", 1800))  # the whole VM part: under 30 minutes

pytestmark = [
    pytest.mark.skipif(os.environ.get("CK_IN_V2_VM") == "1", reason="already inside the v2 VM"),
    pytest.mark.timeout(VM_TIMEOUT + 120),
]


def _static(path):
    """True for an ELF without a PT_INTERP program header: runs before any library exists."""
    with open(path, "rb") as f:
        head = f.read(64)
        if head[:4] != b"\x7fELF" or head[4] != 2:
            return False
        (phoff,) = struct.unpack_from("<Q", head, 32)
        size, count = struct.unpack_from("<HH", head, 54)
        f.seek(phoff)
        table = f.read(size * count)
    return all(struct.unpack_from("<I", table, i * size)[0] != 3 for i in range(count))


def missing():
    """What this host lacks to boot the VM, in words; [] if nothing."""
    out = []
    if os.geteuid() != 0:  # /boot/vmlinuz-* is root's only on Debian, and the guest runs as root
        out.append("root (sudo make test): the VM boots the host's kernel image, readable by root only")
    if not shutil.which("qemu-system-x86_64"):
        out.append("qemu-system-x86_64")
    modules = os.listdir("/lib/modules") if os.path.isdir("/lib/modules") else []
    if not any(v.endswith("-amd64") and os.path.exists(f"/boot/vmlinuz-{v}") for v in modules):
        out.append("a Debian amd64 kernel (/boot/vmlinuz-*-amd64 with its /lib/modules)")
    if not (os.path.exists("/bin/busybox") and _static("/bin/busybox")):
        out.append("a static /bin/busybox")
    for tool, package in (("modprobe", "kmod"), ("cpio", "cpio"), ("gzip", "gzip"), ("mkfs.ext4", "e2fsprogs")):
        if not shutil.which(tool, path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin"):
            out.append(f"{tool} (apt-get install -y {package})")
    return out


def guest_script(python):
    """The bash the guest runs: facts about the guest, then one pytest run per batch."""
    py = shlex.quote(python)
    lines = [
        'R=$CK_V2VM_RESULTS',
        f'{py} -c "from container_kernel.runtime import cgroups; import os; '
        f'print(os.uname().release, cgroups.detect(), os.cpu_count(), '
        f'\' \'.join(cgroups.available_controllers()))" > $R/guest.txt 2>&1',
        f'ls -d {shlex.quote(ROOTFS_CACHE)}/*/config.json > $R/rootfs-cache.txt 2>&1',
    ]
    for name, (files, budget) in BATCHES.items():
        # tee to the results share: a batch stopped by its budget still leaves its log.
        lines += [
            f'echo "== batch {name}: {" ".join(files)}"',
            'SECONDS=0',
            f'timeout -k 10 {budget} {py} -m pytest -p no:cacheprovider -o junit_logging=system-out '
            f'--junitxml=$R/{name}.xml {" ".join(shlex.quote(f) for f in files)} 2>&1 | tee $R/{name}.log',
            f'echo ${{PIPESTATUS[0]}} > $R/{name}.rc; echo $SECONDS > $R/{name}.seconds',
        ]
    return "\n".join(lines) + "\n"


def boot(out_dir):
    """Run every batch in one VM; returns (script exit code, its output, seconds)."""
    env = dict(os.environ, CK_V2VM_TIMEOUT=str(VM_TIMEOUT))
    t0 = time.monotonic()
    # Own session: on a timeout the whole group (the script, timeout, qemu) is ours to end.
    p = subprocess.Popen(["bash", SCRIPT, "-o", out_dir, guest_script(sys.executable)], cwd=CHECKOUT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         start_new_session=True)
    lines = []

    def read():  # streamed as it comes: `pytest -s` (make test-v2) shows the guest live
        for line in p.stdout:
            lines.append(line)
            print(line, end="", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        rc = p.wait(timeout=VM_TIMEOUT + 60)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGTERM)
        try:
            rc = p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            rc = p.wait()
    finally:
        reader.join(timeout=10)
    return rc, "".join(lines), time.monotonic() - t0


def parse(junit):
    """{passed, failed: [(name, text)], skipped: [(name, reason)], out: [system-out]} of a JUnit file."""
    result = {"passed": [], "failed": [], "skipped": [], "out": []}
    for case in ET.parse(junit).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rpartition('.')[2]}::{case.get('name')}"
        bad = [e for e in case if e.tag in ("failure", "error")]
        skipped = case.find("skipped")
        if bad:
            result["failed"].append((name, "\n".join(f"{e.get('message', '')}\n{e.text or ''}" for e in bad)))
        elif skipped is not None:
            result["skipped"].append((name, skipped.get("message", "")))
        else:
            result["passed"].append(name)
        out = case.find("system-out")
        if out is not None and out.text:
            result["out"].append(out.text)
    return result


def tail(text, lines=60):
    return "\n".join(text.splitlines()[-lines:])


@pytest.fixture(scope="module")
def vm():
    """Boot once for the module: {"batches": {name: ...}, "output", "rc", "seconds", "guest"}."""
    lacking = missing()
    if lacking:
        yield {"missing": lacking}
        return
    with tempfile.TemporaryDirectory(prefix="ck-v2vm-results-") as out_dir:
        rc, output, seconds = boot(out_dir)
        batches = {}
        for name in BATCHES:
            found = {}
            for ext in ("rc", "seconds"):
                try:
                    with open(os.path.join(out_dir, f"{name}.{ext}")) as f:
                        found[ext] = int(f.read())
                except (OSError, ValueError):
                    found[ext] = None
            try:
                with open(os.path.join(out_dir, f"{name}.log")) as f:
                    found["log"] = f.read()
            except OSError:
                found["log"] = ""
            junit = os.path.join(out_dir, f"{name}.xml")
            found["junit"] = parse(junit) if os.path.exists(junit) else None
            batches[name] = found
        try:
            with open(os.path.join(out_dir, "guest.txt")) as f:
                guest = f.read().strip()
        except OSError:
            guest = ""
        try:
            with open(os.path.join(out_dir, "rootfs-cache.txt")) as f:
                rootfs_cache = f.read().strip()
        except OSError:
            rootfs_cache = "(the guest wrote nothing)"
    yield {"batches": batches, "output": output, "rc": rc, "seconds": seconds, "guest": guest,
           "rootfs_cache": rootfs_cache}


def check_rootfs_cache(vm):
    """The rootfs batch needs the host's cached build, and the guest must have seen it:
    with no network there, a guest that did not would skip every test, which says nothing."""
    import glob
    host = sorted(glob.glob(os.path.join(ROOTFS_CACHE, "*", "config.json")))
    if not host:
        pytest.skip(f"no cached test rootfs on the host under {ROOTFS_CACHE} (tests/rootfs_cache.py "
                    "builds it from the mirror; the guest has no network to build one)")
    seen = vm["rootfs_cache"].split()
    assert all(p in seen for p in host), \
        f"the guest cannot see the host's cached test rootfs {host} through its share of /: {vm['rootfs_cache']!r}"


@pytest.mark.parametrize("batch", list(BATCHES))
def test_batch_passes_on_cgroup_v2(vm, batch, capsys):
    if "missing" in vm:
        lacking = vm["missing"]
        reason = f"cannot boot the cgroup v2 VM, missing {', '.join(lacking)}"
        if any(not m.startswith("root ") for m in lacking):
            reason += f": {APT}"
        if os.environ.get("CK_REQUIRE_V2_VM") == "1":
            pytest.fail(reason + " (CK_REQUIRE_V2_VM=1: the v2 VM suite must run)")
        pytest.skip(reason)
    files, _ = BATCHES[batch]
    if batch == "rootfs":
        check_rootfs_cache(vm)
    b = vm["batches"][batch]
    where = f"batch {batch!r} ({' '.join(files)}) in the v2 VM"
    assert vm["guest"].split()[1:2] == ["2"], \
        f"the guest is not cgroup v2 only: {vm['guest']!r}\n{tail(vm['output'])}"
    r = b["junit"]
    if r is None:
        pytest.fail(f"{where}: no results (pytest exit code {b['rc']}, VM exit code {vm['rc']}):\n"
                    + tail(b["log"] or vm["output"]))
    with capsys.disabled():  # the figures the inner tests measured, and why any skipped
        print(f"\n[v2 VM, {vm['guest']}] {where}: {len(r['passed'])} passed, {len(r['failed'])} failed, "
              f"{len(r['skipped'])} skipped in {b['seconds']} s (boot and all batches: {vm['seconds']:.0f} s)")
        for name, reason in r["skipped"]:
            print(f"  skipped {name}: {reason}")
        for text in r["out"]:
            for line in text.splitlines():
                if line.startswith("measured:"):
                    print(f"  {line}")
    if r["failed"]:
        pytest.fail(f"{where}: {len(r['failed'])} failed:\n\n"
                    + "\n\n".join(f"--- {name}\n{text}" for name, text in r["failed"]), pytrace=False)
    if not r["passed"]:
        pytest.fail(f"{where}: no test ran ({len(r['skipped'])} skipped):\n"
                    + "\n".join(f"  {n}: {why}" for n, why in r["skipped"]), pytrace=False)
    # Failures are all in the JUnit file; a non-zero exit beyond them is the guest's
    # own verdict: leftovers, or the batch's time budget ran out.
    assert b["rc"] == 0, f"{where}: pytest exited {b['rc']} with no failed test:\n{tail(b['log'], 20)}"
