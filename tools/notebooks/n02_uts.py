from make import code, md

CELLS = [
    md("""
# 2. UTS: a hostname of one's own

The UTS namespace ("Unix Time-sharing System", a name from the 1970s) holds two
strings: the hostname and the NIS domain name. It is the simplest namespace, which
makes it the best to see the idea with: the same system call, `uname()`, gives
different answers in different namespaces.

This kernel cannot make a namespace itself (see 01-processes), so it asks the
launcher for a **sibling container**: `container_kernel.demo.run([...])` starts a
command in a new container beside this one, waits for it, and returns its output
with what the host saw of it.
"""),
    code("""
import os, socket
import lesson
print("mode:", lesson.MODE)
"""),
    code("""
%%contained_only
from container_kernel import demo
info = %container_info --json
box = demo.run(["hostname"], hostname="box")
names = {"the host": info["host"]["host_hostname"], "this kernel": socket.gethostname(),
         "the sibling": box.stdout.strip()}
for where, name in names.items():
    print(f"{where:12} {name}")
lesson.claim("hostnames", names)
"""),
    md("""
Three names for the same machine. This kernel's hostname is its container's id; the
sibling's is what we asked for. The namespace inodes say why: three UTS namespaces.
"""),
    code("""
%%contained_only
uts = {"the host": info["host"]["host_namespaces"]["uts"], "this kernel": info["namespaces"]["uts"],
       "the sibling": box.namespaces["uts"]}
for where, ino in uts.items():
    print(f"{where:12} uts:[{ino}]")
lesson.claim("uts_inodes_differ", len(set(uts.values())) == 3)
"""),
    md("""
The runtime sets the hostname with `sethostname()` after `clone(CLONE_NEWUTS)` and
before it drops its privileges: once the command runs, it cannot change it (no
`CAP_SYS_ADMIN`), as this kernel cannot:
"""),
    code("""
%%contained_only
r = demo.run(["hostname", "renamed"], hostname="box")
print("exit", r.exit_code, r.stderr.strip())
lesson.claim("rename_refused", r.exit_code != 0)
"""),
    md("""
The Docker equivalent is `docker run --hostname box IMAGE hostname`. Without
`--hostname`, Docker too names the container after its id. The magic
`%container_run` takes `container-kernel run`'s options, as `docker run` does, and
shows the output as it comes, then what the host saw:
"""),
    code("""
%%contained_only
%container_run --hostname box -- sh -c 'echo "my hostname is $(hostname)"'
"""),
    md("""

## Exercise: name a container

Start a sibling whose hostname is `my-box` and that prints its hostname; keep what
`demo.run` returns in `answer`.
"""),
    code("""
%%contained_only
answer = ...   # demo.run([...], hostname=...)
""", solution="""
%%contained_only
answer = demo.run(["hostname"], hostname="my-box")
"""),
    code("""
%%contained_only
# check your work
lesson.check(answer if answer is ... else answer.stdout.strip(), "my-box", "hostname",
             "demo.run(['hostname'], hostname='my-box')")
"""),
]
