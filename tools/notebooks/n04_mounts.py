from make import code, md

CELLS = [
    md("""
# 4. Mounts: a root filesystem of one's own

A mount namespace is a private copy of the mount table. A container runtime uses it to
build a new root filesystem: mount a few things (the system directories read-only,
fresh `/proc`, `/dev`, `/tmp`), then switch the container's root to it with
`pivot_root`. This notebook reads the mount table, prints the plan this kernel's
root was built from, and shows why `pivot_root` and not `chroot`.
"""),
    code("""
import json, os, subprocess, sys
import lesson
print("mode:", lesson.MODE)
"""),
    md("""
## The mount table: /proc/self/mountinfo

One line per mount: its ID, its parent's ID, the device, the directory of the
filesystem that is mounted, where, the options, then **optional fields** (the
propagation: `shared:N`, `master:N`), a `-`, the filesystem type and source.
"""),
    code("""
mounts = [line.split() for line in open("/proc/self/mountinfo")]
for m in mounts[:8]:
    sep = m.index("-")
    print(f"{m[4]:24} {m[sep + 1]:8} {m[5]:32} propagation: {' '.join(m[6:sep]) or 'private'}")
print(f"... {len(mounts)} mounts in all")
tags = sorted({f for m in mounts for f in m[6:m.index('-')]})
lesson.claim("propagation_tags", tags)
"""),
    md("""
**Propagation.** On a systemd host, `/` is mounted *shared* (`shared:1` in the host's
mountinfo): a mount made under a shared mount appears in every mount namespace that
shares it. A new mount namespace starts as a copy, with the same propagation, so a
container that mounted its `/proc` would mount it on the host too. So the first step
of a runtime is to make every mount private (`mount --make-rprivate /`, or the Go
walkthrough's `Unshareflags: CLONE_NEWNS`). Here no mount carries a tag: all private.

## The mount plan

This runtime builds the root as an ordered list of steps, which can be printed
without mounting anything: `container-kernel run --print-plan`. Below, the plan of a
container run with the defaults (this kernel's own adds the notebook's directory and
its socket directory); the last step is `pivot-root`.
"""),
    code("""
%%contained_only
plan = subprocess.run([sys.executable, "-m", "container_kernel", "run", "--print-plan", "--", "true"],
                      capture_output=True, text=True, check=True).stdout
steps = [line.split()[0] for line in plan.splitlines() if line and not line.split()[0].endswith(":")]
print(plan)
lesson.claim("plan", {"first": steps[0], "last": steps[-1], "masks": steps.count("mask")})
"""),
    md("""
Read it from the top: `private /`, a tmpfs for the new root, the system directories
bound read-only, a new `/proc` (for the new PID namespace), a small `/dev` with only
the harmless devices, `/sys` and the container's own cgroup read-only, fresh
`/tmp`, `/run` and home, the masks and read-only paths of 09-escape-lab, and the
root itself remounted read-only.

## chroot is not a container

`chroot(dir)` changes one thing: where a process's `/` resolves. Its current
directory can stay outside, and `..` from outside the new root is not stopped at it.
So root with `CAP_SYS_CHROOT` gets out of a chroot in three moves: chroot into a
sub-directory **without** `chdir` into it, walk `..` as far as it goes, chroot
there. Below, a sibling container (root inside, with `CAP_SYS_CHROOT`, which Docker's
default keeps) makes a jail inside its own root and escapes it:
"""),
    code("""
%%contained_only
from container_kernel import demo
ESCAPE = r'''
import json, os
container_root = sorted(os.listdir("/"))
os.makedirs("/tmp/jail", exist_ok=True)
open("/tmp/jail/IN-THE-JAIL", "w").close()
os.chroot("/tmp/jail")                # the jail; the cwd stays outside it
jailed = sorted(os.listdir("/"))
for _ in range(64):
    os.chdir("..")                    # outside the jail, .. is not clamped
os.chroot(".")                        # out
print(json.dumps([container_root, jailed, sorted(os.listdir("/"))]))
'''
r = demo.run(["python3", "-c", ESCAPE], hostname="jail")
container_root, jailed, escaped = json.loads(r.stdout)
print("in the jail, / is:         ", jailed)
print("after the escape:          ", escaped)
print("the sibling container's /: ", container_root)
lesson.claim("chroot", {"jailed": jailed, "escaped_to_container_root": escaped == container_root})
"""),
    md("""
The escape worked, and it reached **the sibling container's root**, not the host's. That is
`pivot_root`'s doing: it makes the new root the root *mount* of the mount namespace
and moves the old one under it, where the runtime unmounts it. There is no mount
above the container's `/` left to walk up to: `..` of `/` is `/`. A `chroot` alone
would have left the host's root one `..` away; `pivot_root` removes it from the
namespace.

## Docker's equivalent

Docker does the same steps (runc's `rootfs_linux.go`): `-v /host/dir:/dir:ro` adds a
bind step, `--read-only` remounts the root read-only, `--tmpfs /tmp` adds a tmpfs
step, and `--mount type=bind,...,bind-propagation=rslave` asks for a propagation other
than private.

## Exercise 1: how many mounts?

How many mounts does this kernel's mount namespace have? Count them from
`/proc/self/mountinfo`.
"""),
    code("""
answer_mounts = ...
""", solution="""
answer_mounts = len(open("/proc/self/mountinfo").read().splitlines())
"""),
    code("""
# check your work
lesson.check(answer_mounts, len(open("/proc/self/mountinfo").readlines()), "mounts",
             "one line per mount")
"""),
    md("""
## Exercise 2: what is / made of?

Which filesystem type is mounted at `/` in this kernel? (The word after the `-` in
mountinfo.)
"""),
    code("""
answer_root_fs = ...
""", solution="""
root = next(m for m in mounts if m[4] == "/")
answer_root_fs = root[root.index("-") + 1]
"""),
    code("""
# check your work
root = next(m for m in mounts if m[4] == "/")
lesson.check(answer_root_fs, root[root.index("-") + 1], "root_fs",
             "find the line whose mount point (5th field) is /")
if lesson.CONTAINED and answer_root_fs is not ...:
    print("a tmpfs: the runtime made it, then bound the system directories into it")
"""),
]
