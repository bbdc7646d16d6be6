"""bringup.up starts the run's Prometheus while the nodes start (once every network is made),
not after them; a failed deploy still removes everything; a backend that reports no networks
gets its services after the nodes, as before."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from testbed import bringup
from testbed.engines.base import EventFn, RemovalReport
from testbed.errors import NodeFailed
from testbed.observe.service import Observer
from testbed.plan import Plan
from tests.unit.compose.conftest import ROOT, plan_for


class Services:
    def __init__(self) -> None:
        self.prometheus = threading.Event()

    def start_prometheus(self, plan: Plan, run_dir: Path) -> Observer:
        self.prometheus.set()
        return Observer(plan.run, "http://127.0.0.1:1", "prometheus", "fd00::2")


class Engine:
    name = "scripted"

    def __init__(self, *, report_networks: bool = True, fail: bool = False) -> None:
        self.svc = Services()
        self.report_networks = report_networks
        self.fail = fail
        self.seen_during_deploy: bool | None = None
        self.undeployed: list[str] = []

    def runs(self) -> dict[str, int]:
        return {}

    def empty_networks(self, run: str) -> list[str]:
        return []

    def services(self) -> Services:
        return self.svc

    def deploy(self, plan: Plan, image: str, run_dir: Path, on_event: EventFn) -> None:
        if self.report_networks:
            for net in plan.networks:
                on_event("network", net.name)
        # The nodes "start" until Prometheus has started too (or 10 s passed).
        self.seen_during_deploy = self.svc.prometheus.wait(10.0 if self.report_networks else 0.2)
        if self.fail:
            raise NodeFailed(plan.nodes[0].name, "did not start", "", "")
        for node in plan.nodes:
            on_event("ready", node.name)

    def undeploy(self, run: str) -> RemovalReport:
        self.undeployed.append(run)
        return RemovalReport()


@pytest.fixture
def plan(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Plan:
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("TESTBED_GRAFANA", "0")
    monkeypatch.delenv("TESTBED_OBSERVE", raising=False)
    return plan_for(ROOT / "topologies" / "minimal.yaml", "svc-unit", tmp_path / "home")


def up(backend: Any, plan: Plan) -> bringup.UpResult:
    return bringup.up(backend, plan, "building: x\n", "img", lambda *_: None)


def test_prometheus_starts_while_the_nodes_do(plan: Plan) -> None:
    backend = Engine()
    up(backend, plan)
    assert backend.seen_during_deploy is True


def test_a_backend_without_network_events_gets_its_services_after_the_nodes(plan: Plan) -> None:
    backend = Engine(report_networks=False)
    up(backend, plan)
    assert backend.seen_during_deploy is False
    assert backend.svc.prometheus.is_set()


def test_a_failed_deploy_waits_for_the_services_then_removes_the_run(plan: Plan) -> None:
    backend = Engine(fail=True)
    with pytest.raises(NodeFailed):
        up(backend, plan)
    assert backend.svc.prometheus.is_set()
    assert backend.undeployed == ["svc-unit"]
