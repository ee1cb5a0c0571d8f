"""The magics' views: one rich display each, HTML with a text/plain fallback.

Every function takes records (facts.Facts, cgroups.stats.Stats, protocol replies)
and returns text, or (text, html); only publish() displays. A text-only client
(a console, a log) gets the same facts as the notebook.
"""

import html

from .. import protocol
from ..runtime.procfs import CAPABILITIES
from ..runtime.spec import human_bytes

LIMIT_HEADERS = ("controller", "limit", "ceiling", "usage", "peak", "counters")
NAMESPACE_HEADERS = ("namespace", "inode inside", "inode on the host", "isolated", "isolates")
PS_HEADERS = ("host PID", "PID", "PPID", "user", "cgroup", "RSS", "CPU s", "state", "command")


def publish(text, html_body):
    from IPython.display import display
    display({"text/plain": text, "text/html": html_body}, raw=True)


# ---- building blocks ------------------------------------------------------------------------

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


def html_list(lines):
    return "<ul>" + "".join(f"<li>{esc(s)}</li>" for s in lines) + "</ul>"


def warning_html(text):
    return (f"<div style='background:#f8d7da;color:#721c24;padding:6px;font-weight:bold;"
            f"border:1px solid #f5c6cb'>{esc(text)}</div>")


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


# ---- rows -----------------------------------------------------------------------------------

def _yes(flag):
    return "?" if flag is None else "yes" if flag else "NO (shared with the host)"


def namespace_rows(facts):
    """(headers, rows, the indexes of the rows shared with the host)."""
    table = facts.namespace_table
    rows = [(n.type, n.inside, n.host if n.host is not None else "?", _yes(n.isolated), n.what)
            for n in table]
    shared = {i for i, n in enumerate(table) if n.isolated is False}
    return NAMESPACE_HEADERS, rows, shared


def limit_rows(stats, ceiling=None):
    """A Stats as rows: controller, limit, ceiling (a protocol.Ceiling), usage, peak, counters."""
    ceiling = ceiling or protocol.Ceiling()
    show = protocol.show
    m, c, p, io = stats.memory, stats.cpu, stats.pids, stats.io
    rows = [
        ("memory", human_bytes(m.limit), human_bytes(ceiling.memory) if ceiling.memory else "none",
         human_bytes(m.usage), human_bytes(m.peak),
         f"OOM kills {m.oom_kills or 0}, limit hit {m.failcnt or 0} times"),
        ("cpu", show("cpu", c.cpus), show("cpu", ceiling.cpu) if ceiling.cpu else "none",
         f"{(c.usage_ns or 0) / 1e9:.2f} CPU-s", "",
         f"throttled {c.nr_throttled or 0} of {c.nr_periods or 0} periods, "
         f"{(c.throttled_ns or 0) / 1e9:.2f} s"),
        ("pids", show("pids", p.limit), ceiling.pids or "none",
         p.current if p.current is not None else "?", "", f"forks refused {p.events_max or 0}"),
    ]
    limits = ", ".join(f"{r.major}:{r.minor} read {show('io', r.rbps)} write {show('io', r.wbps)}"
                       for r in io.limits) or "unlimited"
    rows.append(("io", limits, "none", f"read {human_bytes(io.read_bytes or 0)}, "
                 f"written {human_bytes(io.write_bytes or 0)}", "", ""))
    return LIMIT_HEADERS, rows


def enforcement_lines(enforced):
    """{"memory": "RLIMIT_AS per process ...", "cpu": "NOT enforced"} -> lines for a reader."""
    return [f"{limit}: {how}" for limit, how in sorted((enforced or {}).items())]


# ---- %container_info ------------------------------------------------------------------------

