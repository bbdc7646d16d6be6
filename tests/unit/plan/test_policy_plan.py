"""The planner's view of the policy: defaults, first match, attributes, and the nft ruleset."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.node.firewall.ruleset import parse, render, sources_from_routes
from testbed.plan import cross_domain
from testbed.plan.model import Plan
from testbed.plan.planner import make_plan
from testbed.topology import load_topology
from testbed.topology.schema import Topology

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def topo() -> Topology:
    return load_topology(ROOT / "topologies" / "two-operators.yaml")


@pytest.fixture(scope="module")
def plan(topo: Topology) -> Plan:
    return make_plan(topo, "pol-unit")


@pytest.mark.parametrize(
    ("source", "destination", "expected"),
    [
        ("thermostat-01", "co2-01", True),  # same domain, across PANs
        ("thermostat-01", "lamp-01", False),  # different domains
        ("lamp-01", "thermostat-01", False),
        ("occupancy-01", "lamp-02", True),  # the topology's exception
        ("occupancy-01", "tc-lighting", True),  # ... which lets its transfer bootstrap
        ("co2-01", "tc-lighting", False),  # trust centers: their own domain only
        ("tc-hvac", "lamp-01", False),
        ("backend", "lamp-01", True),
        ("backend-hvac", "lamp-01", False),  # the HVAC contractor's backend
        ("backend-hvac", "thermostat-02", True),
        ("backend-hvac", "tc-lighting", False),
        ("lamp-01", "vendor-cloud", True),  # firmware
        ("vendor-cloud", "lamp-01", False),
    ],
)
def test_decisions(topo: Topology, source: str, destination: str, expected: bool) -> None:
    rules = cross_domain.resolve(topo)
    assert cross_domain.allowed(rules, source, destination, 5683) is expected


def test_no_policies_no_filter(topo: Topology, plan: Plan) -> None:
    bare = topo.model_copy(update={"policies": None})
    assert cross_domain.resolve(bare) == []
    router = make_plan(bare, "pol-unit").node("br1")
    assert cross_domain.FORWARD_ATTRIBUTE not in router.config.attributes
    assert cross_domain.FORWARD_ATTRIBUTE in plan.node("br1").config.attributes


def test_ports_narrow_a_rule(topo: Topology) -> None:
    narrowed = topo.model_copy(
        update={
            "policies": [
                *(topo.policies or []),
                type((topo.policies or [])[0]).model_validate(
                    {"from": "thing:lamp-01", "to": "thing:thermostat-01", "ports": [5683]}
                ),
            ]
        }
    )
    rules = cross_domain.resolve(narrowed)
    assert cross_domain.allowed(rules, "lamp-01", "thermostat-01", 5683)
    assert not cross_domain.allowed(rules, "lamp-01", "thermostat-01", 22)
    assert not cross_domain.allowed(rules, "lamp-01", "thermostat-01", None)  # ICMP


def test_router_attribute_uses_data_addresses(plan: Plan) -> None:
    data = json.loads(plan.node("br1").config.attributes[cross_domain.FORWARD_ATTRIBUTE])
    deny = data["rules"][0]
    assert deny["label"] == "hvac-backend-not-lighting" and deny["allow"] is False
    assert deny["from"] == [plan.node("backend-hvac").data_address("internet")]
    lamp = plan.node("lamp-01").data_address("pan-floor2")
    tc = plan.node("tc-lighting").data_address("backbone")
    assert {lamp, tc} <= set(deny["to"])
    assert data["default"] == cross_domain.DEFAULT_DENY
    mgmt = {plan.node(n).config.address("mgmt") for n in ("lamp-01", "tc-lighting")}
    assert not mgmt & {a for r in data["rules"] for a in r["from"] + r["to"]}


def test_trust_centers_scope_the_restricted_backend(plan: Plan) -> None:
    serials = {n.name: n.config.attributes["serial"] for n in plan.nodes if n.role == "thing"}
    for tc in ("tc-hvac", "tc-lighting"):
        scope = json.loads(plan.node(tc).config.attributes[cross_domain.BACKENDS_ATTRIBUTE])
        assert set(scope) == {"backend-hvac"}  # backend is not restricted: not listed
        assert serials["thermostat-01"] in scope["backend-hvac"]
        assert serials["lamp-01"] not in scope["backend-hvac"]


def test_policy_attributes_are_no_metric_labels(plan: Plan) -> None:
    from testbed.node.metrics import info_labels

    assert not any(k.startswith("policy") for k in info_labels(plan.node("br1").config))
    assert not any(k.startswith("policy") for k in info_labels(plan.node("tc-hvac").config))


def test_ruleset_counts_each_deny_rule(plan: Plan) -> None:
    forward = parse(plan.node("br1").config.attributes[cross_domain.FORWARD_ATTRIBUTE])
    text = render(forward)
    assert forward.counters() == {
        "r_ipv4": "ipv4",
        "r_spoofed": "spoofed-source",
        "r0": "hvac-backend-not-lighting",
        "r_default": "default-deny",
    }
    # The guards come before the shortcut for established flows: no forged packet rides on one.
    lines = [line.strip() for line in text.splitlines()]
    assert lines.index('meta nfproto ipv4 counter name "r_ipv4" drop') < lines.index(
        "ct state established,related accept"
    )
    assert "meta nfproto ipv4 accept" not in text
    assert 'counter name "r0" drop' in text and text.rstrip().endswith("}")
    assert "ct state established,related accept" in text
    assert "hook forward" in text and "table inet tb_policy" in text


def test_ruleset_with_ports_and_empty_selectors() -> None:
    forward = parse(
        json.dumps(
            {
                "rules": [
                    {"label": "a", "allow": True, "from": ["fd00::1"], "to": [], "ports": []},
                    {
                        "label": "b",
                        "allow": False,
                        "from": ["fd00::1"],
                        "to": ["fd00::2"],
                        "ports": [5683, 22],
                    },
                ]
            }
        )
    )
    text = render(forward)
    assert "fd00::1 } ip6 daddr { } " not in text  # empty selector: no rule at all
    assert "th dport { 22, 5683 }" in text and 'counter name "r1" drop' in text


@pytest.mark.parametrize(
    "bad",
    [
        '{"rules": [{"label": "x", "allow": true, "from": ["10.0.0.1"], "to": []}]}',
        '{"rules": [{"label": "x", "allow": "yes", "from": [], "to": []}]}',
        '{"rules": [{"label": "x", "allow": true, "from": [], "to": [], "ports": [70000]}]}',
        '{"rules": [{"label": "x", "allow": true, "from": ["fd00::1; flush ruleset"], "to": []}]}',
        "not json",
    ],
)
def test_bad_attribute_is_refused(bad: str) -> None:
    from testbed.node.firewall.ruleset import PolicyConfigError

    with pytest.raises(PolicyConfigError):
        parse(bad)


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
def test_nft_accepts_the_ruleset(plan: Plan, tmp_path: Path) -> None:
    forward = parse(plan.node("br1").config.attributes[cross_domain.FORWARD_ATTRIBUTE])
    path = tmp_path / "policy.nft"
    path.write_text(render(forward))
    done = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("nft -c needs CAP_NET_ADMIN here")
    assert done.returncode == 0, done.stderr


def test_a_backend_polls_only_the_trust_centers_it_may_reach(plan: Plan) -> None:
    def domains(host: str) -> list[str]:
        raw = plan.node(host).config.attributes["trust-centers"]
        return [entry.split("=", 1)[0] for entry in raw.split(",")]

    assert domains("backend") == ["hvac", "lighting"]
    assert domains("backend-hvac") == ["hvac"]


ROUTES = """\
fd00:0:0:0::/64 dev eth0 proto kernel metric 256 pref medium
fd00:0:0:1::/64 dev eth1 proto kernel metric 256 pref medium
fd00:0:0:2::/64 dev eth2 proto kernel metric 256 pref medium
fd00:0:0:10::/64 dev lowpan0 proto kernel metric 256 pref medium
fd00:0:0:20::/64 via fd00:0:0:1::11 dev eth1 metric 1024 pref medium
fe80::/64 dev eth1 proto kernel metric 256 pref medium
fe80::/64 dev shp-backbone-i proto kernel metric 256 pref medium
multicast ff00::/8 dev eth1 table local proto kernel metric 256 pref medium
default via fd00::1 dev eth0 metric 1024 pref medium
"""


def test_per_interface_sources_come_from_the_routes() -> None:
    sources = dict(sources_from_routes(ROUTES, {"shp-backbone-i": "eth1"}))
    assert sources == {
        "eth0": ("fd00::/64",),
        "eth1": ("fd00:0:0:1::/64", "fd00:0:0:20::/64"),  # a foreign PAN via the backbone
        "eth2": ("fd00:0:0:2::/64",),
        "lowpan0": ("fd00:0:0:10::/64",),
        "shp-backbone-i": ("fd00:0:0:1::/64", "fd00:0:0:20::/64"),  # the shaper's ingress
        # (a link-local-only interface brings in nothing the router forwards)
    }
    text = render(dataclasses.replace(parse(_one_rule()), sources=tuple(sources.items())))
    assert 'iifname "lowpan0" ip6 saddr != { fd00:0:0:10::/64 } counter name "r_spoofed" drop' in (
        text
    )
    assert 'iifname != { "eth0", "eth1", "eth2", "lowpan0", "shp-backbone-i" }' in text


def _one_rule() -> str:
    rule = {"label": "x", "allow": False, "from": ["fd00::1"], "to": ["fd00::2"]}
    return json.dumps({"rules": [rule], "default": "default-deny"})
