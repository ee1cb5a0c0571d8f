"""Every attempt of the table, from inside a real container kernel (the default kernelspec of
`container-kernel install`, started through jupyter_client): each must be refused."""
import pytest

from .attempts import GATE, all_attempts, judge_refused, skip_unless_applies
from .targets import contained_writes

ATTEMPTS = all_attempts()
pytestmark = GATE


@pytest.mark.parametrize("a", ATTEMPTS, ids=[a.name for a in ATTEMPTS])
def test_refused_in_the_container_kernel(a, sec_container_kernel, sec_host):
    skip_unless_applies(a, sec_host["facts"], "kernel")
    result = sec_container_kernel.run(a)
    judge_refused(a, result, "the container kernel")
    assert contained_writes(sec_host["facts"]) == [], "a file appeared in the host's write dir"


def test_the_table_is_large_enough():
    assert len(ATTEMPTS) >= 40
    for a in ATTEMPTS:
        assert len(a.doc) > 40 and "report(" in a.code, a.name
