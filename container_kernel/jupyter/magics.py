"""Magics: the notebook as a window into its container, from inside and from the host.

    %container_info [--json]      namespaces, IDs, users, mounts, cgroup, capabilities, network
    %cgroup [--json]              limits, usage, peak, throttling and OOM counters
    %cgroup_set CONTROLLER VALUE  change a limit now (never above the kernelspec's ceiling)
    %container_ps [--json]        the container's processes, with their host PIDs
    %%sandbox memory=50M ...      run one cell in a disposable fork with tighter limits
    %container_monitor            a live dashboard (widgets.py)

What the kernel can see for itself (its /proc, its namespaces) is read here. What
only the host knows (host PIDs, the host's namespaces, the cgroup's files) and every
change of a limit comes from the launcher, which stays outside the container, over
its control socket (control.py): the container's /sys/fs/cgroup stays read-only.
"""

import ast
import gc
import html
import json
import os
import select
import signal
import socket
import sys

from IPython.core.error import UsageError
from IPython.core.magic import Magics, cell_magic, line_magic, magics_class

from ..runtime import cgroups, idmap, procfs
from ..runtime.capabilities import NAMES as CAPABILITIES
from ..runtime import spec as S
from ..runtime.errors import ContainerError
from ..runtime.namespaces import KINDS, inodes
from . import control, extension

# Capability numbers -> names (linux/capability.h), to decode CapEff.
SECCOMP = {"0": "disabled", "1": "strict", "2": "filter"}
SANDBOX_KEYS = {"memory": ("memory", "memory"), "cpu": ("cpus", "cpu"), "cpus": ("cpus", "cpu"),
                "pids": ("pids", "pids")}

SET_USAGE = ("use: %cgroup_set memory 100M | memory max | cpu 0.5 | cpu max | pids 64 | pids max | "
             "io write 10M/s [DEVICE] | io read max [DEVICE]")


# ---- arguments: text in, value out, or one line of UsageError ----------------------------

def _flags(line, magic, allowed=("--json",)):
    args = line.split()
    for a in args:
        if a not in allowed:
            raise UsageError(f"{magic}: unknown argument {a!r}: use {' or '.join(allowed)} or nothing")
    return set(args)


def parse_cgroup_set(line):
    """'memory 100M' -> {"controller": "memory", "value": "100M"}; checked, not yet applied.

    The launcher checks again (and against the ceiling): it is the authority, this
    only turns a typo into a message before anything is sent.
    """
    args = line.split()
    if not args:
        raise UsageError(f"%cgroup_set: no controller given: {SET_USAGE}")
    controller = args[0].lower()
    try:
        if controller == "io":
            if len(args) not in (3, 4):
                raise UsageError(f"%cgroup_set: io takes a direction, a rate and maybe a device: {SET_USAGE}")
            direction = args[1].lower()
            control.parse_rate(direction, args[2])
            req = {"controller": "io", "direction": direction, "value": args[2]}
            if len(args) == 4:
                device = args[3]
                major, _, minor = device.partition(":")
                if not (device.startswith("/") or major.isdigit() and minor.isdigit()):
                    raise UsageError(f"%cgroup_set: io device {device!r}: use a path such as /dev/sda "
                                     "or MAJ:MIN (default: the disk holding the notebook's directory)")
                req["device"] = device
            return req
        if controller not in control.LIMIT_KEYS:
            raise UsageError(f"%cgroup_set: unknown controller {args[0]!r}: {SET_USAGE}")
        if len(args) != 2:
            raise UsageError(f"%cgroup_set: {controller} takes one value: {SET_USAGE}")
        control.parse_limit(controller, args[1])
        return {"controller": controller, "value": args[1]}
    except ContainerError as e:
        raise UsageError(f"%cgroup_set: {e}") from None


