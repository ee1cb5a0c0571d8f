"""The messages between the launcher, the intermediate stage and init, declared once.

(runc documents its parent/child messages in one table, libcontainer/sync.go;
youki types them as one enum, process/message.rs.) Two pipes, one short line a
message; init inherits the intermediate's ends, so both stages share them:

    step  from          to            message          meaning
    1     intermediate  launcher      unshared         a user namespace (if any) exists: write its
                                                       ID maps, put the intermediate in the cgroup
    2     launcher      intermediate  go               done: unshare the other namespaces, fork init
    3     intermediate  launcher      init PID         init's host PID; the intermediate exits and
                                                       init is adopted (the launcher is a subreaper)
    4     launcher      init          go               adopted: from now on, die with the launcher
    5     init          launcher      ready            mounts and pivot_root done, the command exec'd
    any   a stage       launcher      error CODE TEXT  it failed: CODE is the exit status to report

EOF instead of `go` tells a waiting stage that the launcher gave up: it exits.
"""

import os

from .errors import ContainerError

UNSHARED = "unshared"
GO = "go"
INIT = "init"
READY = "ready"
ERROR = "error"


def send(fd, word, text=None):
    line = word if text is None else f"{word} {text}"
    os.write(fd, (line.replace("\n", " ") + "\n").encode())


def send_error(fd, code, text):
    send(fd, ERROR, f"{code} {text}")


def wait_go(fd):
    """Block until the launcher says go; False on EOF (it gave up)."""
    return os.read(fd, len(GO) + 1) == (GO + "\n").encode()


def expect(fd, word):
    """Read the next message; return its text if it is `word`, raise if it is an error.

    An error message becomes the ContainerError the stage reported, with its exit
    code; EOF (the stage died without a word) is a runtime error naming the step."""
    line = _read_line(fd)
    head, _, rest = line.partition(" ")
    if head == word:
        return rest
    if head == ERROR:
        code, _, message = rest.partition(" ")
        raise ContainerError(message, int(code) if code.isdigit() else 125)
    raise ContainerError(f"the container's {word!r} stage died before it could report "
                         f"({line or 'no message'})")


def _read_line(fd):
    # A byte at a time: the pipe is shared, and what follows the line is another stage's.
    data = b""
    while not data.endswith(b"\n"):
        chunk = os.read(fd, 1)
        if not chunk:
            break
        data += chunk
    return data.decode(errors="replace").strip()
