"""Plans of the repository's topologies, made for a run directory under tmp_path."""

from __future__ import annotations

from pathlib import Path

import pytest

from testbed.plan import make_plan
from testbed.plan.model import Plan
from testbed.topology import load_topology

ROOT = Path(__file__).resolve().parents[3]
DEFAULT_TOPOLOGY = ROOT / "topologies" / "default.yaml"


def plan_for(topology: Path, run: str, run_dir: Path) -> Plan:
    return make_plan(load_topology(topology), run, str(topology), str(run_dir))


@pytest.fixture
def default_plan(tmp_path: Path) -> Plan:
    return plan_for(DEFAULT_TOPOLOGY, "comp-unit", tmp_path / "runs" / "comp-unit")
