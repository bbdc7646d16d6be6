"""Packed things in the plan, the schema and the host side's view of a thing host's labels."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from testbed.contracts.node_config import CONTROL_PORT, METRICS_PORT, Attr
from testbed.contracts.radio import carrier_endpoint, ext_from_short, radio_pans
from testbed.engines import packed
from testbed.engines.base import NodeStatus
from testbed.errors import TopologyError
from testbed.node.radio.admission import STATION_HIJACK, Admitted, Stations
from testbed.node.radio.zep import ZEP_PORT
from testbed.plan import make_plan
from testbed.plan.model import Plan
from testbed.topology import load_topology, parse_topology

ROOT = Path(__file__).resolve().parents[3]
CAMPUS = ROOT / "topologies" / "campus-1000.yaml"
DEFAULT = ROOT / "topologies" / "default.yaml"


@pytest.fixture(scope="module")
def campus() -> Plan:
    return make_plan(load_topology(CAMPUS), "pk-unit")


def test_campus_has_1000_things_in_20_thing_hosts(campus: Plan) -> None:
    things = [n for n in campus.nodes if n.role == "thing"]
    hosts = [n for n in campus.nodes if n.role == "thing_host"]
    assert len(things) == 1000 and len(hosts) == 20
    assert all(n.packed_in for n in things)
    for host in hosts:
        members = campus.members(host)
        assert 1 <= len(members) <= 50
        assert host.config.attributes["things"] == ",".join(m.name for m in members)
    assert len(campus.containers()) == 25  # 2 routers, 2 trust centers, backend, hosts


def test_each_packed_thing_has_its_own_ports_and_addresses(campus: Plan) -> None:
    hosts = {n.name: n for n in campus.nodes if n.role == "thing_host"}
    pan_addresses, shorts = set(), set()
    for host in hosts.values():
        members = campus.members(host)
        ports = [(m.config.control_port, m.config.metrics_port) for m in members]
        assert ports == [(CONTROL_PORT + i, METRICS_PORT + i) for i in range(1, len(members) + 1)]
        for i, member in enumerate(members, 1):
            # Reached at its host's mgmt and carrier addresses ...
            assert member.config.interfaces == host.config.interfaces
            (pan,) = radio_pans(member.config.attributes)
            assert pan.local_port == ZEP_PORT + i
            # ... and at its own PAN address, which its CoAP server binds.
            assert member.config.attributes["coap-bind"] == str(pan.ip)
            assert member.config.attributes[Attr.THING_HOST] == host.name
            pan_addresses.add(pan.ip)
            shorts.add((pan.pan, pan.short))
    assert len(pan_addresses) == 1000 and len(shorts) == 1000


def test_the_medium_binds_each_packed_station_to_its_own_port(campus: Plan) -> None:
    router = campus.node("br-north")
    pan = next(p for p in radio_pans(router.config.attributes) if p.pan == "a")
    lamp = campus.node("lamp-a-007")
    (own,) = radio_pans(lamp.config.attributes)
    host_carrier = campus.node("lamp-a-pack-01").config.address("pan-a")
    assert carrier_endpoint(pan.carriers["lamp-a-007"], pan.port) == (host_carrier, own.local_port)
    assert pan.names[f"{own.short:04x}"] == "lamp-a-007"
    assert "lamp-a-pack-01" not in pan.names.values()  # a thing host is no station
    stations = Stations(
        {bytes.fromhex(k): v for k, v in pan.names.items()},
        16,
        {n: carrier_endpoint(v, pan.port) for n, v in pan.carriers.items()},
    )
    ext = ext_from_short(own.short)
    # A packmate's port (same address) may not speak for it; its own port may.
    assert stations.admit((host_carrier, own.local_port + 1), ext, hello=True) == STATION_HIJACK
    admitted = stations.admit((host_carrier, own.local_port), ext, hello=True)
    assert isinstance(admitted, Admitted) and admitted.name == "lamp-a-007"


def test_an_unpacked_topology_plans_as_before() -> None:
    plan = make_plan(load_topology(DEFAULT), "office")
    assert not any(n.packed_in for n in plan.nodes)
    assert all(n.config.control_port == CONTROL_PORT for n in plan.nodes)
    router = plan.node("br1")
    assert "local_port" not in router.config.attributes["radio-floor1"]
    assert "[" not in router.config.attributes["radio-floor1"].split('"carriers"')[1][:60]


def _with(thing: dict[str, Any], pan_medium: str = "radio") -> str:
    text = DEFAULT.read_text().replace("medium: radio", f"medium: {pan_medium}")
    lamp = (
        '  - name: "lamp-{n:02d}"\n    count: 3\n    vendor: lumina\n    model: lamp-e27\n'
        "    domain: facility\n    pan: floor1\n"
    )
    extra = "".join(f"    {k}: {v}\n" for k, v in thing.items())
    return text.replace(lamp, lamp + extra)


def test_schema_accepts_pack_and_names_the_key_of_its_errors() -> None:
    topology = parse_topology(_with({"pack": 2}))
    lamps = next(t for t in topology.things if t.pack)
    assert lamps.packs() == [
        ("lamp-pack-01", ["lamp-01", "lamp-02"]),
        ("lamp-pack-02", ["lamp-03"]),
    ]
    with pytest.raises(TopologyError, match=r"things\[2\]\.pack.*medium: radio"):
        parse_topology(_with({"pack": 2}, pan_medium="bridge"))
    with pytest.raises(TopologyError, match=r"things\[2\]\.pack"):
        parse_topology(_with({"pack": 0}))


def test_a_thing_host_name_may_not_collide() -> None:
    text = _with({"pack": 2}).replace("name: smoke-01", "name: lamp-pack-01")
    with pytest.raises(TopologyError, match="lamp-pack-01"):
        parse_topology(text)


def test_a_thing_host_container_stands_for_each_of_its_things(campus: Plan) -> None:
    host = campus.node("thermo-b-pack-02")
    status = NodeStatus(
        run="pk-unit",
        node=host.name,
        role=host.role,
        kind="",
        state="running",
        resource=host.resource,
        image="img",
        addresses={"mgmt": host.config.address("mgmt")},
        attributes={},
    )
    entries = packed.expand(status, host.labels)
    names = [m.name for m in campus.members(host)]
    assert sorted(e.node for e in entries) == sorted(names)
    first = next(e for e in entries if e.node == names[0])
    assert first.role == "thing" and first.resource == host.resource
    assert first.attributes[Attr.DOMAIN] == "hvac" and first.attributes[Attr.PAN] == "b"
    assert packed.control_port(first) == CONTROL_PORT + 1
    assert packed.exec_environment(host.labels, names[1]) == {
        packed.CONTROL_PORT_ENV: str(CONTROL_PORT + 2)
    }
    assert packed.exec_environment(host.labels, "tc-hvac") == {}
    assert packed.expand(status, {}) == []


class _States:
    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        self.asked.append(node)
        answer: dict[str, Any] | None = self.answers.get(node)
        return answer


def test_a_pack_is_asked_once_for_all_its_things() -> None:
    source = _States(
        {
            "pack-1": {"packed": {"a": {"state": {"lifecycle": "operational"}}, "b": {}}},
            "solo": {"state": {"lifecycle": "installed"}},
        }
    )
    states = packed.node_states(
        source, "r", ["a", "b", "c", "solo"], {"a": "pack-1", "b": "pack-1", "c": "pack-2"}
    )
    assert sorted(source.asked) == ["pack-1", "pack-2", "solo"]
    assert states["a"] == {"state": {"lifecycle": "operational"}}
    assert states["c"] is None  # its host did not answer
    assert states["solo"] == {"state": {"lifecycle": "installed"}}


def test_pack_addresses_are_inside_the_pan(campus: Plan) -> None:
    for node in campus.nodes:
        if node.packed_in:
            (pan,) = radio_pans(node.config.attributes)
            network = campus.network(f"pan-{pan.pan}")
            assert ipaddress.IPv6Address(node.config.address(f"pan-{pan.pan}")) in (
                ipaddress.IPv6Network(network.subnet6)
            )