def headline(facts):
    """One line a log (or a text-only client) can carry; None without the host's view."""
    host = facts.host
    if not host:
        return None  # the view's banner at the top says why
    n = sum(1 for r in facts.namespace_table if r.isolated)
    return (f"Container {host.id}: the kernel is PID {facts.pid} inside, PID {host.kernel_pid} "
            f"on the host; {n} of {len(facts.namespace_table)} namespace inodes differ from the host's.")


def _banner(facts):
    top = facts.warning or (facts.host_error and f"The launcher did not answer: {facts.host_error}")
    if facts.outer_container:
        top = (top.rstrip(".") + ". " if top else "") + \
            f"It runs inside another container: {facts.outer_container}."
    return top


def render_info(facts):
    """(text, html) of %container_info: one section per concept."""
    host = facts.host

    def of_host(field):
        return getattr(host, field) if host else "?"

    text, parts = [], []
    top = _banner(facts)
    if top:
        text.append("!! " + top)
        parts.append(warning_html(top))

    def section(title, rows_text, body):
        text.append(f"{title}:")
        text.append(rows_text)
        parts.append(f"<h4 style='margin:8px 0 2px'>{esc(title)}</h4>{body}")

    def lines(title, items):
        section(title, "\n".join("  " + s for s in items), html_list(items))

    headers, rows, shared = namespace_rows(facts)
    section("Namespaces", text_table(headers, rows), html_table(headers, rows, shared))
    id_rows = [("hostname", facts.hostname, of_host("host_hostname")),
               ("the kernel's PID", facts.pid, of_host("kernel_pid")),
               ("init's PID", 1 if host else "?", of_host("init_pid")),
               ("the launcher's PID", "(outside)", of_host("launcher_pid"))]
    section("Names and PIDs", text_table(("", "inside", "on the host"), id_rows),
            html_table(("", "inside", "on the host"), id_rows))
    # The host user by name: only the launcher, outside, can read the host's passwd.
    lines("Users", facts.users + ([f"the launcher mapped: {host.mapping}"] if host and host.mapping
                                  else []))
    mount_rows = [(m.point, m.fstype, "ro" if m.readonly else "rw", m.source) for m in facts.mounts]
    rootfs = of_host("rootfs")
    root_line = (f"rootfs: {rootfs}" + (" (a tmpfs with read-only binds of the host's system dirs)"
                                        if rootfs == "host" else "") + f"; {len(mount_rows)} mounts, "
                 f"{sum(1 for m in facts.mounts if m.readonly)} read-only; cwd {facts.cwd}")
    image = host.image if host else None
    if image:  # an overlay rootfs (runtime/overlay.py): the image below, the writes above
        upper = f"{image.upper} ({'--persist ' + image.persist if image.persist else 'per-container'})"
        root_line += (f"\n  layers: lower {image.lower} (the image, read-only); upper {upper}, "
                      f"{human_bytes(image.upper_size)}")
    layer = getattr(host, "packages", None) if host else None
    if layer:  # what %pip installed (runtime/package_layer.py)
        root_line += (f"\n  packages: {layer.mount} (read-only; %pip writes it from a build sibling) "
                      f"= {layer.path} on the host, {human_bytes(layer.size)}"
                      + (f", being written by {layer.holder}" if layer.holder else ""))
    if facts.os_release:
        root_line += f"\n  os-release: {facts.os_release}"
    mount_headers = ("mount point", "type", "", "source")
    section("Filesystem", "  " + root_line + "\n" + text_table(mount_headers, mount_rows, "    "),
            f"<p>{esc(root_line)}</p><details><summary>{len(mount_rows)} mounts</summary>"
            + html_table(mount_headers, mount_rows) + "</details>")
    cg = facts.cgroup
    if cg:
        headers, rows = limit_rows(cg.stats, cg.ceiling)
        line = f"cgroup v{cg.version} (seen from {cg.seen_from}): {where(cg.paths)}"
        section("cgroup", "  " + line + "\n" + text_table(headers, rows),
                f"<p>{esc(line)}</p>" + html_table(headers, rows))
    enforced = enforcement_lines(host.enforced if host else None)
    if enforced:
        lines("Limits enforced", enforced)
    caps = facts.capabilities
    missing = [c for c in CAPABILITIES if c not in caps]
    cap_line = (f"{len(caps)} capabilities: " + (f"all but {', '.join(missing)}" if len(caps) > 20 and missing
                                                  else ", ".join(caps) or "none"))
    security = [cap_line, f"no_new_privs: {'yes' if facts.no_new_privs else 'no'}",
                f"seccomp: {facts.seccomp}"]
    sec = host.security if host else None
    if sec:  # what the launcher applied, beside what this process's status says
        security += [f"seccomp profile: {sec.seccomp}",
                     f"masked: {', '.join(sec.masked_paths) or 'none'}",
                     f"read-only: {', '.join(sec.readonly_paths) or 'none'}",
                     f"devices: {sec.devices}"]
    lines("Security", security)
    lines("Network", [f"mode: {of_host('network')}",
                      "interfaces: " + ", ".join(f"{l.name} ({l.state})" for l in facts.links)])
    return "\n".join(text), "<div>" + "".join(parts) + "</div>"


