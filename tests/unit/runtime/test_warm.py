"""runtime/warm.py: when a command may run in this interpreter, and what ps then shows."""
import json
import os
import subprocess
import sys

from container_kernel.runtime import spec as S
from container_kernel.runtime import warm


def process(args, env=()):
    return S.Process(tuple(args), tuple(env))


def test_only_this_interpreter_with_dash_m_on_the_host_rootfs_runs_warm():
    env = tuple(warm.startup_env(warm._exec_environ()).items())
    ok = process([sys.executable, "-m", "ipykernel_launcher", "-f", "c.json"], env)
    assert warm.eligible(ok, "host") is None
    assert "rootfs" in warm.eligible(ok, "overlay")
    assert "-m MODULE" in warm.eligible(process(["/usr/bin/python3", "-m", "x"], env), "host")
    assert "-m MODULE" in warm.eligible(process([sys.executable, "script.py"], env), "host")


def test_other_startup_variables_mean_exec():
    base = {k: v for k, v in warm.startup_env(warm._exec_environ()).items() if v is not None}
    args = [sys.executable, "-m", "ipykernel_launcher"]
    for name, value in (("PYTHONPATH", "/x"), ("LC_ALL", "fr_FR.UTF-8"), ("PYTHONHASHSEED", "1"),
                        ("TZ", "Europe/Paris")):
        env = dict(base, **{name: value})
        assert warm.eligible(process(args, env.items()), "host") == \
            f"the command's interpreter would start with other {name}", name
    # Variables an interpreter does not read as it starts do not matter...
    assert warm.eligible(process(args, dict(base, HOME="/elsewhere", X="1").items()), "host") is None
    # ...unless the template's imports read them (a trait default, fixed at import).
    assert "other X" in warm.eligible(process(args, dict(base, X="1").items()), "host", reads={"X"})


def test_startup_env_is_python_locale_and_time_zone_variables_and_those_asked():
    env = {"PYTHONPATH": "/a", "LANG": "C.UTF-8", "LC_CTYPE": "C", "PATH": "/bin", "HOME": "/"}
    assert warm.startup_env(env) == {"PYTHONPATH": "/a", "LANG": "C.UTF-8", "LC_CTYPE": "C", "TZ": None}
    assert warm.startup_env(env, also={"HOME", "USER"})["HOME"] == "/"
    assert warm.startup_env(env, also={"HOME", "USER"})["USER"] is None


def test_exit_codes_are_the_interpreters():
    assert warm._exit_code(None) == 0
    assert warm._exit_code(3) == 3
    assert warm._exit_code(256 + 7) == 7


def test_ps_shows_the_command_and_not_the_template():
    code = ("import sys, json; from container_kernel.runtime import warm; "
            "warm.set_cmdline(['/usr/bin/python3', '-m', 'ipykernel_launcher', '-f', 'k.json']); "
            "print(json.dumps(open('/proc/self/cmdline').read().split('\\0')[:-1])); sys.stdout.flush(); "
            "import subprocess, os; "
            "print(subprocess.run(['ps', '-o', 'args=', '-p', str(os.getpid())], capture_output=True, "
            "text=True).stdout.strip())")
    r = subprocess.run([sys.executable, "-c", code, " " * 300], capture_output=True, text=True, check=True)
    raw, shown = r.stdout.splitlines()
    args = json.loads(raw)
    # argv as a program reads /proc/PID/cmdline: NUL-ended args, then the room left, blank.
    assert args[:5] == ["/usr/bin/python3", "-m", "ipykernel_launcher", "-f", "k.json"]
    assert len(args) == 6 and args[5].strip() == ""
    assert shown == "/usr/bin/python3 -m ipykernel_launcher -f k.json"


def test_a_command_longer_than_the_room_is_cut():
    code = ("from container_kernel.runtime import warm; warm.set_cmdline(['x' * 5000]); "
            "data = open('/proc/self/cmdline', 'rb').read(); print(len(data), data.endswith(b'\\0'))")
    r = subprocess.run([sys.executable, "-c", code, "y"], capture_output=True, text=True, check=True)
    size, ended = r.stdout.split()
    assert ended == "True" and int(size) < 5000
