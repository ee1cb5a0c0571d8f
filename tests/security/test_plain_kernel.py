"""Every attempt of the table on a plain ipykernel on the host (ipykernel's own kernelspec):
each must get through there, or say why it cannot on this host. This proves every check of
test_container_kernel can fail: a refusal is measured against a real success."""
import pytest

from .attempts import GATE, all_attempts, judge_succeeded

ATTEMPTS = all_attempts()
pytestmark = GATE


@pytest.mark.parametrize("a", ATTEMPTS, ids=[a.name for a in ATTEMPTS])
def test_gets_through_on_a_plain_kernel(a, sec_plain_kernel, sec_host):
    reason = a.skip and a.skip(sec_host["facts"], "plain")
    if reason:
        pytest.skip(reason)
    judge_succeeded(a, sec_plain_kernel.run(a))
