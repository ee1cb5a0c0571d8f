"""Widgets: the container's limits, live, and its namespaces at a glance.

monitor()            memory against its limit (a bar and a sparkline of the last
                     minute), CPU against the quota, pids against the max, OOM
                     kills; sliders that change the limits through the launcher,
                     the same path as %cgroup_set. A background thread asks the
                     launcher for the cgroup's counters (a protocol.StatsReply)
                     about once a second.
namespaces_widget()  the namespace table, the namespaces shared with the host marked.
"""

import atexit
import os
import threading
import time
import weakref
from collections import deque

import ipywidgets as w

from .. import protocol
from ..runtime.spec import MIN_MEMORY, human_bytes
from . import client, facts, render

MiB = 1 << 20
HISTORY = 60  # samples in a sparkline: a minute at the default interval
_live = weakref.WeakSet()  # running monitors, stopped at exit


def _bar(fraction, width=160, height=12):
    """A horizontal bar, green to red as it fills; an empty frame when there is no limit."""
    if fraction is None:
        return (f"<svg width='{width}' height='{height}'><rect width='{width}' height='{height}' "
                "fill='none' stroke='#bbb' stroke-dasharray='3'/></svg>")
    f = max(0.0, min(1.0, fraction))
    color = "#2e7d32" if f < 0.7 else "#ef6c00" if f < 0.9 else "#c62828"
    return (f"<svg width='{width}' height='{height}'><rect width='{width}' height='{height}' fill='#eee'/>"
            f"<rect width='{f * width:.1f}' height='{height}' fill='{color}'/></svg>")


def _sparkline(values, top, width=120, height=24):
    """A polyline of the last values, scaled to top (the limit, or the highest value seen)."""
    points = list(values)
    top = top or max(points + [1])
    if len(points) < 2:
        return f"<svg width='{width}' height='{height}'></svg>"
    step = width / (HISTORY - 1)
    x0 = width - step * (len(points) - 1)
    coords = " ".join(f"{x0 + i * step:.1f},{height - height * min(v / top, 1.0):.1f}"
                      for i, v in enumerate(points))
    return (f"<svg width='{width}' height='{height}'><rect width='{width}' height='{height}' "
            f"fill='#fafafa'/><polyline points='{coords}' fill='none' stroke='#1565c0' "
            f"stroke-width='1.5'/></svg>")


def _row(name, graphics, text):
    return (f"<div style='display:flex;gap:8px;align-items:center;font-family:monospace'>"
            f"<b style='width:5em'>{name}</b>{graphics}<span>{render.esc(text)}</span></div>")


