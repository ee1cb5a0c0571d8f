"""`container-kernel install --default`: the kernel Jupyter starts when none is named.

jupyter_server reads MappingKernelManager.default_kernel_name from jupyter_server_config.json
in each of its config dirs (`jupyter --paths`). The jupyter_server_config.d/ folders beside
those files hold extension switches only (jupyter_server reads ServerApp.jpserver_extensions
from them, and nothing else), so a default written there would be silently ignored.
The file may hold the user's own settings: it is merged, not replaced.
"""

import json
import os
import sys

from ..runtime.errors import ContainerError, usage

FILE = "jupyter_server_config.json"
SECTION, KEY = "MappingKernelManager", "default_kernel_name"


def config_dir(where):
    """The etc/jupyter dir that goes with where the kernelspec went (None, --user,
    --sys-prefix or --prefix DIR), as `jupyter --paths` lists them."""
    from jupyter_core.paths import SYSTEM_CONFIG_PATH, jupyter_config_dir
    if where is None:
        # like the kernelspec: the system dir as root, the user's own otherwise
        return SYSTEM_CONFIG_PATH[0] if os.geteuid() == 0 else jupyter_config_dir()
    flag, value = where
    if flag == "--user":
        return jupyter_config_dir()
    return os.path.join(sys.prefix if flag == "--sys-prefix" else value, "etc", "jupyter")


def read(path):
    """A config file's JSON object ({} when there is none); a broken one is an error,
    never overwritten."""
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as e:
        raise usage(f"install: --default: cannot read {path}: {e}; fix or remove it") from None
    if not isinstance(data, dict) or not isinstance(data.get(SECTION, {}), dict):
        raise usage(f"install: --default: {path} is not a Jupyter config (a JSON object of "
                    "sections); fix or remove it")
    return data


def set_default(where, name):
    """Write default_kernel_name = name into where's jupyter_server_config.json; its path."""
    path = os.path.join(config_dir(where), FILE)
    data = read(path)
    data.setdefault(SECTION, {})[KEY] = name
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(os.path.dirname(path), 0o755, exist_ok=True)
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.chmod(tmp, 0o644)  # a system-wide default is read by every user's server
        os.replace(tmp, path)  # whole or not at all: a server may be reading it
    except OSError as e:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise usage(f"install: --default: cannot write {path}: {e.strerror}; "
                    "try --user or --sys-prefix") from None
    return path


def shadowed_by(path, name):
    """(file, other name) from a config dir before path's in jupyter's search path that
    names another default kernel (it wins), or None. JSON files only: a .py config is code."""
    from jupyter_core.paths import jupyter_config_path
    mine = os.path.realpath(os.path.dirname(path))
    for d in jupyter_config_path():
        if os.path.realpath(d) == mine:
            return None
        other = os.path.join(d, FILE)
        try:
            theirs = read(other).get(SECTION, {}).get(KEY)
        except ContainerError:  # someone else's broken file: jupyter_server will say so
            continue
        if theirs and theirs != name:
            return other, theirs
    return None