def parse_sandbox(line):
    """'memory=50M cpu=0.5 pids=16' -> {"memory": 52428800, "cpus": 0.5, "pids": 16}."""
    limits = {}
    for arg in line.split():
        key, eq, value = arg.partition("=")
        if not eq or key.lower() not in SANDBOX_KEYS:
            raise UsageError(f"%%sandbox: invalid argument {arg!r}: use memory=SIZE, cpu=CPUS and/or "
                             "pids=N, e.g. %%sandbox memory=50M cpu=0.5 pids=16")
        field, controller = SANDBOX_KEYS[key.lower()]
        if field in limits:
            raise UsageError(f"%%sandbox: {key} given twice")
        try:
            parsed = control.parse_limit(controller, value)
        except ContainerError as e:
            raise UsageError(f"%%sandbox: {e}") from None
        if parsed is None:
            raise UsageError(f"%%sandbox: {key}={value!r}: a sandbox takes a number, not max "
                             "(leave it out to keep the container's limit)")
        limits[field] = parsed
    return limits


def parse_interval(line):
    """%container_monitor's optional refresh interval in seconds (default 1)."""
    text = line.strip()
    if not text:
        return 1.0
    try:
        interval = float(text)
        if not 0.2 <= interval <= 60:  # also refuses nan and inf
            raise ValueError
    except ValueError:
        raise UsageError(f"%container_monitor: invalid interval {text!r}: use a number of seconds "
                         "from 0.2 to 60, or nothing (1 s)") from None
    return interval


# ---- facts ----------------------------------------------------------------------------------

def capabilities(hex_mask):
    mask = int(hex_mask or "0", 16)
    return [CAPABILITIES[i] if i < len(CAPABILITIES) else f"cap_{i}"
            for i in range(64) if mask >> i & 1]


def mounts():
    """[{target, fstype, source, ro}] of this mount namespace, from /proc/self/mountinfo."""
    out = []
    for line in (procfs.read("/proc/self/mountinfo") or "").splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) >= 6 and len(tail) >= 2:
            out.append({"target": cgroups._unescape(fields[4]), "fstype": tail[0], "source": tail[1],
                        "ro": "ro" in fields[5].split(",")})
    return out


def interfaces():
    out = []
    for _, name in socket.if_nameindex():
        state = (procfs.read(f"/sys/class/net/{name}/operstate") or "?").strip()
        out.append({"name": name, "state": state})
    return out


def users(uid_lines, gid_lines):
    """Who root inside is on the host, in words (runtime/idmap.describe)."""
    root = next((outside - inside for inside, outside, n in uid_lines if inside <= 0 < inside + n), None)
    head = [f"root inside is uid {root} on the host" if root is not None
            else "root inside is not mapped to any host uid (it is nobody there)"]
    return head + idmap.describe(uid_lines, "uid") + idmap.describe(gid_lines, "gid")


def _map_lines(text):
    return [tuple(int(x) for x in line.split()) for line in (text or "").splitlines() if line.strip()]


def own_stats():
    """The stats() of this process's own cgroup, read-only: for a kernel no launcher of
    ours watches over (Binder's Docker container has a memory limit, say). None if unreadable."""
    cg = _own_cgroup()
    try:
        return cg and cg.stats()
    except (OSError, ValueError):  # not ours to read, or a format we do not know
        return None


def _own_cgroup():
    try:
        version = cgroups.detect()
        lines = [l.split(":", 2) for l in (procfs.read("/proc/self/cgroup") or "").splitlines()]
        if version == "v2":
            rel = next((p for h, c, p in lines if h == "0"), "/").strip()
            path = os.path.join(cgroups.ROOT, rel.lstrip("/"))
            from ..runtime.cgroups.v2 import V2Cgroup
            return V2Cgroup("self", path if os.path.isdir(path) else cgroups.ROOT, cgroups.ROOT)
        if version == "v1":
            from ..runtime.cgroups.v1 import V1Cgroup
            paths = {}
            for controller, point in cgroups.v1_hierarchies(cgroups.read_mounts()).items():
                rel = next((p for _, c, p in lines if controller in c.split(",")), "/").strip()
                path = os.path.join(point, rel.lstrip("/"))
                # Inside Docker without a cgroup namespace the path names the host's tree,
                # while the mount already is the container's own cgroup.
                paths[controller] = path if os.path.isdir(path) else point
            return V1Cgroup("self", paths)
    except (OSError, ContainerError, StopIteration):
        pass
    return None


