"""Packed things: 64 things in two thing hosts on two radio PANs, next to a thing of its own.

One building (tests/fixtures/topologies/integration/packed.yaml, commissioning: auto) for the
whole module: every thing commissions, the backend reads each one over OSCORE at its own
address, each packed thing is its own station on its PAN's medium and has its own status,
metrics and refusal counts, and one packed thing is decommissioned through
``testbed phase --limit`` and is then refused while its packmates keep working.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from testbed import bringup
from testbed.engines.docker import DockerEngine
from testbed.phases import inventory
from testbed.phases.runner import run_phase
from testbed.plan.model import Plan
from tests.integration.conftest import ROOT, phase_environment, remove_run, run_cli
from tests.integration.nodes import action, state, wait_for

pytestmark = pytest.mark.integration

TOPOLOGY = ROOT / "tests" / "fixtures" / "topologies" / "integration" / "packed.yaml"
LEAVER = "lamp-07"  # decommissioned
PACKMATE = "lamp-08"  # same thing host, keeps working
PROBED = "thermo-05"  # sent an unprotected request


@dataclass
class Packed:
    backend: DockerEngine
    run: str
    plan: Plan
    env: dict[str, str]
    outcomes: dict[str, tuple[str, str]]

    @property
    def things(self) -> list[str]:
        return [n.name for n in self.plan.nodes if n.role == "thing"]

    def listed(self) -> dict[str, Any]:
        things: dict[str, Any] = state(self.backend, self.run, "backend")["backend"]["things"]
        return things

    def read(self, thing: str, resource: str) -> tuple[int, dict[str, Any]]:
        """The backend's read of one thing: (probe exit code, its answer or error)."""
        params = json.dumps({"thing": thing, "resource": resource})
        result = self.backend.exec(
            self.run,
            "backend",
            ["python3", "-m", "testbed.node.probe", "action", "read", params],
        )
        return result.exit_code, json.loads(result.output)


@pytest.fixture(scope="module")
def packed(docker_client: Any, node_image: str, cli_env: dict[str, str]) -> Iterator[Packed]:
    run = f"pk-{uuid.uuid4().hex[:6]}"
    with phase_environment(cli_env) as env:
        backend = DockerEngine(docker_client)
        try:
            plan, text = bringup.plan_for(TOPOLOGY, run)
            bringup.up(backend, plan, text, node_image, lambda event, name: None)
            outcomes = bringup.wait_commissioned(
                backend, plan, lambda event, name: None, timeout=600
            )
            yield Packed(backend, run, plan, env, outcomes)
        finally:
            try:
                bringup.down(backend, run)
            except Exception:
                remove_run(docker_client, run)


def test_the_plan_makes_two_thing_hosts_and_every_thing_commissions(packed: Packed) -> None:
    containers = sorted(n.name for n in packed.plan.nodes if not n.packed_in)
    assert "lamp-pack-01" in containers and "thermo-pack-01" in containers
    assert set(containers).isdisjoint(n.name for n in packed.plan.nodes if n.packed_in)
    assert len(containers) == 7  # 2 routers, trust center, backend, 2 thing hosts, solo-01
    assert len(packed.things) == 65
    assert {packed.outcomes[t][0] for t in packed.things} == {"operational"}, packed.outcomes


def test_the_backend_reads_every_thing_at_its_own_address(packed: Packed) -> None:
    def all_read() -> bool:
        listed = packed.listed()
        return all(
            any(r.get("outcome") == "ok" and r.get("protected") for r in entry["last"].values())
            for entry in (listed.get(t) for t in packed.things)
            if entry is not None and entry.get("last")
        ) and set(packed.things) <= set(listed)

    wait_for(all_read, 180, "the backend to read all 65 things")
    listed = packed.listed()
    addresses = {listed[t]["address"] for t in packed.things}
    assert len(addresses) == 65  # each from its own PAN address
    for thing in packed.things:
        node = packed.plan.node(thing)
        assert listed[thing]["address"] == node.data_address(f"pan-{node.config.attributes['pan']}")


