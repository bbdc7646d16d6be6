"""bench/scale.py's building: N lamps of the default building over PANs of at most --per-pan
things, each PAN served by exactly one border router; the topology is valid and plans."""

from __future__ import annotations

import importlib.util
from collections import Counter
from types import ModuleType

import pytest

from testbed.contracts.node_config import Role
from testbed.plan import make_plan
from testbed.topology import parse_topology
from tests.unit.compose.conftest import ROOT


def scale_module() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_scale", ROOT / "bench" / "scale.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    ("things", "per_pan", "per_router", "pans", "routers"),
    [(1, 50, 2, 1, 1), (100, 50, 2, 2, 1), (101, 50, 2, 3, 2), (1000, 50, 2, 20, 10)],
)
def test_things_spread_over_pans_and_routers(
    things: int, per_pan: int, per_router: int, pans: int, routers: int
) -> None:
    text = scale_module().topology_text(things, per_pan, per_router)
    topology = parse_topology(text)
    assert (len(topology.pans), len(topology.border_routers)) == (pans, routers)
    served = Counter(p for router in topology.border_routers for p in router.pans)
    assert sorted(served) == sorted(p.name for p in topology.pans)
    assert set(served.values()) == {1}
    plan = make_plan(topology, "scale-unit")
    lamps = [n for n in plan.nodes if n.role == Role.THING]
    assert len(lamps) == things
    per = Counter(n.config.attributes["pan"] for n in lamps)
    assert max(per.values()) <= per_pan
