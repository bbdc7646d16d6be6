"""Fixtures of the observe tests: plans of real topologies and promtool.

promtool comes with Debian's prometheus package. Without it the promtool tests are skipped on a
developer machine and fail in CI (CI=true), where .ci/run installs it.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testbed.observe.promtool import PROMTOOL_ENV_HINT, find_promtool
from testbed.plan import Plan, make_plan
from testbed.topology import load_topology

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "topologies" / "default.yaml"
REFUSALS = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "refusals.yaml"


@pytest.fixture
def plan() -> Plan:
    return make_plan(load_topology(DEFAULT), "obs-unit", str(DEFAULT), "/tmp/obs-unit")


@pytest.fixture
def refusals_plan() -> Plan:
    return make_plan(load_topology(REFUSALS), "obs-unit-r", str(REFUSALS), "/tmp/obs-unit-r")


@pytest.fixture(scope="session")
def promtool() -> str:
    found = find_promtool()
    if found is None:
        message = f"promtool is missing: {PROMTOOL_ENV_HINT}"
        if os.environ.get("CI"):
            pytest.fail(f"{message} (CI must provide it: .ci/run installs prometheus)")
        pytest.skip(message)
    return found
