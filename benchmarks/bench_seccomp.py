"""What the seccomp step costs a container start: compiling Docker's profile with
libseccomp, a cache hit instead, and installing the program.

    .venv/bin/python benchmarks/bench_seccomp.py [--runs 30]

"cold" is what the launcher pays in a fresh process: importing the module and a
cache hit (the profile's bytes hashed, no JSON parsed, libseccomp not loaded).
install runs in a forked child each time, so that filters do not stack up here.

This is a measurement, not a test: nothing here asserts a time.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)
from container_kernel.runtime import capabilities, seccomp, syscalls  # noqa: E402

COLD = """\
import sys, time
t = time.perf_counter()
from container_kernel.runtime import capabilities, seccomp
seccomp.cached_filter(None, capabilities.DEFAULT, True, sys.argv[1])  # a hit: no JSON parsed
print((time.perf_counter() - t) * 1e3)
"""


def timed(fn, runs):
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1e3)
    return times


def install_times(program, runs):
    times = []
    for _ in range(runs):
        r, w = os.pipe()
        pid = os.fork()
        if pid == 0:
            syscalls.prctl(syscalls.PR_SET_NO_NEW_PRIVS, 1)
            t = time.perf_counter()
            seccomp.install(program)
            os.write(w, repr((time.perf_counter() - t) * 1e3).encode())
            os._exit(0)
        os.close(w)
        with os.fdopen(r) as f:
            times.append(float(f.read()))
        os.waitpid(pid, 0)
    return times


def cold_times(cache, pyc, runs):
    # With bytecode, as an installed package has it (a tree run with PYTHONDONTWRITEBYTECODE
    # would compile every module each time); the first run writes it to `pyc`.
    env = dict(os.environ, PYTHONPATH=REPO, PYTHONPYCACHEPREFIX=pyc)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return [float(subprocess.run([sys.executable, "-c", COLD, cache], env=env, check=True,
                                 capture_output=True, text=True).stdout) for _ in range(runs + 1)][1:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    reason = seccomp.available()
    if reason:
        sys.exit(f"seccomp: {reason}")
    caps = capabilities.DEFAULT
    profile = seccomp.load_profile()
    program = seccomp.compile_filter(profile, caps)
    print(f"{seccomp.describe(profile, caps, True)}; libseccomp {seccomp.version()}, "
          f"{len(program) // 8} instructions")
    with tempfile.TemporaryDirectory() as cache, tempfile.TemporaryDirectory() as pyc:
        seccomp.cached_filter(None, caps, True, cache)
        rows = [
            ("load_profile (shipped)", timed(seccomp.load_profile, runs)),
            ("compile_filter (uncached)", timed(lambda: seccomp.compile_filter(profile, caps), runs)),
            ("cached_filter (hit)", timed(lambda: seccomp.cached_filter(None, caps, True, cache), runs)),
            ("install (prctl)", install_times(program, runs)),
            ("cold: import + hit (the start path)", cold_times(cache, pyc, runs)),
        ]
    for name, times in rows:
        print(f"{name:36} median {statistics.median(times):7.3f} ms   "
              f"min {min(times):7.3f}   max {max(times):7.3f}   (n={len(times)})")


if __name__ == "__main__":
    main()