class Monitor(w.VBox):
    """The dashboard. Attributes: memory, cpu, pids, oom (HTML rows); memory_limit,
    cpu_limit, pids_limit (sliders); status; stop()/close()."""

    def __init__(self, interval=1.0):
        reply = client.request("stats")  # first: if the launcher does not answer, no widget is made
        if reply.stats is None:
            raise protocol.ControlError("this container has no cgroup (rootless without a delegated "
                                        "cgroup v2 subtree): %cgroup says how its limits hold")
        self.interval = interval
        self.ceiling = reply.ceiling or protocol.Ceiling()
        self.memory, self.cpu, self.pids, self.oom = (w.HTML() for _ in range(4))
        self.status = w.HTML()
        self._history = {"memory": deque(maxlen=HISTORY), "cpu": deque(maxlen=HISTORY)}
        self._last_cpu = None
        self._local = threading.local()  # set while the monitor itself moves a slider
        self._stop = threading.Event()
        self._lock = threading.Lock()  # one refresh at a time: the thread's and a slider's
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        mem_top = (self.ceiling.memory or total) // MiB
        style = {"description_width": "7em"}
        layout = w.Layout(width="32em")
        self.memory_limit = w.IntSlider(description="memory MiB", min=MIN_MEMORY // MiB, max=mem_top, step=1,
                                        continuous_update=False, style=style, layout=layout)
        self.cpu_limit = w.FloatSlider(description="CPUs", min=0.05, step=0.05,
                                       max=self.ceiling.cpu or float(os.cpu_count() or 1),
                                       continuous_update=False, style=style, layout=layout)
        self.pids_limit = w.IntSlider(description="pids", min=2, max=self.ceiling.pids or 4096,
                                      continuous_update=False, style=style, layout=layout)
        self._sliders = {"memory": self.memory_limit, "cpu": self.cpu_limit, "pids": self.pids_limit}
        for controller, slider in self._sliders.items():
            slider.observe(lambda change, c=controller: self._slider_moved(c, change["new"]), "value")
        note = w.HTML("<small>At a slider's right end: back to the ceiling"
                      + (" (the kernelspec's limits)." if any(self.ceiling) else ", which is no limit.")
                      + "</small>")
        super().__init__([w.HTML("<b>Container monitor</b>"), self.memory, self.cpu, self.pids,
                          self.oom, self.memory_limit, self.cpu_limit, self.pids_limit, note,
                          self.status])
        self._update(reply.stats)
        # A frontend that closes the widget closes its comm: stop then too.
        self.comm.on_close(lambda msg: self._stop.set())
        _live.add(self)
        self._thread = threading.Thread(target=self._run, name="ck-monitor", daemon=True)
        self._thread.start()

    # -- the refresh thread --
    def _run(self):
        while not self._stop.wait(self.interval):
            if self.comm is None:
                break
            try:
                self.refresh()
            except protocol.ControlError as e:
                self.status.value = f"<span style='color:#c62828'>{render.esc(e)}</span>"
            except Exception:  # e.g. the kernel shutting down under us: stop quietly
                break
        self._stop.set()

    def refresh(self):
        self._update(client.request("stats").stats)

    def _update(self, stats):
        with self._lock:
            m, c, p = stats.memory, stats.cpu, stats.pids
            usage, limit = m.usage or 0, m.limit
            self._history["memory"].append(usage)
            text = (f"{human_bytes(usage)} of {human_bytes(limit)}"
                    + (f" ({100 * usage / limit:.0f}%)" if limit else "")
                    + f", peak {human_bytes(m.peak)}")
            self.memory.value = _row("memory", _bar(usage / limit if limit else None)
                                     + _sparkline(self._history["memory"], limit), text)
            now, used = time.monotonic(), c.usage_ns or 0
            cores = None
            if self._last_cpu:
                t0, u0 = self._last_cpu
                cores = max(0.0, (used - u0) / 1e9 / max(now - t0, 1e-3))
            self._last_cpu = (now, used)
            quota = c.cpus
            self._history["cpu"].append(cores or 0.0)
            cap = quota or float(os.cpu_count() or 1)
            text = ((f"{cores:.2f}" if cores is not None else "-") + " of "
                    + (f"{quota:g} CPUs (quota)" if quota else f"{cap:g} CPUs (no quota)")
                    + f", throttled {c.nr_throttled or 0} of {c.nr_periods or 0} periods")
            self.cpu.value = _row("cpu", _bar((cores or 0) / cap) + _sparkline(self._history["cpu"], cap), text)
            current, pmax = p.current or 0, p.limit
            self.pids.value = _row("pids", _bar(current / pmax if pmax else None),
                                   f"{current} of {pmax if pmax else 'unlimited'}"
                                   f", forks refused {p.events_max or 0}")
            self.oom.value = _row("OOM", "", f"{m.oom_kills or 0} kills by the OOM killer, "
                                  f"memory limit hit {m.failcnt or 0} times")
            self._sync_sliders(limit, quota, pmax)

    def _sync_sliders(self, memory, cpus, pids):
        """Show the limits in force (a %cgroup_set may have changed them) without re-setting them."""
        self._local.syncing = True
        try:
            for slider, value in ((self.memory_limit, memory // MiB if memory else None),
                                  (self.cpu_limit, cpus), (self.pids_limit, pids)):
                target = slider.max if value is None else value
                if slider.value != target:
                    slider.value = target
        finally:
            self._local.syncing = False

    # -- the sliders: the same path as %cgroup_set --
    def _slider_moved(self, controller, value):
        if getattr(self._local, "syncing", False):
            return
        slider = self._sliders[controller]
        at_top = value >= slider.max
        if at_top:
            text = "max"  # the ceiling, or no limit
        elif controller == "memory":
            text = f"{value}M"
        elif controller == "cpu":
            text = f"{value:.2f}"
        else:
            text = str(value)
        try:
            reply = client.request("set", controller=controller, value=text)
            self.status.value = render.esc(f"{controller}: {reply.text} (read back from the cgroup)")
        except protocol.ControlError as e:
            self.status.value = f"<span style='color:#c62828'>{render.esc(e)}</span>"
        try:
            self.refresh()  # the slider shows the value in force, whatever happened
        except protocol.ControlError:
            pass

    # -- stopping --
    def stop(self):
        self._stop.set()
        if self._thread is not threading.current_thread():
            self._thread.join(5)

    def close(self):
        self.stop()
        for child in list(self.children):
            child.close()
        super().close()


def monitor(interval=1.0):
    """A live dashboard of this container's cgroup; see Monitor."""
    if not client.path():
        raise RuntimeError("container_kernel.monitor(): not a container kernel: there is no launcher "
                           "to ask for the cgroup's counters")
    return Monitor(interval)


def namespaces_widget():
    """The namespace table as a widget; the namespaces shared with the host are marked."""
    info = facts.container_info()
    headers, rows, shared = render.namespace_rows(info)
    note = ("Marked: shared with the host (the same inode inside and out)." if info.host
            else "The host's inodes are unknown here: no launcher of container-kernel answered.")
    warning = info.warning
    return w.HTML(((render.warning_html(warning) if warning else "")
                   + render.html_table(headers, rows, shared) + f"<small>{render.esc(note)}</small>"))


@atexit.register
def _stop_all():
    for m in list(_live):
        m._stop.set()
