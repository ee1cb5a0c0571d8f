"""Path arithmetic shared by the mount plan and the cgroup drivers, and the one rm -r."""

import os


def under(path, top):
    """path is top, or lies below it ("/usr/lib" is under "/usr"; "/usrx" is not)."""
    return path == top or path.startswith(top.rstrip("/") + "/")


def remove_tree_here(path):
    """rm -r of path (a dir or a file) that never crosses a mount point, and that two
    processes may run at once on the same tree: gone is done. PermissionError as it comes
    (rundir.remove_tree then tries from a user namespace: unshare_rm.py)."""
    try:
        entries = list(os.scandir(path))
    except FileNotFoundError:
        return
    except NotADirectoryError:
        _gone(os.unlink, path)
        return
    for entry in entries:
        if entry.is_dir(follow_symlinks=False):
            if os.path.ismount(entry.path):  # never delete through a mount point
                continue
            remove_tree_here(entry.path)
        else:
            _gone(os.unlink, entry.path)
    _gone(os.rmdir, path)


def _gone(remove, path):
    try:
        remove(path)
    except FileNotFoundError:
        pass
