"""`radios:` with ``protocol: slip``: what the planner makes of a real border router board (a
routed /64 of its own, the device passed into the PAN's router, routes through that router on
every other node, the board's prefix as a member of its domain in the cross-domain policy) and
what the schema refuses, naming the key."""

from __future__ import annotations

import ipaddress
import json

import pytest

from testbed.contracts.radio import radio_pans
from testbed.errors import TopologyError
from testbed.node.firewall import ruleset
from testbed.plan import addressing
from testbed.plan.planner import make_plan
from testbed.topology import parse_topology
from tests.unit.node.radio.test_radios_topology import topology

SLIP = """
    radios:
      - device: /dev/serial/by-id/usb-RIOT_border_router-if00
        protocol: slip
        station: board-1
        domain: facility
"""
POLICIES = (
    "\npolicies:\n  - {name: no-backend, from: host:backend, to: thing:lamp-01, allow: false}\n"
)


def test_a_slip_board_gets_a_routed_prefix_through_the_router_of_its_pan() -> None:
    plan = make_plan(parse_topology(topology(SLIP)), "t")
    nodes = {n.name: n for n in plan.nodes}
    br = nodes["br1"]
    assert br.devices == ("/dev/serial/by-id/usb-RIOT_border_router-if00",)
    [pan] = radio_pans(dict(br.config.attributes))
    [radio] = pan.radios
    prefix = ipaddress.IPv6Network(radio["prefix"])
    assert prefix.prefixlen == 64 and radio["protocol"] == "slip"
    assert prefix.network_address.packed[6:8] == addressing.SLIP_BASE.to_bytes(2, "big")
    assert radio["station"] == "board-1" and radio["domain"] == "facility"
    # Every node but br1 reaches the board's prefix through br1 (its PAN or backbone address).
    for name, node in nodes.items():
        routes = {r.prefix: r.via for r in node.config.routes}
        if name == "br1":
            assert str(prefix) not in routes  # its own: the uplink's TUN carries it
        else:
            assert str(prefix) in routes, name
    tc_routes = {r.prefix: r.via for r in nodes["tc-facility"].config.routes}
    br_backbone = next(i.ipv6 for i in br.config.interfaces if i.network == "backbone").split("/")[
        0
    ]
    assert tc_routes[str(prefix)] == br_backbone


def test_the_boards_prefix_is_in_its_domains_policy_rules() -> None:
    plan = make_plan(parse_topology(topology(SLIP) + POLICIES), "t")
    br = next(n for n in plan.nodes if n.name == "br1")
    prefix = radio_pans(dict(br.config.attributes))[0].radios[0]["prefix"]
    raw = dict(br.config.attributes)["policy-forward"]
    rules = {r["label"]: r for r in json.loads(raw)["rules"]}
    assert prefix in rules["default-domain"]["from"] and prefix in rules["default-domain"]["to"]
    assert prefix in rules["default-backend"]["to"]
    # The node parses it and renders an nftables set with the prefix in it.
    policy = ruleset.parse(raw)
    assert prefix in ruleset.render(policy)
    with pytest.raises(ruleset.PolicyConfigError):
        ruleset.parse(raw.replace(prefix, prefix.replace("::/64", "::1/64")))


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (SLIP.replace("domain: facility", "loss_model: true"), "loss_model"),
        (SLIP.replace("protocol: slip", "protocol: spinel"), "only a SLIP uplink"),
        (SLIP.replace("domain: facility", "domain: nowhere"), "unknown domain 'nowhere'"),
        (SLIP.replace("station: board-1", "station: lamp-01"), "a node's name"),
    ],
)
def test_bad_slip_radios_are_refused_with_the_key(extra: str, message: str) -> None:
    with pytest.raises(TopologyError, match=message):
        parse_topology(topology(extra))
