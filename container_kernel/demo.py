"""Demo containers for the teaching notebooks: `from container_kernel import demo`.

    demo.run(["hostname"], hostname="box")               run one to its end: a Result
    demo.start(["sleep", "5"], network="private:lab")    one that runs on: .poll() .wait() .kill()

Keyword arguments: hostname, network ("none" or "private:NAME": siblings given the
same NAME share one network namespace), memory, cpus, pids, init (False: the
command is PID 1), user_ns (True: root inside is an unprivileged uid outside), env,
workdir, timeout (seconds), options (more `container-kernel run` options).
The launcher starts them outside the container (inside/siblings.py says how).
"""

from .inside.siblings import Result, Sibling, run, start  # noqa: F401
