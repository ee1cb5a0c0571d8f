from make import code, md

CELLS = [
    md("""
# 3. User namespaces: root inside, nobody outside

A user namespace maps user IDs: a range of IDs inside to a range outside, written in
`/proc/PID/uid_map` as `inside outside count`. A process can be uid 0, root, inside
its namespace, with every capability there, while the host sees an ordinary,
unprivileged uid. That is what a **rootless** container is: nothing in it, and
nothing that made it, is root on the host.
"""),
    code("""
import os
import lesson
print("mode:", lesson.MODE)
print("this kernel's uid_map:", open("/proc/self/uid_map").read().split())
"""),
    md("""
`0 0 4294967295`: this kernel is in the host's own user namespace (the identity map),
so its root is the host's root, made safe by other means (09-escape-lab). Now a
sibling with a user namespace of its own (`user_ns=True`):
"""),
    code("""
%%contained_only
from container_kernel import demo
r = demo.run(["sh", "-c", "id; cat /proc/self/uid_map; sleep 0.5"], user_ns=True)
print(r.stdout)
inside, outside, count = r.uid_map[0]
print(f"uid {inside} inside is uid {outside} on the host ({count} ids mapped)")
lesson.claim("userns_id_inside", r.stdout.split()[0])
lesson.claim("userns_map", r.uid_map[0])
"""),
    md("""
## The host's view: `ps` as root

The seed notes' point 8: on the host, `ps` shows the rootless container's processes
run by a user that is not root, while inside they are root. The launcher read each
of the sibling's processes on the host while it ran:
"""),
    code("""
%%contained_only
print(f"{'host PID':>9} {'PID':>4} {'host uid':>11}  command")
for p in r.processes:
    print(f"{p.host_pid:9} {p.pid:4} {p.host_uid:11}  {p.name}")
plain = demo.run(["sleep", "0.5"])
print("\\nwithout a user namespace:", sorted({p.host_uid for p in plain.processes}))
lesson.claim("userns_host_uids", sorted({p.host_uid for p in r.processes}))
lesson.claim("plain_host_uids", sorted({p.host_uid for p in plain.processes}))
"""),
    md("""
Docker's equivalent is the daemon's `--userns-remap` (one map for every container),
or running Docker itself rootless; Podman does it per container (`podman run --userns=auto`).

## Exercise: who is root outside?

Using `r.uid_map`, find which host uid root (uid 0 inside) is.
"""),
    code("""
%%contained_only
answer = ...
""", solution="""
%%contained_only
answer = next(out + (0 - ins) for ins, out, n in r.uid_map if ins <= 0 < ins + n)
"""),
    code("""
%%contained_only
# check your work
lesson.check(answer, r.processes[0].host_uid, "root_outside",
             "a line 'inside outside count' maps inside+k to outside+k")
"""),
]
