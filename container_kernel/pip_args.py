"""Which pip arguments a notebook's %pip may pass to its build sibling: one list, both sides.

The kernel checks them for an early one-line error (inside/pip_magic.py); the launcher
checks them again, as the authority (kernel/packages.py): the words came from the
container. What is allowed is what chooses packages and how pip finds them; what is
refused is what would choose *where* they go (the layer is the only place), read a
file of the kernel's (the build sibling sees none), or hand options to a build backend.
"""

import re

ACTIONS = ("install", "uninstall")
FLAGS = {"install": {"-U", "--upgrade", "--no-deps", "--pre", "--force-reinstall", "-I",
                     "--ignore-installed", "--no-build-isolation", "--prefer-binary", "--no-index",
                     "--no-cache-dir", "--no-compile", "-q", "--quiet", "-v", "--verbose",
                     "--isolated"},
         "uninstall": {"-y", "--yes", "-q", "--quiet", "-v", "--verbose"}}
VALUED = {"install": {"-i": "url", "--index-url": "url", "--extra-index-url": "url",
                      "-f": "url", "--find-links": "url", "--only-binary": "names",
                      "--no-binary": "names", "--upgrade-strategy": ("only-if-needed", "eager"),
                      "--timeout": "number", "--retries": "number", "--trusted-host": "host"},
          "uninstall": {}}
REFUSED = {"-t": "the layer is the only target", "--target": "the layer is the only target",
           "--prefix": "the layer is the only prefix", "--root": "the layer is the only root",
           "--user": "the layer is this kernel's user site", "-e": "an editable install needs a local path",
           "--editable": "an editable install needs a local path",
           "-r": "a requirements file is the kernel's, the build sibling sees none of its files",
           "--requirement": "a requirements file is the kernel's, the build sibling sees none of its files",
           "-c": "a constraints file is the kernel's, the build sibling sees none of its files",
           "--constraint": "a constraints file is the kernel's, the build sibling sees none of its files",
           "--src": "a source dir is a host path", "--config-settings": "build backend options are not passed",
           "-C": "build backend options are not passed", "--global-option": "build backend options are not passed",
           "--break-system-packages": "the kernel's own Python is never written"}
# A requirement: NAME[extras] with version clauses and markers-free; or an http(s) URL of one.
REQUIREMENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}(\[[A-Za-z0-9._,-]{1,200}\])?"
                         r"( ?(==|!=|>=|<=|~=|===|<|>) ?[A-Za-z0-9.*+!_-]{1,64}"
                         r"( ?, ?(==|!=|>=|<=|~=|<|>) ?[A-Za-z0-9.*+!_-]{1,64}){0,8})?")
URL = re.compile(r"https?://[A-Za-z0-9._~:/?#\[\]@!$&'()*+,;=%-]{1,2000}")
HOST = re.compile(r"[A-Za-z0-9.-]{1,253}(:[0-9]{1,5})?")
NAMES = re.compile(r":all:|:none:|[A-Za-z0-9._-]{1,100}(,[A-Za-z0-9._-]{1,100}){0,50}")
MAX_WORDS = 100


class PipArgsError(ValueError):
    """One line: the word refused and what is allowed."""


def check(words):
    """%pip's words ("install", "-U", "x") -> (action, [checked args]); PipArgsError otherwise."""
    words = list(words)
    if not words:
        raise PipArgsError("give a command: %pip install PACKAGE... or %pip uninstall PACKAGE...")
    action, rest = words[0], words[1:]
    if action not in ACTIONS:
        raise PipArgsError(f"{str(action)[:40]!r}: this kernel's %pip runs install and uninstall "
                           "(in a build sibling); other commands run as IPython's %pip")
    if len(rest) > MAX_WORDS:
        raise PipArgsError(f"{len(rest)} arguments: at most {MAX_WORDS}")
    out, specs, i = [], 0, 0
    while i < len(rest):
        word = rest[i]
        if not isinstance(word, str):
            raise PipArgsError("every argument must be a string")
        name, eq, value = word.partition("=") if word.startswith("--") else (word, "", "")
        if name in REFUSED:
            raise PipArgsError(f"{name} is refused: {REFUSED[name]}")
        if name in FLAGS[action] and not eq:
            out.append(name)
        elif name in VALUED[action]:
            if not eq:
                i += 1
                if i >= len(rest):
                    raise PipArgsError(f"{name} needs a value")
                value = rest[i]
            _value(name, value, VALUED[action][name])
            out += [name, value]
        elif word.startswith("-"):
            allowed = sorted(FLAGS[action] | set(VALUED[action]))
            raise PipArgsError(f"{word[:60]!r} is not an option %pip {action} passes on: use "
                               + ", ".join(allowed))
        elif REQUIREMENT.fullmatch(word) or (action == "install" and URL.fullmatch(word)):
            out.append(word)
            specs += 1
        else:
            raise PipArgsError(f"{word[:60]!r} is not a package: use NAME, NAME==VERSION, NAME[extra]>=V "
                               "or an http(s):// URL (the build sibling sees no local path)")
        i += 1
    if not specs:
        raise PipArgsError(f"%pip {action}: name at least one package")
    if action == "uninstall" and "-y" not in out and "--yes" not in out:
        out.append("-y")  # the build sibling has no stdin to answer pip's question
    return action, out


def _value(name, value, kind):
    ok = {"url": URL.fullmatch, "host": HOST.fullmatch, "names": NAMES.fullmatch,
          "number": lambda v: v.isdigit() and len(v) < 5}.get(kind, lambda v: v in kind)(value)
    if not ok:
        want = {"url": "an http(s):// URL", "host": "a host name", "number": "a whole number",
                "names": "package names separated by commas, :all: or :none:"}.get(
                    kind, " or ".join(kind) if isinstance(kind, tuple) else kind)
        raise PipArgsError(f"{name} {str(value)[:60]!r}: give {want}")
