"""The planner: deterministic, addresses inside their networks, routes through the right router."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import pytest

from testbed.errors import PlanError
from testbed.plan import make_plan
from testbed.plan.labels import NodeLabels
from testbed.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[3]
DEFAULT = ROOT / "topologies" / "default.yaml"


@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    return make_plan(load_topology(DEFAULT), "office")


def test_same_input_same_plan() -> None:
    a = make_plan(load_topology(DEFAULT), "office")
    b = make_plan(load_topology(DEFAULT), "office")
    assert a == b and a.digest() == b.digest()


def test_runs_get_different_prefixes() -> None:
    topo = load_topology(DEFAULT)
    assert make_plan(topo, "a").ula_prefix != make_plan(topo, "b").ula_prefix


def test_prefix_is_a_ula_48(plan) -> None:  # type: ignore[no-untyped-def]
    prefix = ipaddress.IPv6Network(plan.ula_prefix)
    assert prefix.prefixlen == 48 and prefix.subnet_of(ipaddress.IPv6Network("fd00::/8"))
    for net in plan.networks:
        assert ipaddress.IPv6Network(net.subnet6).subnet_of(prefix)


def test_every_node_of_the_topology_is_planned(plan) -> None:  # type: ignore[no-untyped-def]
    topo = load_topology(DEFAULT)
    assert sorted(n.name for n in plan.nodes) == sorted(topo.node_names())
    assert {n.name for n in plan.networks} == {"mgmt", "backbone", "internet", "pan-floor1"}


def test_addresses_are_unique_and_inside_their_networks(plan) -> None:  # type: ignore[no-untyped-def]
    nets = {n.name: ipaddress.IPv6Network(n.subnet6) for n in plan.networks}
    seen = set()
    for node in plan.nodes:
        for iface in node.config.interfaces:
            addr = ipaddress.IPv6Interface(iface.ipv6)
            assert addr.ip in nets[iface.network], (node.name, iface)
            assert addr.ip != ipaddress.IPv6Address(plan.network(iface.network).gateway6)
            assert addr.ip not in seen
            seen.add(addr.ip)


def test_networks_by_role(plan) -> None:  # type: ignore[no-untyped-def]
    by_role = {n.role: set(n.networks) for n in plan.nodes}
    assert by_role["border_router"] == {"mgmt", "backbone", "internet", "pan-floor1"}
    assert by_role["trust_center"] == {"mgmt", "backbone"}
    assert by_role["internet_host"] == {"mgmt", "internet"}
    assert by_role["thing"] == {"mgmt", "pan-floor1"}
    assert (
        plan.node("br1").config.forwarding
        and plan.node("br1").sysctls["net.ipv6.conf.all.forwarding"] == "1"
    )


def test_routes_cross_the_border_router(plan) -> None:  # type: ignore[no-untyped-def]
    br_node = plan.node("br1")
    br = br_node.config
    thing = plan.node("thermostat-01").config
    backend = plan.node("backend").config
    tc = plan.node("tc-facility").config
    assert {r.prefix for r in thing.routes} == {
        plan.network("backbone").subnet6,
        plan.network("internet").subnet6,
    }
    # default.yaml's PAN is a radio PAN: the next hop is the router's address on the medium.
    assert {r.via for r in thing.routes} == {br_node.data_address("pan-floor1")}
    assert br_node.data_address("pan-floor1") != br.address("pan-floor1")
    assert {r.via for r in backend.routes} == {br.address("internet")}
    assert {r.via for r in tc.routes} == {br.address("backbone")}
    pan_prefix = ipaddress.IPv6Interface(f"{plan.node('lamp-01').data_address('pan-floor1')}/64")
    assert str(pan_prefix.network) in {r.prefix for r in backend.routes}
    assert all(n.config.isolate for n in plan.nodes)  # no shortcut through the host
    assert not br.routes  # directly attached everywhere


def test_things_start_after_infrastructure(plan) -> None:  # type: ignore[no-untyped-def]
    infra = max(n.tier for n in plan.nodes if n.role != "thing")
    assert all(n.tier > infra for n in plan.nodes if n.role == "thing")


def test_labels_round_trip(plan) -> None:  # type: ignore[no-untyped-def]
    for node in plan.nodes:
        ident = NodeLabels.from_labels(node.labels)
        assert ident.to_labels() == node.labels
        assert (ident.run, ident.node, ident.role) == ("office", node.name, node.role)
    thing = NodeLabels.from_labels(plan.node("lamp-02").labels).attribute_map
    assert (
        thing["vendor"] == "lumina" and thing["domain"] == "facility" and thing["pan"] == "floor1"
    )


def test_node_config_round_trips_through_json(plan) -> None:  # type: ignore[no-untyped-def]
    import json

    from testbed.contracts.node_config import NodeConfig

    for node in plan.nodes:
        assert NodeConfig.from_dict(json.loads(node.config.to_json())) == node.config


def test_bad_run_name_is_refused() -> None:
    with pytest.raises(PlanError, match="run name"):
        make_plan(load_topology(DEFAULT), "Bad Name")


def test_two_pans_two_routers() -> None:
    text = (ROOT / "tests" / "fixtures" / "topologies" / "good" / "base.yaml").read_text()
    text = text.replace("  - name: p1\n", "  - name: p1\n  - name: p2\n", 1)
    text = text.replace("    pans: [p1]\n", "    pans: [p1]\n  - name: br2\n    pans: [p2]\n")
    text += "  - name: t2\n    vendor: acme\n    model: m1\n    domain: d1\n    pan: p2\n"
    plan = make_plan(parse_topology(text), "two")
    t1, t2 = plan.node("t1").config, plan.node("t2").config
    br1, br2 = plan.node("br1").config, plan.node("br2").config
    # t1 reaches p2 through its own router, which forwards to br2 over the backbone.
    assert {r.via for r in t1.routes} == {br1.address("pan-p1")}
    assert {(r.prefix, r.via) for r in br1.routes} == {
        (plan.network("pan-p2").subnet6, br2.address("backbone"))
    }
    assert {r.via for r in t2.routes} == {br2.address("pan-p2")}
    tc = plan.node("tc-d1").config
    via = {r.prefix: r.via for r in tc.routes}
    assert via[plan.network("pan-p1").subnet6] == br1.address("backbone")
    assert via[plan.network("pan-p2").subnet6] == br2.address("backbone")


def test_scale_settings_reach_the_plan_and_the_backend() -> None:
    """`observe: scrape_interval` goes into the plan (Prometheus and Grafana read it there),
    a backend's `read_interval` into its node attributes; without them, today's 5 s each."""
    default = make_plan(load_topology(DEFAULT), "office")
    assert default.scrape_interval_s == 5
    assert "read-interval" not in default.node("backend").config.attributes
    text = DEFAULT.read_text().replace(
        "    role: backend\n", "    role: backend\n    read_interval: 30s\n    poll_interval: 10s\n"
    )
    assert text != DEFAULT.read_text()
    plan = make_plan(parse_topology(text + "observe:\n  scrape_interval: 15s\n"), "office")
    assert plan.scrape_interval_s == 15
    attributes = plan.node("backend").config.attributes
    assert (attributes["read-interval"], attributes["poll-interval"]) == ("30", "10")


def test_campus_idles_with_longer_intervals() -> None:
    campus = load_topology(ROOT / "topologies" / "campus-1000.yaml")
    assert campus.observe.scrape_interval == 15
    backends = [h for h in campus.hosts if h.role == "backend"]
    assert [(h.read_interval, h.poll_interval) for h in backends] == [(60, 10)]
