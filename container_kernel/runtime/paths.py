"""Path arithmetic shared by the mount plan and the cgroup drivers."""


def under(path, top):
    """path is top, or lies below it ("/usr/lib" is under "/usr"; "/usrx" is not)."""
    return path == top or path.startswith(top.rstrip("/") + "/")
