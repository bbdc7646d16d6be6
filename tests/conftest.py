"""Settings for every test run.

The host's network: its routes and firewall are recorded when the session starts and compared
when it ends (tests/host_network.py); any difference fails the session. No test, and no node
process a test starts on this host, may change them.

Hypothesis: no per-example deadline. Its default (200 ms) turns one stalled example on a busy
shared machine into a failure (DeadlineExceeded, or Flaky when the re-run is fast), and speed
is measured by the scripts in bench/, not asserted in tests. Explicit ``@settings`` in a test
still override the other values.
"""

from __future__ import annotations

import pytest
from hypothesis import settings

from tests import host_network

settings.register_profile("testbed", deadline=None, print_blob=True)
settings.load_profile("testbed")

_HOST_BEFORE = pytest.StashKey[host_network.HostNetwork]()


def pytest_sessionstart(session: pytest.Session) -> None:
    session.stash[_HOST_BEFORE] = host_network.snapshot()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    before = session.stash.get(_HOST_BEFORE, None)
    if before is None:
        return
    changed = before.differences(host_network.snapshot())
    if changed:
        reporter = session.config.pluginmanager.get_plugin("terminalreporter")
        lines = ["the test session changed this host's network:", *changed[:20]]
        if reporter is not None:
            reporter.write_sep("=", "host network changed", red=True)
            for line in lines:
                reporter.write_line(line)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
