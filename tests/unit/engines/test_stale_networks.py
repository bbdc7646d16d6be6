"""Docker 20.10 can refuse to remove a network for "active endpoints" when nothing is attached
(its endpoint count drifts from its endpoints until the daemon restarts; CI met it after a
SIGKILLed trust center). `down` must still remove everything else and say what is left, and a
later `up` of the same run must work: it reuses the leftover when it is what the plan asks for.
The daemon here is scripted (tests/unit/engines/scripted_daemon.py): no real daemon
produces the defect on demand."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from typer.testing import CliRunner

from testbed import bringup
from testbed.cli.app import app
from testbed.engines.docker import DockerEngine
from testbed.errors import AlreadyRunning, EngineError
from testbed.plan.model import Plan
from tests.unit.compose.conftest import ROOT, plan_for
from tests.unit.engines.scripted_daemon import ScriptedDaemon


@pytest.fixture(autouse=True)
def _no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("testbed.engines.docker_networks.time.sleep", lambda _: None)


@pytest.fixture
def plan(tmp_path: Path) -> Plan:
    return plan_for(ROOT / "topologies" / "minimal.yaml", "stale", tmp_path / "run")


def _networks_of(daemon: ScriptedDaemon, plan: Plan) -> None:
    """DockerEngine.deploy of the plan's networks (the nodes are not this test's subject)."""
    backend = DockerEngine(daemon)  # type: ignore[arg-type]
    backend.deploy(dataclasses.replace(plan, nodes=()), "unused", Path("/nonexistent"), _quiet)


def _quiet(event: str, name: str) -> None:
    pass


def test_down_removes_the_rest_and_reports_the_stale_network(plan: Plan) -> None:
    daemon = ScriptedDaemon()
    _networks_of(daemon, plan)
    for node in plan.nodes:
        daemon.volumes.create(node.volume, labels={"testbed.run": plan.run})
    stale = plan.networks[0].resource
    daemon.networks.by_name[stale].stale = True

    report = DockerEngine(daemon).undeploy(plan.run)  # type: ignore[arg-type]

    assert report.stale_networks == [stale]
    assert sorted(report.networks) == sorted(n.resource for n in plan.networks[1:])
    assert len(report.volumes) == len(plan.nodes) and not daemon.volumes.by_name
    assert list(daemon.networks.by_name) == [stale]


def test_a_run_of_empty_networks_only_is_not_up_but_one_with_volumes_is(plan: Plan) -> None:
    daemon = ScriptedDaemon()
    _networks_of(daemon, plan)
    backend = DockerEngine(daemon)  # type: ignore[arg-type]
    bringup.ensure_not_running(backend, plan.run)  # only leftovers: may come up again
    daemon.volumes.create(plan.nodes[0].volume, labels={"testbed.run": plan.run})
    with pytest.raises(AlreadyRunning):
        bringup.ensure_not_running(backend, plan.run)


def test_up_reuses_a_stale_network_that_matches_the_plan(plan: Plan) -> None:
    daemon = ScriptedDaemon()
    _networks_of(daemon, plan)
    leftover = daemon.networks.by_name[plan.networks[0].resource]
    leftover.stale = True
    for name in list(daemon.networks.by_name):
        if name != leftover.name:
            del daemon.networks.by_name[name]
    created = daemon.networks.created

    _networks_of(daemon, plan)

    assert daemon.networks.by_name[leftover.name] is leftover  # reused, not recreated
    assert daemon.networks.created == created + len(plan.networks) - 1


def test_up_replaces_an_empty_leftover_the_daemon_can_remove(plan: Plan) -> None:
    daemon = ScriptedDaemon()
    _networks_of(daemon, plan)
    before = dict(daemon.networks.by_name)
    _networks_of(daemon, plan)
    assert all(daemon.networks.by_name[n] is not before[n] for n in before)


def test_a_stale_network_of_another_shape_is_a_clear_error(plan: Plan) -> None:
    daemon = ScriptedDaemon()
    _networks_of(daemon, plan)
    leftover = daemon.networks.by_name[plan.networks[0].resource]
    leftover.stale = True
    leftover.attrs["IPAM"]["Config"][0]["Subnet"] = "fd00:dead:beef:1::/64"
    with pytest.raises(EngineError) as caught:
        _networks_of(daemon, plan)
    assert leftover.name in str(caught.value)
    assert "restart the Docker daemon" in caught.value.hint


def test_a_network_of_another_run_or_in_use_is_a_name_conflict(plan: Plan) -> None:
    daemon = ScriptedDaemon()
    _networks_of(daemon, plan)
    net = daemon.networks.by_name[plan.networks[0].resource]
    net.attrs["Containers"] = {"abc123": {"Name": "someone-else"}}
    with pytest.raises(EngineError, match="name conflict"):
        _networks_of(daemon, plan)
    net.attrs["Containers"] = {}
    net.attrs["Labels"]["testbed.run"] = "other-run"
    with pytest.raises(EngineError, match="name conflict"):
        _networks_of(daemon, plan)


def test_cli_down_names_the_stale_network_and_what_to_do(
    plan: Plan, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    daemon = ScriptedDaemon()
    _networks_of(daemon, plan)
    daemon.volumes.create(plan.nodes[0].volume, labels={"testbed.run": plan.run})
    daemon.networks.by_name[plan.networks[0].resource].stale = True
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path / "home"))
    monkeypatch.setattr("testbed.engines.docker.connect", lambda: daemon)

    result = CliRunner().invoke(app, ["down", "--run", plan.run])

    assert result.exit_code == 0, result.output
    assert f"{len(plan.networks) - 1} networks, 1 volumes" in result.output
    assert plan.networks[0].resource in result.output
    assert "restart" in result.output and "reuses them" in result.output


def test_a_leftover_run_does_not_make_the_run_to_use_ambiguous(tmp_path: Path) -> None:
    daemon = ScriptedDaemon()
    leftover = plan_for(ROOT / "topologies" / "minimal.yaml", "old", tmp_path / "old")
    live = plan_for(ROOT / "topologies" / "minimal.yaml", "new", tmp_path / "new")
    _networks_of(daemon, leftover)
    _networks_of(daemon, live)
    daemon.volumes.create(live.nodes[0].volume, labels={"testbed.run": live.run})
    assert bringup.resolve_run(DockerEngine(daemon), None) == "new"  # type: ignore[arg-type]
