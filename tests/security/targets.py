"""The targets attempts run in: a kernel (one cell each), and what the CLI targets share."""
import os

from tests.helpers import SLOW

from . import attempts

ENV_VAR = "CK_SEC_MARKER"  # set in the Jupyter server's (the suite's) environment


class Target:
    """A kernel the attempts run in, one cell each."""

    def __init__(self, km, kc, host, mode):
        self.km, self.kc, self.host, self.mode = km, kc, host, mode

    def run(self, a, timeout=120 * SLOW):
        out = {"stdout": "", "stderr": "", "error": None}

        def hook(msg):
            t, c = msg["msg_type"], msg["content"]
            if t == "stream":
                out[c["name"]] += c["text"]
            elif t == "error":
                out["error"] = "\n".join(c["traceback"])[-1500:]

        self.kc.execute_interactive(attempts.cell(a, self.host, self.mode), timeout=timeout,
                                    output_hook=hook, stop_on_error=False)
        if out["error"]:
            return {"error": out["error"]}
        return attempts.parse_cell(out["stdout"])


def start_kernel(sec_host, sec_kernelspecs, which, env=None):
    from jupyter_client import KernelManager
    from jupyter_client.kernelspec import KernelSpecManager
    ksm = KernelSpecManager(kernel_dirs=[sec_kernelspecs["dir"]])
    km = KernelManager(kernel_name=sec_kernelspecs[which], kernel_spec_manager=ksm)
    log = sec_host["log"]
    km.start_kernel(cwd=str(sec_host["notebooks"]), stdout=log, stderr=log,
                    **({"env": env} if env else {}))
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=60)
    except Exception:
        kc.stop_channels()
        km.shutdown_kernel(now=True)
        raise
    return km, kc


def contained_writes(host):
    """What a contained target managed to create in the host's write dir (must stay empty)."""
    return [n for n in os.listdir(host["write_dir"]) if n != "from-plain"]


def run_limits(host):
    """`run` options matching the default kernelspec's ceilings, for the CLI targets."""
    return ["--pids", str(host["pids_ceiling"]), "--memory", f"{host['memory_ceiling'] >> 20}M"]

