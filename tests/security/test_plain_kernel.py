"""Every attempt of the table on a plain ipykernel on the host (ipykernel's own kernelspec):
each must get through there, or say why it cannot on this host. This proves every check of
test_container_kernel can fail: a refusal is measured against a real success."""
import pytest

from .attempts import GATE, all_attempts, judge_succeeded, skip_unless_applies

ATTEMPTS = all_attempts()
pytestmark = GATE


@pytest.mark.parametrize("a", ATTEMPTS, ids=[a.name for a in ATTEMPTS])
def test_gets_through_on_a_plain_kernel(a, sec_plain_kernel, sec_host):
    skip_unless_applies(a, sec_host["facts"], "plain")
    judge_succeeded(a, sec_plain_kernel.run(a))
