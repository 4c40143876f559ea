"""How ./bin/test spreads the suite over the cores (pytest-xdist, by this file's scheduler).

- The end-to-end tests (tests/e2e) run in four parts, each in one worker, one module after
  another: the modules of a part share its running clusters (tests/e2e/conftest.py), started
  once per worker.
- The multihost tests (tests/multihost) run as one part: one set of test hosts at a time.
- Every other test file runs whole in one worker: some files hold state for their own tests
  (tests/fuzz/test_openapi_fuzz.py checks the fuzz runs of the same session).

The fuzz tallies (tests/fuzz/helpers.TALLY) are counted in the workers and summed here for the
summary line, so it says the same with or without workers.
"""

from collections import Counter

import pytest

from tests.fuzz.helpers import TALLY

E2E = "e2e"
MULTIHOST = "multihost"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # schemathesis gives every operation's test of one function the function's node id
        # (`test_enrollment`, 41 times), and xdist schedules by node id: it would run one of
        # them. Each gets the id pytest gives a parametrized test: `test_enrollment[GET /courses]`
        # (pytest 9 keeps a node's id in `_id`).
        if item.parent is not None and not item.nodeid.endswith(item.name):
            item._id = item.parent.id.child(item.name)


# The end-to-end modules that run in the second end-to-end worker: those about sign-in and
# sessions, whose clusters have settings of their own (short token lifetimes, the abuse limits as
# shipped, auth nodes alone). The others share the default whole cluster in the first.
E2E_SESSIONS = {
    "test_accounts.py",
    "test_auth_gateway.py",
    "test_replication.py",
    "test_throttle.py",
}
# The browser modules, in a third and a fourth part, each starting the cluster they share (short
# token lifetimes): they spend much of their time waiting on Chromium and on the app's timers
# (the catalog's live counts, the gateway's 2 s cache), time the other workers' tests use. As
# one part they took 320 s of a 372 s suite, and ended last.
E2E_BROWSER = {
    "test_web_app.py": "e2e browser",
    "test_office_web.py": "e2e browser staff",
    "test_people_web.py": "e2e browser staff",
}

# The long parts, longest first, in worker seconds of a run with three workers: e2e 200, the
# multihost tests 170 (three hosts brought up for each of 7 tests), e2e browser 150, e2e browser
# staff 130, e2e sessions 90.
LONG_PARTS = [E2E, MULTIHOST, "e2e browser", "e2e browser staff", "e2e sessions"]


def scope_of(nodeid: str) -> str:
    """The part of the suite a node belongs to, which runs whole in one worker, module after
    module: each test file, and the end-to-end tests in four parts (E2E_SESSIONS, the two of
    E2E_BROWSER and the rest), so that each part starts each cluster it needs once."""
    path = nodeid.split("::", 1)[0]
    if path.startswith("tests/multihost/"):
        return MULTIHOST  # one set of test hosts at a time: their prefix and addresses are fixed
    if not path.startswith("tests/e2e/"):
        return path
    module = path.rsplit("/", 1)[1]
    if module in E2E_BROWSER:
        return E2E_BROWSER[module]
    return "e2e sessions" if module in E2E_SESSIONS else E2E


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    from xdist.scheduler import LoadScopeScheduling

    class BySuitePart(LoadScopeScheduling):
        """xdist hands out the parts largest first by their number of tests, one at a time to
        each worker as it runs low. The end-to-end parts and the multihost tests, the longest
        by far in time (a few minutes each, tests few), go first, longest first (LONG_PARTS):
        handed out after files of many short tests, the last of them began a minute and a half
        late, and its worker ended last."""

        first_handed_out = False

        def _split_scope(self, nodeid: str) -> str:
            return scope_of(nodeid)

        def _assign_work_unit(self, node) -> None:
            if not self.first_handed_out:
                self.first_handed_out = True
                for part in reversed(LONG_PARTS):
                    if part in self.workqueue:
                        self.workqueue.move_to_end(part, last=False)
            super()._assign_work_unit(node)

    return BySuitePart(config, log)


def pytest_sessionfinish(session: pytest.Session) -> None:
    workeroutput = getattr(session.config, "workeroutput", None)
    if workeroutput is not None:  # an xdist worker: hand the tallies to the controller
        workeroutput["tally"] = dict(TALLY)


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error) -> None:  # the controller, as each worker ends
    TALLY.update(Counter(getattr(node, "workeroutput", {}).get("tally", {})))


def pytest_terminal_summary(terminalreporter) -> None:
    """What the fuzz and abuse tests sent (tests/fuzz, tests/e2e/test_gateway_fuzz.py)."""
    for service in ("enrollment", "auth"):
        if TALLY[f"fuzz {service} cases"]:
            terminalreporter.write_line(
                f"fuzz: {service}: {TALLY[f'fuzz {service} cases']} schemathesis cases,"
                f" {TALLY[f'fuzz {service} requests']} requests,"
                f" {TALLY[f'fuzz {service} operations']} operations"
            )
    if TALLY["abuse enrollment"] or TALLY["abuse auth"]:
        terminalreporter.write_line(
            f"abuse: {TALLY['abuse enrollment'] + TALLY['abuse auth']} abusive inputs"
            f" (enrollment {TALLY['abuse enrollment']}, auth {TALLY['abuse auth']}): each a 4xx"
            f" with the database unchanged, or ({TALLY['abuse stored verbatim']} of them) plain"
            " text stored verbatim; no 5xx"
        )
    if TALLY["gateway fuzz requests"]:
        terminalreporter.write_line(
            f"gateway fuzz: {TALLY['gateway fuzz enrollment cases']} enrollment cases (each as"
            f" 3 roles and without a token), {TALLY['gateway fuzz auth cases']} auth cases,"
            f" {TALLY['gateway fuzz requests']} requests through KrakenD;"
            f" {TALLY['gateway fuzz control characters']} control characters in a path got"
            " the gateway's own 400 bad_path"
        )
