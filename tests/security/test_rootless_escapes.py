"""The whole table from a rootless `container-kernel run`, as the user tests/rootless creates
(its fixture and helper, reused): root inside is that user outside, in a user namespace.
Where rootless differs, the attempt says so (Attempt.rootless) or skips with the reason."""
import pytest

from tests.helpers import CK
from tests.rootless.test_rootless import as_user, user  # noqa: F401  (user is a fixture)

from .attempts import GATE, all_attempts, batch_argv, judge_batch, parse_batch, skip_unless_applies
from .targets import ENV_VAR, contained_writes, run_limits

ATTEMPTS = all_attempts()
pytestmark = GATE


@pytest.fixture(scope="module")
def sec_rootless_results(user, sec_host):  # noqa: F811
    host = sec_host["facts"]
    # as_user starts from a clean environment: give the launcher the marker the server has.
    r = as_user(user, CK, "run", *run_limits(host), "--", *batch_argv(ATTEMPTS, host, "rootless"),
                timeout=180, env={ENV_VAR: host["token"]})
    assert r.returncode == 0, r.stderr[-2000:]
    return parse_batch(r.stdout)


@pytest.mark.parametrize("a", ATTEMPTS, ids=[a.name for a in ATTEMPTS])
def test_refused_in_a_rootless_container(a, sec_rootless_results, sec_host):
    skip_unless_applies(a, sec_host["facts"], "rootless")
    mode = "a rootless container" + (f" ({a.rootless})" if a.rootless else "")
    judge_batch(a, sec_rootless_results, sec_host["facts"], mode)
    assert contained_writes(sec_host["facts"]) == []