def ceiling():
    try:
        return json.loads(os.environ.get("CK_CEILING") or "{}")
    except ValueError:
        return {}


def container_info():
    """Every fact %container_info shows, as plain data (the --json form)."""
    inside = inodes()
    uid_lines = _map_lines(procfs.read("/proc/self/uid_map"))
    gid_lines = _map_lines(procfs.read("/proc/self/gid_map"))
    info = {
        "kernel": ("unconfined" if extension.unconfined_reason() else
                   "container-kernel" if extension.in_container() else "other"),
        "contained": extension.in_container() and not extension.unconfined_reason(),
        "warning": extension.warning_banner(),
        "outer_container": extension.outer_container(),
        "hostname": socket.gethostname(),
        "pid": os.getpid(),
        "ppid": os.getppid(),
        "namespaces": inside,
        "uid_map": uid_lines,
        "gid_map": gid_lines,
        "users": users(uid_lines, gid_lines),
        "cwd": os.getcwd(),
        "mounts": mounts(),
        "capabilities": capabilities(procfs.status_field("CapEff")),
        "no_new_privs": procfs.status_field("NoNewPrivs") == "1",
        "seccomp": SECCOMP.get(procfs.status_field("Seccomp") or "", "unknown"),
        "links": interfaces(),
        "host": None,
        "host_error": None,
    }
    info["interfaces"] = [link["name"] for link in info["links"]]
    if control.path():
        try:
            info["host"] = control.request("info")
        except control.ControlError as e:
            info["host_error"] = str(e)
    host = info["host"] or {}
    host_ns = host.get("host_namespaces") or {}
    info["namespace_table"] = [
        {"type": kind, "inside": ino, "host": host_ns.get(kind),
         "isolated": None if kind not in host_ns else ino != host_ns[kind], "what": KINDS[kind][1]}
        for kind, ino in inside.items()]
    if host.get("cgroup"):
        info["cgroup"] = dict(host["cgroup"], ceiling=host.get("ceiling"), seen_from="the host")
    else:
        stats = own_stats()
        info["cgroup"] = stats and {"version": stats["version"], "paths": stats["path"], "stats": stats,
                                    "ceiling": ceiling() or None, "seen_from": "inside (read-only)"}
    return info


# ---- rendering: one rich view, HTML with a text/plain fallback ----------------------------

def _show(text, html_body):
    from IPython.display import display
    display({"text/plain": text, "text/html": html_body}, raw=True)


def esc(value):
    return html.escape(str(value))


