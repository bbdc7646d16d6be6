"""Placement on a swarm: topology key -> node label -> swarm host, without a swarm."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import pytest

from testbed.engines.swarm import IPV4_SPACE, ipv4_subnet
from testbed.engines.swarm_material import material_tar
from testbed.engines.swarm_placement import SwarmNode, choose, matches
from testbed.errors import InputError, TopologyError
from testbed.plan import make_plan
from testbed.plan.labels import PLACEMENT, NodeLabels
from testbed.topology import parse_topology

ROOT = Path(__file__).resolve().parents[3]
MINIMAL = (ROOT / "topologies" / "minimal.yaml").read_text()


def _node(name: str, role: str = "worker", **labels: str) -> SwarmNode:
    return SwarmNode(id=f"id-{name}", hostname=name, role=role, ready=True, labels=labels)


def test_constraints_follow_swarm_semantics() -> None:
    east = _node("h1", zone="east")
    assert matches(east, "node.labels.zone==east")
    assert not matches(east, "node.labels.zone==west")
    assert matches(east, "node.labels.zone!=west")
    # != holds where the label is missing; == does not
    assert matches(_node("h2"), "node.labels.zone!=east")
    assert not matches(_node("h2"), "node.labels.zone==east")
    assert matches(east, "node.hostname==h1") and matches(east, "node.role==worker")
    with pytest.raises(InputError, match="not a Swarm constraint"):
        matches(east, "zone=east")


def test_choose_spreads_a_group_over_the_fitting_hosts_only() -> None:
    hosts = [_node("m", "manager"), _node("a", zone="east"), _node("b", zone="east")]
    wanted = {f"lamp-{i}": "node.labels.zone==east" for i in range(4)} | {"br1": ""}
    chosen = choose(wanted, hosts)
    assert {chosen[f"lamp-{i}"].hostname for i in range(4)} == {"a", "b"}
    assert sorted(chosen[f"lamp-{i}"].hostname for i in range(4)) == ["a", "a", "b", "b"]
    assert chosen["br1"].hostname == "m"  # unconstrained: the manager comes first


def test_no_fitting_host_names_node_and_constraint() -> None:
    down = SwarmNode(id="x", hostname="x", role="worker", ready=False, labels={"zone": "west"})
    with pytest.raises(InputError, match=r"node\.labels\.zone==west.*lamp-1"):
        choose({"lamp-1": "node.labels.zone==west"}, [_node("m", "manager"), down])


def test_swarm_node_record_from_the_api() -> None:
    attrs: dict[str, Any] = {
        "ID": "abc",
        "Spec": {"Role": "manager", "Availability": "active", "Labels": {"testbed.engine": "x"}},
        "Description": {"Hostname": "vm", "Platform": {"OS": "linux", "Architecture": "x86_64"}},
        "Status": {"State": "ready"},
    }
    node = SwarmNode.from_attrs(attrs)
    assert (node.id, node.hostname, node.role, node.ready, node.engine) == (
        "abc",
        "vm",
        "manager",
        True,
        "x",
    )
    drained = {**attrs, "Spec": {**attrs["Spec"], "Availability": "drain"}}
    assert not SwarmNode.from_attrs(drained).ready


def test_topology_placement_becomes_a_node_label_and_only_where_set() -> None:
    text = MINIMAL.replace(
        "    pan: pan0\n", "    pan: pan0\n    placement_constraint: node.labels.zone==east\n", 1
    )
    plan = make_plan(parse_topology(text), "r1")
    assert plan.node("thermostat-01").labels[PLACEMENT] == "node.labels.zone==east"
    assert PLACEMENT not in plan.node("br1").labels
    # not an attribute of the node's role (status and inventory groups stay as they were)
    thing_labels = NodeLabels.from_labels(plan.node("thermostat-01").labels)
    assert "placement" not in thing_labels.attribute_map
    # without placements no node carries the label: such plans (and digests) stay unchanged
    assert not any(PLACEMENT in n.labels for n in make_plan(parse_topology(MINIMAL), "r1").nodes)


def test_a_malformed_placement_is_refused_with_its_key() -> None:
    text = MINIMAL.replace(
        "    pans: [pan0]\n", "    pans: [pan0]\n    placement_constraint: east\n", 1
    )
    with pytest.raises(TopologyError, match="placement_constraint"):
        parse_topology(text)


def test_overlay_ipv4_subnets_are_24s_in_their_space_and_move_on_retry() -> None:
    first = ipaddress.IPv4Network(ipv4_subnet("tb-r1-mgmt", 0))
    assert first.prefixlen == 24 and first.subnet_of(IPV4_SPACE)
    assert ipv4_subnet("tb-r1-mgmt", 0) == str(first)  # deterministic
    assert ipv4_subnet("tb-r1-mgmt", 1) != str(first)


def test_material_copy_keeps_modes_and_drops_host_owners(tmp_path: Path) -> None:
    import io
    import tarfile

    (tmp_path / "node.json").write_text("{}")
    (tmp_path / "key.pem").write_text("secret")
    (tmp_path / "key.pem").chmod(0o600)
    with tarfile.open(fileobj=io.BytesIO(material_tar(tmp_path))) as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert members["key.pem"].mode & 0o777 == 0o600
    assert {(m.uid, m.gid) for m in members.values()} == {(0, 0)}


class _Manager:
    """A client of a swarm manager, as far as SwarmEngine's constructor asks."""

    def info(self) -> dict[str, Any]:
        return {"Swarm": {"LocalNodeState": "active", "ControlAvailable": True, "NodeID": "m"}}


def test_ansible_reaches_a_packed_thing_on_another_host_through_its_control_port() -> None:
    from testbed.engines import packed
    from testbed.engines.base import NodeStatus
    from testbed.engines.swarm import MemberEngine, SwarmEngine

    engine = SwarmEngine(_Manager())  # type: ignore[arg-type]
    h2 = _node("h2", **{"testbed.engine": "tcp://h2:2375"})
    remote = MemberEngine(_Manager(), h2, local=False)  # type: ignore[arg-type]
    lamp = NodeStatus(
        run="r", node="lamp-02", role="thing", kind="", state="running",
        resource="tb-r-lamp-pack-01", image="",
        attributes={"thing-host": "lamp-pack-01", packed.CONTROL_PORT_ATTRIBUTE: "9302"},
    )  # fmt: skip
    engine._where[("r", "lamp-02")] = remote
    variables = engine.ansible_connection(lamp)
    assert variables["ansible_host"] == "tb-r-lamp-pack-01"  # the thing host's container
    assert variables["ansible_docker_extra_env"] == {packed.CONTROL_PORT_ENV: "9302"}
    assert variables["ansible_docker_host"] == "tcp://h2:2375"
    # A node in a container of its own, on this host: neither.
    solo = NodeStatus(
        run="r", node="thermostat-01", role="thing", kind="", state="running",
        resource="tb-r-thermostat-01", image="",
    )  # fmt: skip
    variables = engine.ansible_connection(solo)
    assert variables["ansible_docker_extra_env"] == {} and "ansible_docker_host" not in variables