# ---- %cgroup, %cgroup_set, %container_ps ----------------------------------------------------

def render_cgroup(stats, ceiling, seen_from, warning=None):
    """(text, html) of %cgroup: where the cgroup is, then its limit rows."""
    head = f"cgroup v{stats.version} {where(stats.paths)} (seen from {seen_from})"
    headers, rows = limit_rows(stats, ceiling)
    text = (f"!! {warning}\n" if warning else "") + head + "\n" + text_table(headers, rows)
    body = ((warning_html(warning) if warning else "") + f"<p>{esc(head)}</p>"
            + html_table(headers, rows))
    return text, body


def render_no_cgroup(enforced):
    """(text, html) of %cgroup for a container without one: how its limits hold instead."""
    items = enforcement_lines(enforced) or ["no limits were asked for"]
    head = ("no cgroup: rootless without a delegated cgroup v2 subtree; "
            "the limits and how they are enforced:")
    return "\n".join([head] + ["  " + s for s in items]), f"<p>{esc(head)}</p>" + html_list(items)


def set_line(req, reply):
    """A protocol.SetReply in one line: the limit in force, read back."""
    what = req["controller"] + (f" {req['direction']}" if "direction" in req else "")
    on = f" on {reply.device} ({reply.device_of})" if reply.device else ""
    return f"{what}: {reply.text}{on} (read back from the cgroup)"


def render_ps(procs):
    """(text, html) of protocol.Proc records."""
    rows = [(p.host_pid, p.pid, p.ppid if p.ppid is not None else "-", p.user, p.cgroup,
             human_bytes(p.rss), p.cpu_s, p.status, " ".join(p.cmdline)[:100])
            for p in procs]
    return text_table(PS_HEADERS, rows), html_table(PS_HEADERS, rows)


def sibling_line(r):
    """A siblings.Result in one line: how it ended, and where the host saw it."""
    how = ("killed at its time limit" if r.timed_out else
           f"exit code {r.exit_code}" if r.exit_code is not None else "still running")
    procs = ", ".join(f"{p.name} {p.pid} inside = {p.host_pid} on the host (uid {p.host_uid})"
                      for p in (r.processes or ()))
    ns = r.namespaces or {}
    own = [k for k in ns if ns[k] is not None and ns[k] != (r.kernel_namespaces or {}).get(k)]
    cgroup = next(iter((r.cgroup or {}).values()), None)
    return (f"[sibling {r.name}: {how}; hostname {r.hostname}; init host PID {r.init_pid}"
            + (f"; {procs}" if procs else "")
            + f"; namespaces of its own: {' '.join(own) or 'none'}"
            + (f"; cgroup {cgroup}" if cgroup else "") + ("; output truncated" if r.truncated else "")
            + "]")
