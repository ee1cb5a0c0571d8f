"""User namespace ID maps: who "root inside" is outside.

A new user namespace starts with no mapping: every ID shows as 65534 (nobody)
and the process has its capabilities only over resources the namespace owns.
The parent writes /proc/<child>/uid_map and gid_map ("inside outside count").
An unprivileged parent may map only its own IDs, and must first write "deny" to
setgroups, or a mapped-root child could drop a supplementary group and gain
access denied to it by that group (CVE-2014-8989).
"""

import os


def write_maps(pid, uid_lines, gid_lines):
    """Write the maps of pid. Lines are (inside, outside, count)."""
    if len(uid_lines) > 1 or len(gid_lines) > 1:
        return _newidmap(pid, uid_lines, gid_lines)
    with open(f"/proc/{pid}/setgroups", "w") as f:
        f.write("deny")
    for name, lines in (("uid_map", uid_lines), ("gid_map", gid_lines)):
        with open(f"/proc/{pid}/{name}", "w") as f:
            f.write("".join(f"{a} {b} {c}\n" for a, b, c in lines))


def _newidmap(pid, uid_lines, gid_lines):
    # Ranges from /etc/subuid need the setuid helpers of the shadow package (uidmap).
    import shutil
    import subprocess
    for tool, lines in (("newuidmap", uid_lines), ("newgidmap", gid_lines)):
        args = [shutil.which(tool) or tool, str(pid)] + [str(x) for line in lines for x in line]
        subprocess.run(args, check=True, capture_output=True)


def describe(lines, kind="uid"):
    """[(0, 1001, 1)] -> "uid 0 inside = uid 1001 on the host"."""
    out = []
    for inside, outside, count in lines:
        if count == 1:
            out.append(f"{kind} {inside} inside = {kind} {outside} on the host")
        elif inside == 0 and outside == 0 and count >= 4294967295:
            out.append(f"{kind}s are not remapped (the host's user namespace)")
        else:
            out.append(f"{kind}s {inside}-{inside + count - 1} inside = "
                       f"{kind}s {outside}-{outside + count - 1} on the host")
    return out


def single(inside, outside):
    return [(inside, outside, 1)]


def subid_range(path, uid, name):
    """(start, count) of this user's subordinate IDs in /etc/subuid or /etc/subgid."""
    try:
        with open(path) as f:
            for line in f:
                who, _, rest = line.strip().partition(":")
                start, _, count = rest.partition(":")
                if who in (name, str(uid)) and start.isdigit() and count.isdigit():
                    return int(start), int(count)
    except OSError:
        pass
    return None


def rootless_maps(uid, gid, keep_id=False):
    """(uid lines, gid lines, how) for a user's container.

    Root inside is the user outside. Where /etc/subuid and /etc/subgid give the
    user a range and newuidmap/newgidmap exist, IDs 1..N inside map to that range,
    so a package manager inside can chown files to its own users (rootless
    podman's layout). With keep_id, the user keeps their own IDs inside.
    """
    if keep_id:
        return single(uid, uid), single(gid, gid), f"uid {uid} inside = uid {uid} on the host"
    import pwd
    import shutil
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = str(uid)
    users, groups = subid_range("/etc/subuid", uid, name), subid_range("/etc/subgid", gid, name)
    # Named from the host's passwd: the container's own /etc/passwd does not know the user.
    who = f"uid {uid} ({name})" if name != str(uid) else f"uid {uid}"
    if users and groups and shutil.which("newuidmap") and shutil.which("newgidmap"):
        return ([(0, uid, 1), (1, users[0], users[1])], [(0, gid, 1), (1, groups[0], groups[1])],
                f"uid 0 inside = {who} on the host; uids 1-{users[1]} = subuids "
                f"{users[0]}-{users[0] + users[1] - 1}")
    return single(0, uid), single(0, gid), f"uid 0 inside = {who} on the host (single-ID map)"


# Root's range for --userns auto when /etc/subuid gives root none: far above any account's
# uid and the ranges useradd hands out (100000 up, 65536 each), so it owns no host file.
REMAP_DEFAULT = (1_000_000_000, 65536)


def root_remap():
    """(uid lines, gid lines, how) for --userns auto as root: IDs 0-65535 inside map to
    root's /etc/subuid and /etc/subgid ranges, or to REMAP_DEFAULT (docker's userns-remap
    and podman's --userns=auto do the same with their own users' ranges)."""
    users = subid_range("/etc/subuid", 0, "root")
    groups = subid_range("/etc/subgid", 0, "root")
    where = "root's /etc/subuid range" if users else "container-kernel's default range"
    users, groups = users or REMAP_DEFAULT, groups or users or REMAP_DEFAULT
    return ([(0, users[0], users[1])], [(0, groups[0], groups[1])],
            f"uids 0-{users[1] - 1} inside = uids {users[0]}-{users[0] + users[1] - 1} on the "
            f"host ({where}): root inside is no one outside")


def current_user():
    return os.geteuid(), os.getegid()