def test_each_packed_thing_is_its_own_station(packed: Packed) -> None:
    shown = action(packed.backend, packed.run, "br-east", "link-show")
    nodes = shown["east"]["medium"]["nodes"]
    lamps = [t for t in packed.things if t.startswith("lamp-")]
    assert set(lamps) <= set(nodes), sorted(nodes)
    assert all(nodes[t]["transmissions"] > 0 for t in lamps)
    endpoints = shown["east"]["endpoints"]
    # One carrier address for the pack, one port each.
    assert len({endpoints[t] for t in lamps}) == len(lamps)
    assert len({endpoints[t].rpartition(":")[0] for t in lamps}) == 1


def test_status_and_inventory_have_one_entry_per_thing(packed: Packed) -> None:
    shown = run_cli(["status", "--run", packed.run, "--json"], packed.env)
    rows = {row["node"]: row for row in json.loads(shown.stdout)}
    for thing in packed.things:
        assert rows[thing]["lifecycle"] == "operational", rows[thing]
    hosts = inventory.inventory_for_run(packed.backend, packed.run).hosts
    assert hosts["lamp-03"]["ansible_host"] == hosts["lamp-04"]["ansible_host"]
    assert (
        hosts["lamp-03"]["ansible_docker_extra_env"] != hosts["lamp-04"]["ansible_docker_extra_env"]
    )
    assert hosts["lamp-03"]["testbed_lifecycle"] == "operational"


def test_metrics_are_per_thing(packed: Packed) -> None:
    node = packed.plan.node("lamp-03")
    script = (
        "import urllib.request; print(urllib.request.urlopen("
        f"'http://[{node.config.address('mgmt')}]:{node.config.metrics_port}/metrics')"
        ".read().decode())"
    )
    result = packed.backend.exec(packed.run, "lamp-03", ["python3", "-c", script])
    assert result.exit_code == 0, result.output
    text = result.output.decode()
    assert "testbed_node_info{" in text and 'node="lamp-03"' in text
    assert 'testbed_thing_lifecycle_state{state="operational"} 1.0' in text


def test_an_unprotected_request_to_one_packed_thing_is_refused(packed: Packed) -> None:
    def refused(thing: str) -> int:
        counts = state(packed.backend, packed.run, thing)["requests"]["refused"]
        return int(counts.get("unprotected", 0))

    before, beside = refused(PROBED), refused("thermo-06")
    answer = action(
        packed.backend,
        packed.run,
        "backend",
        "probe-unprotected",
        thing=PROBED,
        resource="temperature",
    )
    assert answer["code"] == "4.01", answer
    assert refused(PROBED) == before + 1
    assert refused("thermo-06") == beside  # counted by the thing it was sent to only


def test_decommission_one_packed_thing_through_its_phase(packed: Packed) -> None:
    result = run_phase("decommission", engine=packed.backend, run=packed.run, limit=LEAVER)
    assert result.succeeded and set(result.hosts) == {LEAVER}, result.hosts
    status = action(packed.backend, packed.run, LEAVER, "status")
    assert status["lifecycle"] == "decommissioned" and status["ldevid_serial"] is None
    assert action(packed.backend, packed.run, PACKMATE, "status")["lifecycle"] == "operational"
    wait_for(lambda: LEAVER not in packed.listed(), 60, f"the backend to drop {LEAVER}")
    code, answer = packed.read(LEAVER, "light")
    assert code != 0 or answer.get("result", {}).get("code") != "2.05", answer
    code, answer = packed.read(PACKMATE, "light")
    assert code == 0 and answer["result"]["code"] == "2.05", answer
    assert answer["result"]["protected"]
    # Commissioning it again is refused by the thing itself.
    again = run_cli(
        ["phase", "commission", "--run", packed.run, "--limit", LEAVER], packed.env, check=False
    )
    assert again.returncode != 0
    assert "cannot commission a decommissioned thing" in " ".join(again.stdout.split())
