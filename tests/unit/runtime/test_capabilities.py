"""Which capabilities a container keeps: docker's rule for --cap-add and --cap-drop."""
from container_kernel.runtime import capabilities as C


def test_the_default_set_plus_adds_less_drops():
    assert C.kept() == tuple(n for n in C.NAMES if n in C.DEFAULT)
    kept = C.kept(add=["sys_admin"], drop=["chown"])
    assert "sys_admin" in kept and "chown" not in kept and "kill" in kept


def test_drop_all_starts_from_none_and_adds_still_add():
    every = C.parse(["ALL"], "--cap-drop")
    assert C.kept(drop=every) == ()
    assert C.kept(add=["sys_chroot", "chown"], drop=every) == ("chown", "sys_chroot")


def test_add_all_keeps_everything_but_the_drops():
    every = C.parse(["ALL"], "--cap-add")
    kept = C.kept(add=every, drop=["sys_module"])
    assert "sys_admin" in kept and "sys_module" not in kept and len(kept) == len(C.NAMES) - 1
