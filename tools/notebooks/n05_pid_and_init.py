from make import code, md

CELLS = [
    md("""
# 5. The PID namespace, and why PID 1 needs an init

The first process in a new PID namespace is PID 1 there, and PID 1 has two jobs no
other process has:

- **reaping**: a process whose parent dies is re-parented to PID 1, which must
  `wait()` for it when it exits, or it stays a **zombie** (an entry in the process
  table, holding a PID);
- **signals**: the kernel delivers no signal to PID 1 from inside its namespace
  unless PID 1 installed a handler for it. A program that never expected to be PID
  1 ignores `SIGTERM`: `docker stop` waits 10 seconds, then kills it.

Seed point 10: with `CLONE_NEWPID` the child that `clone()` makes is PID 1. So the
runtime starts a tiny init as PID 1, and your command as PID 2 (Docker: `--init`,
which runs tini).
"""),
    code("""
import os
import lesson
print("mode:", lesson.MODE)
PAYLOAD = r'''
import os, signal, subprocess, time
print("payload: PID", os.getpid())
for _ in range(5):
    subprocess.run(["sh", "-c", "sleep 0.1 & exit"])   # sh exits; its sleep is orphaned
time.sleep(0.5)
state = lambda p: open(f"/proc/{p}/stat").read().rsplit(")", 1)[1].split()[0]
print("zombies:", sum(state(p) == "Z" for p in os.listdir("/proc") if p.isdigit()))
os.kill(1, signal.SIGTERM)
time.sleep(0.5)
print("still running after SIGTERM to PID 1")
'''
"""),
    md("""
## Without an init: the payload is PID 1

`init=False` is `container-kernel run --no-init`, as plain `docker run`: the command
is PID 1. The orphaned `sleep`s are re-parented to it, and it never waits for them;
then it sends `SIGTERM` to PID 1, itself, and survives.
"""),
    code("""
%%contained_only
from container_kernel import demo
bare = demo.run(["python3", "-u", "-c", PAYLOAD], init=False)
print(bare.stdout, "exit status", bare.exit_code)
lines = dict(l.split(":", 1) for l in bare.stdout.splitlines() if ":" in l)
lesson.claim("no_init", {"pid": int(lines["payload"].split()[-1]), "zombies": int(lines["zombies"]),
                         "survived_sigterm": "still running" in bare.stdout})
"""),
    md("""
## With an init: the payload is PID 2

The same payload, with our init (`ck-init`, the one this kernel runs under too) as
PID 1. Init reaps the orphans, and forwards the `SIGTERM` to the payload, which dies
of it as a process should (exit status 128 + 15 = 143).
"""),
    code("""
%%contained_only
with_init = demo.run(["python3", "-u", "-c", PAYLOAD])
print(with_init.stdout, "exit status", with_init.exit_code)
lines = dict(l.split(":", 1) for l in with_init.stdout.splitlines() if ":" in l)
lesson.claim("with_init", {"pid": int(lines["payload"].split()[-1]), "zombies": int(lines["zombies"]),
                           "exit_code": with_init.exit_code})
"""),
    md("""
## ps inside, and the host's PIDs

Inside, the PIDs start at 1; the host numbers the same processes in its own
namespace (the PID namespace nests: every process has a PID in each namespace above
it). `ps` inside the sibling, and the host PIDs the launcher saw, side by side
(`docker top` shows the host side):
"""),
    code("""
%%contained_only
r = demo.run(["sh", "-c", "sleep 0.5 & ps -o pid,ppid,comm; wait"])
print(r.stdout)
print(f"{'host PID':>9} {'PID inside':>10}  command")
for p in r.processes:
    print(f"{p.host_pid:9} {p.pid:10}  {p.name}")
lesson.claim("sibling_pids", [[p.pid, p.host_pid] for p in r.processes])
"""),
    md("""
## Exercise: which PID?

With init, which PID does the command get inside the sibling? Run one that prints its
own PID (`sh -c 'echo $$'`) and put the number in `answer`.
"""),
    code("""
%%contained_only
answer = ...
""", solution="""
%%contained_only
answer = int(demo.run(["sh", "-c", "echo $$"]).stdout)
"""),
    code("""
%%contained_only
# check your work
lesson.check(answer, 2, "payload_pid", "PID 1 is ck-init; the command is its first child")
"""),
]
