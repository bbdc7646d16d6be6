"""The cross-domain policy of two-operators.yaml, enforced for real at the border router.

The building comes up as `testbed up` brings it (install and commission through the phase
playbooks), then: what the policy forbids is dropped at br1 (ICMPv6 probes between nodes,
the HVAC contractor's backend reading a lighting thing) and counted per rule, what it allows
flows, and the phase runs show up in the things' own metrics.

The tests of this module run in order on one building (module-scoped fixture).
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import bringup
from testbed.engines.docker import DockerEngine
from testbed.plan.model import Plan
from tests.integration.conftest import ROOT, phase_environment, remove_run, run_cli
from tests.integration.nodes import action, state, wait_for

pytestmark = pytest.mark.integration

TOPOLOGY = ROOT / "topologies" / "two-operators.yaml"
DROPPED = "testbed_policy_dropped_packets_total"


@dataclass
class Building:
    backend: DockerEngine
    run: str
    plan: Plan
    env: dict[str, str]

    def address(self, node: str) -> str:
        plan = self.plan.node(node)
        return plan.data_address(plan.config.interfaces[-1].network)

    def reach(self, source: str, destination: str) -> bool:
        """``testbed exec SOURCE -- python3 -m testbed.node.probe reach ADDR`` (ICMPv6 echo)."""
        args = ["exec", source, "--run", self.run, "--", "python3", "-m", "testbed.node.probe"]
        args += ["reach", self.address(destination), "--count", "2", "--timeout", "1"]
        return run_cli(args, self.env, check=False).returncode == 0

    def metrics(self, node: str) -> str:
        """The node's /metrics, fetched inside it from its mgmt address (as Prometheus sees)."""
        url = f"http://[{self.plan.node(node).config.address('mgmt')}]:9180/metrics"
        script = f"import urllib.request; print(urllib.request.urlopen({url!r}).read().decode())"
        args = ["exec", node, "--run", self.run, "--", "python3", "-c", script]
        return run_cli(args, self.env).stdout

    def dropped(self, rule: str) -> float:
        match = re.search(
            rf'^{DROPPED}{{rule="{re.escape(rule)}"}} (\S+)$', self.metrics("br1"), re.M
        )
        return float(match.group(1)) if match else 0.0

    def listed(self, backend: str) -> dict[str, Any]:
        things: dict[str, Any] = state(self.backend, self.run, backend)["backend"]["things"]
        return things

    def read(self, backend: str, thing: str) -> dict[str, Any]:
        resource = "temperature" if thing.startswith("thermostat") else "light"
        params = json.dumps({"thing": thing, "resource": resource})
        probe = ["python3", "-m", "testbed.node.probe", "action", "read", params]
        result = self.backend.exec(self.run, backend, probe)
        answer: dict[str, Any] = json.loads(result.output or b"{}")
        return answer if result.exit_code == 0 else {"error": answer}


@pytest.fixture(scope="module")
def building(
    docker_client: Any, node_image: str, cli_env: dict[str, str], testbed_home: Path
) -> Iterator[Building]:
    run = f"pol-{uuid.uuid4().hex[:6]}"
    with phase_environment(cli_env) as env:
        backend = DockerEngine(docker_client)
        try:
            plan, text = bringup.plan_for(TOPOLOGY, run)
            bringup.up(backend, plan, text, node_image, lambda event, name: None)
            bringup.commission_by_phases(backend, plan)  # what `testbed up` does next
            yield Building(backend, run, plan, env)
        finally:
            try:
                bringup.down(backend, run)
            except Exception:
                remove_run(docker_client, run)


def test_the_router_runs_the_policy(building: Building) -> None:
    shown = action(building.backend, building.run, "br1", "policy-show")
    assert shown["installed"] is True
    assert shown["rules"][0]["label"] == "hvac-backend-not-lighting"
    assert "hook forward" in shown["ruleset"]


def test_things_of_one_domain_talk_across_floors(building: Building) -> None:
    assert building.reach("thermostat-01", "co2-01")  # floor1 -> floor2, both HVAC
    assert building.reach("lamp-01", "tc-lighting")


def test_things_of_different_domains_do_not(building: Building) -> None:
    before = building.dropped("default-deny")
    assert not building.reach("thermostat-01", "lamp-01")
    assert not building.reach("co2-01", "tc-lighting")  # trust centers: own domain only
    assert building.dropped("default-deny") >= before + 4  # two probes each, both dropped
    assert building.reach("occupancy-01", "tc-lighting")  # the topology's exception


def test_the_hvac_backend_cannot_reach_lighting(building: Building) -> None:
    try:
        wait_for(lambda: "thermostat-01" in building.listed("backend-hvac"), 120, "hvac listing")
    except AssertionError as exc:
        # Known flake: a backend whose first poll races its trust center's
        # start can keep one EDHOC exchange pending; its state shows the last poll.
        shown = state(building.backend, building.run, "backend-hvac")
        raise AssertionError(f"{exc}\nbackend-hvac state: {shown}") from None
    listed = building.listed("backend-hvac")
    assert not {"lamp-01", "lamp-02"} & set(listed), listed  # tc-lighting scoped its /things
    wait_for(lambda: "lamp-01" in building.listed("backend"), 90, "the owner's listing")
    ok = building.read("backend", "lamp-01")
    assert ok.get("result", {}).get("code") == "2.05", ok
    assert building.read("backend-hvac", "thermostat-01").get("result", {}).get("code") == "2.05"
    before = building.dropped("hvac-backend-not-lighting")
    # Not listed, so it cannot read it; and the network would not let it try either.
    assert "error" in building.read("backend-hvac", "lamp-01") or (
        building.read("backend-hvac", "lamp-01").get("result", {}).get("code") != "2.05"
    )
    assert not building.reach("backend-hvac", "lamp-01")
    assert building.dropped("hvac-backend-not-lighting") >= before + 2


def test_phase_runs_are_in_the_things_metrics(building: Building) -> None:
    text = building.metrics("thermostat-01")
    runs = re.findall(r"^testbed_phase_runs_total\{(.*)\} (\S+)$", text, re.M)
    seen = {labels: float(v) for labels, v in runs}
    assert seen.get('outcome="successful",phase="install"') == 1.0, text
    assert seen.get('outcome="successful",phase="commission"') == 1.0, text
    assert re.search(r'^testbed_phase_last_run_end_seconds\{phase="commission"\} ', text, re.M)
