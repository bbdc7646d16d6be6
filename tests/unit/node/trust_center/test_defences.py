"""The trust center's flood defences as topology switches: the planner writes them, the role
reads them, things bootstrap through the Echo challenge, and the metrics say what happened."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from testbed.contracts.node_config import Interface, NodeConfig
from testbed.node.bootstrap.profile import Outcome
from testbed.node.errors import ConfigError
from testbed.node.logs import EventLog
from testbed.node.roles.base import RoleContext
from testbed.node.trust_center.defences import Defences, parse_defences
from testbed.node.trust_center.role import TrustCenterRole
from testbed.plan.planner import defence_attributes
from testbed.topology.schema import TrustCenterDefences

from .world import DOMAIN, World, port_of


def _role(world: World, attributes: dict[str, str]) -> TrustCenterRole:
    config = NodeConfig(
        run="unit",
        building="lab",
        node="tc-1",
        role="trust_center",
        interfaces=(Interface("mgmt", "::1/128"),),
        attributes={"domain": DOMAIN, "trusted-vendors": "acme", **attributes},
    )
    ctx = RoleContext(config, world.state, EventLog(logging.getLogger("test.tc")), [].append)
    return TrustCenterRole(ctx, material_root=world.material, bind=("::1", 0))


def test_topology_switches_reach_the_role() -> None:
    switches = TrustCenterDefences(return_routability=True, rate_limit_per_source=2.5)
    parsed = parse_defences(defence_attributes(switches))
    assert parsed == Defences(True, 2.5, 5, 64)
    assert parse_defences({}) == Defences()  # defaults: both off, fairness on
    with pytest.raises(ConfigError, match="defence-rate-limit-per-source"):
        parse_defences({"defence-rate-limit-per-source": "fast"})
    with pytest.raises(ConfigError, match="defence-return-routability"):
        parse_defences({"defence-return-routability": "yes please"})


def test_things_bootstrap_through_the_echo_challenge(world: World) -> None:
    things = [world.make_thing(f"SN-E{i}") for i in range(3)]
    world.write_material()
    metrics = CollectorRegistry()

    async def body() -> dict[str, Any]:
        role = _role(
            world,
            defence_attributes(
                TrustCenterDefences(return_routability=True, rate_limit_per_source=50)
            ),
        )
        role.register_metrics(metrics)
        await role.start()
        try:
            results = [await world.bootstrap(t, port_of(role)) for t in things]
            return {"results": results, "facts": role.facts()}
        finally:
            await role.stop()

    out = asyncio.run(body())
    assert all(r.outcome is Outcome.SUCCESS for r in out["results"]), out["results"]
    assert out["facts"]["defences"]["return_routability"] is True
    text = generate_latest(metrics).decode()
    assert 'testbed_tc_defence_enabled{defence="return_routability"} 1.0' in text
    assert 'testbed_tc_defence_enabled{defence="rate_limit_per_source"} 1.0' in text
    # One challenge and one verified message_1 per bootstrap; nothing refused by the limit.
    assert 'testbed_tc_handshake_gate_total{outcome="challenged"} 3.0' in text
    assert 'testbed_tc_handshake_gate_total{outcome="echo-verified"} 3.0' in text
    assert 'testbed_tc_handshake_gate_total{outcome="rate-limited"} 0.0' in text
    assert "testbed_tc_half_open_handshakes 0.0" in text