def html_table(headers, rows, marked=()):
    """rows of cells; the rows whose index is in marked are highlighted."""
    head = "".join(f"<th style='text-align:left'>{esc(h)}</th>" for h in headers)
    body = "".join(
        "<tr" + (" style='background:#fff3cd'" if i in marked else "") + ">"
        + "".join(f"<td style='text-align:left'>{esc(c)}</td>" for c in row) + "</tr>"
        for i, row in enumerate(rows))
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def text_table(headers, rows, indent="  "):
    cells = [[str(c) for c in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join(indent + "  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in cells)


def warning_html(text):
    return (f"<div style='background:#f8d7da;color:#721c24;padding:6px;font-weight:bold;"
            f"border:1px solid #f5c6cb'>{esc(text)}</div>")


def _yes(flag):
    return "?" if flag is None else "yes" if flag else "NO (shared with the host)"


def namespace_rows(info):
    rows = [(n["type"], n["inside"], n["host"] if n["host"] is not None else "?", _yes(n["isolated"]),
             n["what"]) for n in info["namespace_table"]]
    shared = {i for i, n in enumerate(info["namespace_table"]) if n["isolated"] is False}
    return ("namespace", "inode inside", "inode on the host", "isolated", "isolates"), rows, shared


def limit_rows(stats, ceil=None):
    """The cgroup counters as rows: controller, limit, ceiling, usage, peak, counters."""
    ceil = ceil or {}
    b = S.human_bytes
    m, c, p, io = (stats.get(k) or {} for k in ("memory", "cpu", "pids", "io"))
    rows = [
        ("memory", b(m.get("limit")), b(ceil.get("memory")) if ceil.get("memory") else "none",
         b(m.get("usage")), b(m.get("peak")),
         f"OOM kills {m.get('oom_kills') or 0}, limit hit {m.get('failcnt') or 0} times"),
        ("cpu", control.show("cpu", c.get("cpus")), control.show("cpu", ceil.get("cpus")) if ceil.get("cpus")
         else "none", f"{(c.get('usage_ns') or 0) / 1e9:.2f} CPU-s", "",
         f"throttled {c.get('nr_throttled') or 0} of {c.get('nr_periods') or 0} periods, "
         f"{(c.get('throttled_ns') or 0) / 1e9:.2f} s"),
        ("pids", control.show("pids", p.get("limit")), ceil.get("pids") or "none",
         p.get("current") if p.get("current") is not None else "?", "",
         f"forks refused {p.get('events_max') or 0}"),
    ]
    limits = ", ".join(f"{l['major']}:{l['minor']} read {control.show('io', l['rbps'])} "
                       f"write {control.show('io', l['wbps'])}" for l in io.get("limits") or []) or "unlimited"
    rows.append(("io", limits, "none", f"read {b(io.get('read_bytes') or 0)}, "
                 f"written {b(io.get('write_bytes') or 0)}", "", ""))
    return ("controller", "limit", "ceiling", "usage", "peak", "counters"), rows


def render_info(info):
    host = info["host"] or {}
    text, parts = [], []
    top = info["warning"] or (info["host_error"] and f"The launcher did not answer: {info['host_error']}")
    if info["outer_container"]:
        top = (top.rstrip(".") + ". " if top else "") + \
            f"It runs inside another container: {info['outer_container']}."
    if top:
        text.append("!! " + top)
        parts.append(warning_html(top))

    def section(title, rows_text, body):
        text.append(f"{title}:")
        text.append(rows_text)
        parts.append(f"<h4 style='margin:8px 0 2px'>{esc(title)}</h4>{body}")

    headers, rows, shared = namespace_rows(info)
    section("Namespaces", text_table(headers, rows), html_table(headers, rows, shared))
    kernel_host = host.get("kernel_pid", "?")
    id_rows = [("hostname", info["hostname"], host.get("host_hostname", "?")),
               ("the kernel's PID", info["pid"], kernel_host),
               ("init's PID", 1 if host else "?", host.get("init_pid", "?")),
               ("the launcher's PID", "(outside)", host.get("launcher_pid", "?"))]
    section("Names and PIDs", text_table(("", "inside", "on the host"), id_rows),
            html_table(("", "inside", "on the host"), id_rows))
    user_lines = info["users"]
    section("Users", "\n".join("  " + u for u in user_lines),
            "<ul>" + "".join(f"<li>{esc(u)}</li>" for u in user_lines) + "</ul>")
    mount_rows = [(m["target"], m["fstype"], "ro" if m["ro"] else "rw", m["source"]) for m in info["mounts"]]
    rootfs = host.get("rootfs", "?")
    root_line = (f"rootfs: {rootfs}" + (" (a tmpfs with read-only binds of the host's system dirs)"
                                        if rootfs == "host" else "") + f"; {len(mount_rows)} mounts, "
                 f"{sum(1 for m in info['mounts'] if m['ro'])} read-only; cwd {info['cwd']}")
    section("Filesystem", "  " + root_line + "\n" + text_table(("mount point", "type", "", "source"),
                                                               mount_rows, "    "),
            f"<p>{esc(root_line)}</p><details><summary>{len(mount_rows)} mounts</summary>"
            + html_table(("mount point", "type", "", "source"), mount_rows) + "</details>")
    cg = info["cgroup"]
    if cg:
        headers, rows = limit_rows(cg["stats"], cg.get("ceiling"))
        line = f"cgroup v{cg['version']} (seen from {cg['seen_from']}): {where(cg['paths'])}"
        section("cgroup", "  " + line + "\n" + text_table(headers, rows),
                f"<p>{esc(line)}</p>" + html_table(headers, rows))
    enforced = enforcement_lines(host.get("enforced"))
    if enforced:
        section("Limits enforced", "\n".join("  " + s for s in enforced),
                "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in enforced) + "</ul>")
    caps = info["capabilities"]
    missing = [c for c in CAPABILITIES if c not in caps]
    cap_line = (f"{len(caps)} capabilities: " + (f"all but {', '.join(missing)}" if len(caps) > 20 and missing
                                                  else ", ".join(caps) or "none"))
    sec = [cap_line, f"no_new_privs: {'yes' if info['no_new_privs'] else 'no'}",
           f"seccomp: {info['seccomp']}"]
    section("Security", "\n".join("  " + s for s in sec),
            "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in sec) + "</ul>")
    net = [f"mode: {host.get('network', '?')}",
           "interfaces: " + ", ".join(f"{l['name']} ({l['state']})" for l in info["links"])]
    section("Network", "\n".join("  " + s for s in net),
            "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in net) + "</ul>")
    return "\n".join(text), "<div>" + "".join(parts) + "</div>"


def enforcement_lines(enforced):
    """{"memory": "RLIMIT_AS per process ...", "cpus": "NOT enforced"} -> lines for a reader."""
    return [f"{field}: {how}" for field, how in sorted((enforced or {}).items())]


def headline(info):
    """One line a log (or a text-only client) can carry; None without the host's view."""
    host = info["host"]
    if not host:
        return None  # the view's banner at the top says why
    n = sum(1 for r in info["namespace_table"] if r["isolated"])
    return (f"Container {host['id']}: the kernel is PID {info['pid']} inside, PID {host['kernel_pid']} "
            f"on the host; {n} of {len(info['namespace_table'])} namespace inodes differ from the host's.")


def render_ps(procs):
    headers = ("host PID", "PID", "PPID", "user", "cgroup", "RSS", "CPU s", "state", "command")
    rows = [(p["host_pid"], p["pid"], p["ppid"] if p["ppid"] is not None else "-", p["user"], p["cgroup"],
             S.human_bytes(p["rss"]), p["cpu_s"], p["status"], " ".join(p["cmdline"])[:100])
            for p in procs]
    return text_table(headers, rows), html_table(headers, rows)


def where(paths):
    """A cgroup's dirs in one string: v1's one per hierarchy as /sys/fs/cgroup/{cpu,memory}/..."""
    dirs = sorted(set(paths.values()))
    split = [d.split("/") for d in dirs]
    if len(dirs) > 1 and len({len(p) for p in split}) == 1:
        differ = [i for i in range(len(split[0])) if len({p[i] for p in split}) > 1]
        if len(differ) == 1:
            i = differ[0]
            return "/".join(split[0][:i] + ["{" + ",".join(p[i] for p in split) + "}"] + split[0][i + 1:])
    return ", ".join(dirs)


def _request(magic, op, **args):
    try:
        return control.request(op, **args)
    except control.ControlError as e:
        raise UsageError(f"{magic}: {e}") from None


# ---- %%sandbox: a disposable fork in a tighter child cgroup ----------------------------------

def run_sandboxed(shell, cell, limits):
    """Fork the kernel, have the launcher put the fork in a child cgroup, run the cell there.

    Returns (the fork's wait status, or None if it was stopped; the launcher's
    sandbox_end reply with the sandbox's final counters). The kernel has threads
    (ZeroMQ, heartbeat, iopub): in the fork only this one exists, so the fork runs
    the cell's code and writes to pipes, nothing else, and leaves with os._exit.
    """
    for stream in (sys.stdout, sys.stderr):
        stream.flush()  # else the fork would send buffered output a second time
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    go_r, go_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        _sandbox_child(shell, cell, out_w, err_w, go_r, (out_r, err_r, go_w))
    for fd in (out_w, err_w, go_r):
        os.close(fd)
    name = status = None
    try:
        reply = control.request("sandbox", pid=pid, **{k: str(v) for k, v in limits.items()})
        name = reply["name"]
        os.write(go_w, b"go")  # only now: the fork is in its cgroup before it runs anything
        os.close(go_w)
        go_w = None
        _pump({out_r: sys.stdout, err_r: sys.stderr}, pid)
        status = os.waitpid(pid, 0)[1]
    except control.ControlError as e:
        raise UsageError(f"%%sandbox: {e}") from None
    finally:
        if status is None:  # interrupted, or the launcher said no: the fork must not run on
            try:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
            except (ProcessLookupError, ChildProcessError):
                pass
        for fd in (out_r, err_r, go_w):
            if fd is not None:
                os.close(fd)
        end = None
        if name:
            try:
                end = control.request("sandbox_end", name=name)
            except control.ControlError as e:
                print(f"%%sandbox: {e}", file=sys.stderr)
    return status, end


def _pump(streams, pid):
    """Copy the fork's stdout and stderr to the cell's, as they come, until the fork exits.

    Not until EOF: a process the cell started in the background holds the pipes
    open after the fork is gone (sandbox_end kills it). A pidfd becomes readable
    when the process exits (Linux 5.3+; without one, EOF it is).
    """
    import codecs
    decoders = {fd: codecs.getincrementaldecoder("utf-8")("replace") for fd in streams}
    open_fds = set(streams)
    try:
        pidfd = os.pidfd_open(pid)
    except (AttributeError, OSError):
        pidfd = None
    exited = False
    after = 0  # bytes read since the fork exited: a background writer cannot keep us here
    try:
        while open_fds and after < (1 << 20):
            watch = list(open_fds) + ([pidfd] if pidfd is not None and not exited else [])
            ready, _, _ = select.select(watch, [], [], 0 if exited else None)
            if not ready:
                return  # exited, and all it wrote before is copied
            if pidfd in ready:
                exited = True
            for fd in ready:
                if fd == pidfd:
                    continue
                data = os.read(fd, 65536)
                after += len(data) if exited else 0
                if not data:
                    open_fds.discard(fd)
                text = decoders[fd].decode(data, final=not data)
                if text:
                    streams[fd].write(text)
                    streams[fd].flush()
    finally:
        if pidfd is not None:
            os.close(pidfd)


def _sandbox_child(shell, cell, out_w, err_w, go_r, close_fds):
    """In the fork. Never returns."""
    code = 1
    try:
        for fd in close_fds:
            os.close(fd)
        os.dup2(out_w, 1)  # subprocesses and C code write to fds 1 and 2: the pipes too
        os.dup2(err_w, 2)
        sys.stdout = os.fdopen(os.dup(1), "w", buffering=1)
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1)
        # The parent's objects are frozen out of the cyclic GC: no finalizer of theirs
        # (a ZeroMQ socket's) runs here, and GC does not touch (copy, and charge to the
        # sandbox) every page of the kernel's heap.
        gc.freeze()
        # display() would go to the kernel's ZeroMQ sockets, whose threads are not here.
        shell.display_pub.publish = _publish_as_text
        if os.read(go_r, 2) != b"go":  # the parent gave up: run nothing
            os._exit(1)
        code = _run_cell(shell, cell)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 0 if e.code is None else 1
    except BaseException as e:
        _print_exception(e)
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _publish_as_text(data, metadata=None, *args, **kwargs):
    print(data.get("text/plain", "<%s>" % ", ".join(data)))


def _run_cell(shell, cell):
    """Execute like a cell: magics transformed, the last expression's value shown."""
    source = shell.transform_cell(cell)
    tree = ast.parse(source, "<sandbox>")
    last = tree.body.pop() if tree.body and isinstance(tree.body[-1], ast.Expr) else None
    ns = shell.user_ns
    try:
        exec(compile(tree, "<sandbox>", "exec"), ns)
        if last is not None:
            value = eval(compile(ast.Expression(last.value), "<sandbox>", "eval"), ns)
            if value is not None:
                print(repr(value))
    except SystemExit:
        raise
    except BaseException as e:
        _print_exception(e)
        return 1
    return 0


def _print_exception(e):
    import traceback
    tb = e.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != "<sandbox>":
        tb = tb.tb_next  # the cell's frames only, not this module's
    sys.stderr.write("".join(traceback.format_exception(type(e), e, tb)))


def sandbox_notice(status, end):
    """What happened to the fork, in one line; None for a normal end."""
    stats = (end or {}).get("stats") or {}
    mem = stats.get("memory") or {}
    code = os.waitstatus_to_exitcode(status) if status is not None else None
    limit = S.human_bytes(mem["limit"]) if mem.get("limit") else "the container's memory limit"
    peak = S.human_bytes(mem.get("peak") or mem.get("usage"))
    if mem.get("oom_kills"):
        if code == -signal.SIGKILL:
            return (f"%%sandbox: the cell was killed by the OOM killer at {limit} (peak {peak}); "
                    "the kernel and its variables are untouched.")
        return f"%%sandbox: the OOM killer killed {mem['oom_kills']} process(es) of the cell at {limit}."
    if code is not None and code < 0:
        name = {int(sig): sig.name for sig in signal.Signals}.get(-code, "a real-time signal")
        return f"%%sandbox: the cell was killed by signal {-code} ({name})."
    if code not in (None, 0, 1):
        return f"%%sandbox: the cell exited with code {code}."
    return None


# ---- the magics -----------------------------------------------------------------------------

@magics_class
class ContainerMagics(Magics):
    @line_magic
    def container_info(self, line):
        """Show the container this kernel runs in: from inside, and from the host.

        Namespaces (inode inside, inode on the host, isolated or shared), the
        hostname and PIDs inside and on the host, who root inside is on the host
        (uid_map/gid_map), the rootfs and mounts, the cgroup and its limits,
        capabilities, no_new_privs, seccomp and the network interfaces.

        Examples:
            %container_info            a readable view (HTML in a notebook, text elsewhere)
            info = %container_info --json
            info["namespace_table"]    the same facts as plain data, for programs and tests
        """
        flags = _flags(line, "%container_info")
        info = container_info()
        if "--json" in flags:
            return info
        line = headline(info)
        if line:
            print(line)
        _show(*render_info(info))

    @line_magic
    def cgroup(self, line):
        """Show the container's cgroup: each limit with its usage, peak and counters.

        memory: limit, usage, peak, OOM kills and how often the limit was hit;
        cpu: quota in CPUs, CPU time used, throttled periods; pids: limit, current,
        forks refused; io: per-device rates and bytes read and written. The ceiling
        column is the kernelspec's limit, above which %cgroup_set cannot go.

        Examples:
            %cgroup
            stats = %cgroup --json      {"stats": {...}, "ceiling": {...}}
        """
        flags = _flags(line, "%cgroup")
        if control.path():
            reply = _request("%cgroup", "stats")
            stats, ceil, seen = reply["stats"], reply.get("ceiling") or {}, "the host, by the launcher"
            if stats is None:  # rootless without a delegated cgroup: say what holds instead
                if "--json" in flags:
                    return {"stats": None, "ceiling": ceil, "enforced": reply.get("enforced")}
                lines = enforcement_lines(reply.get("enforced")) or ["no limits were asked for"]
                head = ("no cgroup: rootless without a delegated cgroup v2 subtree; "
                        "the limits and how they are enforced:")
                _show("\n".join([head] + ["  " + l for l in lines]),
                      f"<p>{esc(head)}</p><ul>" + "".join(f"<li>{esc(l)}</li>" for l in lines) + "</ul>")
                return
        else:
            stats, ceil, seen = own_stats(), {}, "inside, read-only"
            if stats is None:
                raise UsageError("%cgroup: no cgroup of this kernel is readable here, and there is "
                                 "no launcher of container-kernel to ask")
        if "--json" in flags:
            return {"stats": stats, "ceiling": ceil}
        head = f"cgroup v{stats['version']} {where(stats['path'])} (seen from {seen})"
        warning = extension.warning_banner()
        headers, rows = limit_rows(stats, ceil)
        text = ((f"!! {warning}\n" if warning else "") + head + "\n" + text_table(headers, rows))
        body = ((warning_html(warning) if warning else "") + f"<p>{esc(head)}</p>"
                + html_table(headers, rows))
        _show(text, body)

    @line_magic
    def cgroup_set(self, line):
        """Change one of the container's limits now, within the kernelspec's ceiling.

        The launcher (outside the container) writes the cgroup file, reads it
        back and shows the value in force. A value above the ceiling is refused
        and changes nothing; "max" goes back to the ceiling (unlimited if none).

        Examples:
            %cgroup_set memory 100M     memory limit (docker units: 100M, 1.5g)
            %cgroup_set memory max      back to the ceiling
            %cgroup_set cpu 0.5         half a CPU
            %cgroup_set pids 64         at most 64 processes
            %cgroup_set io write 10M/s  on the disk holding the notebook's directory
            %cgroup_set io read 5M /dev/vda
            %cgroup_set io write max    lift it
        """
        req = parse_cgroup_set(line)
        reply = _request("%cgroup_set", "set", **req)
        what = req["controller"] + (f" {req['direction']}" if "direction" in req else "")
        on = f" on {reply['device']} ({reply['device_of']})" if "device" in reply else ""
        print(f"{what}: {reply['text']}{on} (read back from the cgroup)")

    @line_magic
    def container_ps(self, line):
        """List the container's processes as the host sees them: host PID, PID inside, user.

        The launcher lists the cgroup's processes (children cgroups such as a
        %%sandbox too) and reads them with psutil on the host side.

        Examples:
            %container_ps
            procs = %container_ps --json
        """
        flags = _flags(line, "%container_ps")
        if not control.path():
            raise UsageError("%container_ps: not a container kernel: there is no launcher on the host "
                             "to ask (use !ps here)")
        procs = _request("%container_ps", "ps")["processes"]
        if "--json" in flags:
            return procs
        _show(*render_ps(procs))

    @cell_magic
    def sandbox(self, line, cell):
        """Run this cell in a disposable copy of the kernel, with tighter limits.

        The kernel forks; the launcher puts the fork in a child cgroup of the
        container with the limits given, the fork runs the cell and exits, and
        its output streams here. If the cell hits a limit (say the OOM killer
        ends it) the kernel is untouched and keeps all its variables.

        Variables assigned in the cell do NOT come back: the copy is thrown away,
        with every process the cell started (they are killed when the cell ends).
        Output is text: display() shows its text/plain form, widgets do not work.

        Examples:
            %%sandbox memory=50M
            x = bytearray(200 << 20)    # killed by the OOM killer at 50 MiB

            %%sandbox memory=100M cpu=0.5 pids=16
            ...

        Arguments: memory=SIZE (docker units), cpu=CPUS, pids=N; none above
        the container's own limit. Give memory= to keep an OOM inside the
        sandbox: without it, the container's limit applies, and the OOM killer
        chooses among all the container's processes, the kernel included.
        """
        limits = parse_sandbox(line)
        if not control.path():
            raise UsageError("%%sandbox: not a container kernel: there is no launcher to make the "
                             "sandbox's cgroup")
        status, end = run_sandboxed(self.shell, cell, limits)
        notice = sandbox_notice(status, end)
        if notice:
            print(notice, file=sys.stderr)
        left = (end or {}).get("killed_left")
        if left:
            print(f"%%sandbox: {left} process(es) the cell left running were killed with the sandbox.",
                  file=sys.stderr)

    @line_magic
    def container_monitor(self, line):
        """A live dashboard of the container: memory, CPU, pids and OOM kills, with sliders.

        Refreshes about once a second; the sliders change the limits like
        %cgroup_set (never above the ceiling). Stops when closed, or with the kernel.

        Examples:
            %container_monitor
            %container_monitor 2       refresh every 2 s (0.2 to 60)
            m = %container_monitor     then m.close() to stop it
            import container_kernel; container_kernel.monitor(interval=2)
        """
        interval = parse_interval(line)
        if not control.path():
            raise UsageError("%container_monitor: not a container kernel: there is no launcher to "
                             "ask for the cgroup's counters (%cgroup shows them once)")
        from .widgets import monitor
        try:
            return monitor(interval=interval)
        except control.ControlError as e:
            raise UsageError(f"%container_monitor: {e}") from None


def register(ip):
    ip.register_magics(ContainerMagics)
