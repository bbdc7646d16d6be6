"""The inventory derived from labels: hosts, groups, variables; real ansible-inventory reads it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from testbed.engines.base import NodeStatus
from testbed.engines.docker import ansible_connection
from testbed.phases import inventory as inv
from testbed.plan import make_plan
from testbed.topology import load_topology

ROOT = Path(__file__).resolve().parents[3]
ANSIBLE_INVENTORY = Path(sys.executable).parent / "ansible-inventory"


def statuses(topology: str = "two-operators.yaml", run: str = "ans-unit") -> list[NodeStatus]:
    """What DockerEngine.status() returns for a plan's containers (labels -> NodeStatus)."""
    from testbed.plan.labels import NodeLabels

    plan = make_plan(load_topology(ROOT / "topologies" / topology), run, "", f"/runs/{run}")
    out = []
    for node in plan.nodes:
        ident = NodeLabels.from_labels(node.labels)
        out.append(
            NodeStatus(
                run=ident.run,
                node=ident.node,
                role=ident.role,
                kind=ident.kind,
                state="running",
                resource=node.resource,
                image="testbed/node:latest",
                addresses={i.network: i.ipv6.split("/")[0] for i in node.config.interfaces},
                attributes=ident.attribute_map,
                run_dir=ident.run_dir,
            )
        )
    return out


@pytest.fixture
def built() -> inv.Inventory:
    return inv.build_inventory(statuses(), "ans-unit", connection=ansible_connection)


def test_hosts_reach_their_containers(built: inv.Inventory) -> None:
    host = built.hosts["thermostat-01"]
    assert host["ansible_connection"] == "community.docker.docker"
    assert host["ansible_host"] == "tb-ans-unit-thermostat-01"
    assert host["ansible_python_interpreter"] == "/opt/testbed/bin/python3"
    assert host["testbed_vendor"] == "acme"
    assert host["testbed_device_class"] == "thermostat"
    assert host["testbed_serial"].startswith("ACME-")
    assert host["testbed_trust_center_uri"].startswith("coap://[")
    assert built.vars["testbed_run_dir"] == "/runs/ans-unit"
    assert built.vars["testbed_trust_centers"] == {"hvac": "tc-hvac", "lighting": "tc-lighting"}
    uri = built.vars["testbed_trust_center_uris"]["lighting"]
    assert uri == built.hosts["lamp-01"]["testbed_trust_center_uri"]


def test_groups(built: inv.Inventory) -> None:
    g = {name: sorted(hosts) for name, hosts in built.groups.items()}
    assert g["role_thing"] == sorted(
        ["thermostat-01", "thermostat-02", "co2-01", "occupancy-01", "lamp-01", "lamp-02"]
    )
    assert g["role_trust_center"] == ["tc-hvac", "tc-lighting"]
    assert g["vendor_acme"] == ["thermostat-01", "thermostat-02"]
    assert g["vendor_ventis"] == ["co2-01", "occupancy-01"]
    assert g["domain_lighting"] == ["lamp-01", "lamp-02", "tc-lighting"]
    assert "occupancy-01" in g["domain_hvac"]
    assert g["model_thermo_100"] == ["thermostat-01", "thermostat-02"]  # '-' made Ansible-safe
    assert g["pan_floor1"] == ["br1", "thermostat-01", "thermostat-02"]
    assert g["kind_vendor_cloud"] == ["vendor-cloud"]
    assert g["kind_backend"] == ["backend", "backend-hvac"]  # the HVAC contractor has its own
    assert g["role_border_router"] == ["br1"]
    assert not any(name.startswith("lifecycle_") for name in g)


def test_live_state_regroups_a_transferred_thing() -> None:
    live = {
        "occupancy-01": {"domain": "lighting", "lifecycle": "operational"},
        "lamp-01": {"domain": "lighting", "lifecycle": "failed"},
    }
    built = inv.build_inventory(statuses(), "ans-unit", live, connection=ansible_connection)
    assert "occupancy-01" in built.groups["domain_lighting"]
    assert "occupancy-01" not in built.groups["domain_hvac"]
    host = built.hosts["occupancy-01"]
    assert host["testbed_domain"] == "lighting"
    assert host["testbed_planned_domain"] == "hvac"
    assert built.groups["lifecycle_failed"] == ["lamp-01"]
    assert "testbed_planned_domain" not in built.hosts["lamp-01"]


def test_other_runs_are_left_out() -> None:
    nodes = statuses() + statuses("minimal.yaml", "other")
    built = inv.build_inventory(nodes, "ans-unit", connection=ansible_connection)
    assert all(h["ansible_host"].startswith("tb-ans-unit-") for h in built.hosts.values())


def test_yaml_round_trip(built: inv.Inventory, tmp_path: Path) -> None:
    path = inv.write_inventory(built, tmp_path)
    assert path == tmp_path / "ansible" / "inventory" / "hosts.yml"
    assert (path.stat().st_mode & 0o777) == 0o600
    data = yaml.safe_load(path.read_text())
    assert set(data["all"]["children"]["vendor_lumina"]["hosts"]) == {"lamp-01", "lamp-02"}
    assert data["all"]["hosts"]["br1"]["testbed_pans"] == "floor1,floor2"


def _ansible_inventory(path: Path, *args: str) -> str:
    env = dict(os.environ, ANSIBLE_INVENTORY_UNPARSED_WARNING="False", ANSIBLE_NOCOLOR="1")
    proc = subprocess.run(
        [str(ANSIBLE_INVENTORY), "-i", str(path), *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def test_graph_is_what_ansible_inventory_prints(built: inv.Inventory, tmp_path: Path) -> None:
    path = inv.write_inventory(built, tmp_path)
    assert _ansible_inventory(path, "--graph") == built.graph()


def test_ansible_limits_by_group(built: inv.Inventory, tmp_path: Path) -> None:
    path = inv.write_inventory(built, tmp_path)
    listed = json.loads(_ansible_inventory(path, "--list"))
    assert sorted(listed["domain_lighting"]["hosts"]) == ["lamp-01", "lamp-02", "tc-lighting"]
    hostvars = listed["_meta"]["hostvars"]["lamp-02"]
    assert hostvars["testbed_run_dir"] == "/runs/ans-unit"  # all:vars reach every host
    graph = _ansible_inventory(path, "--graph", "vendor_acme")
    assert graph.splitlines() == ["@vendor_acme:", "  |--thermostat-01", "  |--thermostat-02"]
