"""The proxy switch from topology to plan to minted PSKs: off changes nothing; on gives the
router its config, the things behind a hop-by-hop proxy their DTLS identity and a PSK each
(0600, in the thing and the router only), and the backend its routes and PSK."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from testbed import manufacture, rundir
from testbed.contracts import proxy as P
from testbed.plan import make_plan
from testbed.plan.model import Plan
from testbed.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[4]
FIXTURE = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "proxy.yaml"


def _attributes(plan: Plan, name: str) -> dict[str, str]:
    return next(n for n in plan.nodes if n.name == name).config.attributes


def test_without_proxy_no_node_gets_proxy_attributes() -> None:
    plan = make_plan(load_topology(ROOT / "topologies" / "default.yaml"), "office")
    for node in plan.nodes:
        keys = set(node.config.attributes)
        assert not keys & {P.ATTRIBUTE, P.BACKEND_ATTRIBUTE, P.THING_IDENTITY_ATTRIBUTE}


def test_the_plan_carries_the_switch(tmp_path: Path) -> None:
    plan = make_plan(load_topology(FIXTURE), "px")
    config = P.ProxyConfig.parse(_attributes(plan, "br1")[P.ATTRIBUTE])
    assert config.modes == (P.END_TO_END, P.HOP_BY_HOP) and config.tamper is False
    assert config.things == {_pan_address(plan): "lamp-01"}
    assert config.forwards_to(_pan_address(plan)) and not config.forwards_to("fd00::1")
    assert config.backends == ("backend",) and len(config.allowed_sources) == 1
    assert _attributes(plan, "lamp-01")[P.THING_IDENTITY_ATTRIBUTE] == "br1"
    (route,) = P.parse_routes(_attributes(plan, "backend")[P.BACKEND_ATTRIBUTE])
    assert route.router == "br1" and route.serves(_pan_address(plan))
    assert route.coap and route.coap.endswith(":5683") and route.coaps.endswith(":5684")  # type: ignore[union-attr]


def _pan_address(plan: Plan) -> str:
    from testbed.contracts.radio import RadioPanConfig

    attrs = _attributes(plan, "lamp-01")
    return RadioPanConfig.from_attribute("pan0", attrs["radio-pan0"]).address.split("/")[0]


def test_psks_are_minted_for_the_pairs_that_use_them(tmp_path: Path) -> None:
    plan = make_plan(load_topology(FIXTURE), "px")
    rundir.write_run_dir(plan, tmp_path, "")
    manufacture.mint(plan, tmp_path)
    nodes = tmp_path / "nodes"
    thing_key = (nodes / "lamp-01" / P.OPERATION_PSK).read_bytes()
    assert (nodes / "br1" / P.thing_psk("lamp-01")).read_bytes() == thing_key
    backend_key = (nodes / "backend" / P.router_psk("br1")).read_bytes()
    assert (nodes / "br1" / P.backend_psk("backend")).read_bytes() == backend_key
    assert len({thing_key, backend_key}) == 2 and len(thing_key) == 16
    for path in (nodes / "br1" / P.thing_psk("lamp-01"), nodes / "lamp-01" / P.OPERATION_PSK):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # Nobody else holds them.
    holders = {
        p.relative_to(nodes).parts[0]
        for p in nodes.rglob("*.psk")
        if p.read_bytes() in (thing_key, backend_key)
    }
    assert holders == {"lamp-01", "br1", "backend"}


def test_end_to_end_only_mints_nothing_and_serves_no_dtls(tmp_path: Path) -> None:
    text = FIXTURE.read_text().replace("modes: [end-to-end, hop-by-hop]", "modes: [end-to-end]")
    plan = make_plan(parse_topology(text, "proxy.yaml"), "px")
    assert P.THING_IDENTITY_ATTRIBUTE not in _attributes(plan, "lamp-01")
    (route,) = P.parse_routes(_attributes(plan, "backend")[P.BACKEND_ATTRIBUTE])
    assert route.coaps is None and route.coap is not None
    rundir.write_run_dir(plan, tmp_path, "")
    manufacture.mint(plan, tmp_path)
    assert not list((tmp_path / "nodes").rglob("operation.psk"))
    assert not (tmp_path / "nodes" / "br1" / "proxy").exists()


@pytest.mark.parametrize(
    ("proxy", "message"),
    [
        ("{modes: [sideways]}", "end-to-end. or .hop-by-hop"),
        ("{modes: []}", "at least 1"),
        ("{tamper: maybe}", "tamper"),
        ("{port: 1}", "port"),
    ],
)
def test_a_bad_proxy_key_is_refused_at_its_place(proxy: str, message: str) -> None:
    text = FIXTURE.read_text().replace(
        "proxy:\n      modes: [end-to-end, hop-by-hop]", f"proxy: {proxy}"
    )
    with pytest.raises(Exception, match=message) as caught:
        parse_topology(text, "proxy.yaml")
    assert "proxy" in str(caught.value)


def test_the_router_opens_the_proxy_ports_to_the_backends_only() -> None:
    from testbed.node.proxy import firewall

    text = firewall.render([5684, 5683], ["fd00:0:0:2::0003", "fd00:0:0:2::4"])
    assert "type filter hook input priority 0; policy accept;" in text
    assert "udp dport { 5683, 5684 } ip6 saddr { fd00:0:0:2::3, fd00:0:0:2::4 } accept" in text
    assert text.index("accept\n") < text.index('counter name "r_proxy" drop')
    assert "forward" not in text  # the cross-domain policy's chain is not touched
    # No backend at all: the ports are closed to everyone.
    assert "saddr" not in firewall.render([5683], [])
