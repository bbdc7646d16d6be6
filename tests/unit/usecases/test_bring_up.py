"""The `up` use case against a scripted backend: the sequence (image, networks, nodes), the run
directory minted, what the result says; the same function the CLI calls."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from testbed import usecases
from testbed.engines.base import EventFn
from testbed.errors import CommissioningFailed
from testbed.plan import Plan
from testbed.usecases.progress import Stage
from tests.unit.compose.conftest import ROOT

TOPOLOGY = ROOT / "topologies" / "minimal.yaml"


@dataclass
class Image:
    tag: str = "testbed/node:0123456789ab"


class ScriptedEngine:
    name = "scripted"

    def __init__(self) -> None:
        self.deployed: list[tuple[str, str]] = []

    def runs(self) -> dict[str, int]:
        return {}

    def empty_networks(self, run: str) -> list[str]:
        return []

    def ensure_node_image(self, **options: Any) -> Image:
        options["progress"]("Step 1/2 : FROM base", 1, 2)
        return Image()

    def deploy(self, plan: Plan, image: str, run_dir: Path, on_event: EventFn) -> None:
        assert (run_dir / "plan.json").is_file()  # minted before anything is deployed
        self.deployed.append((plan.run, image))
        for net in plan.networks:
            on_event("network", net.name)
        for node in plan.nodes:
            on_event("ready", node.name)

    def services(self) -> None:
        return None  # an engine without Prometheus and Grafana


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[str, Stage, Any]] = []

    def begin(self, stage: Stage, total: int | None) -> None:
        self.seen.append(("begin", stage, total))

    def update(self, stage: Stage, detail: str = "", **counts: Any) -> None:
        self.seen.append(("update", stage, detail))

    def end(self, stage: Stage, detail: str = "") -> None:
        self.seen.append(("end", stage, detail))


def test_up_runs_the_sequence_and_reports_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GRAFANA_URL", raising=False)
    backend, progress = ScriptedEngine(), Recorder()
    options = usecases.UpOptions(commission=False)
    result = usecases.up(backend, TOPOLOGY, "uc-unit", options, progress)  # type: ignore[arg-type]

    assert backend.deployed == [("uc-unit", "testbed/node:0123456789ab")]
    assert result.run_dir == tmp_path / "home" / "runs" / "uc-unit"
    assert (result.run_dir / "nodes" / "thermostat-01").is_dir()
    assert result.outcomes == {} and result.failed == {}
    result.raise_for_commissioning()  # nothing to complain about
    assert result.prometheus_url is None
    assert any("none configured" in line for line in result.grafana)
    begun = [stage for kind, stage, _ in progress.seen if kind == "begin"]
    assert begun == ["image", "networks", "nodes"]
    ready = [d for kind, stage, d in progress.seen if kind == "update" and stage == "nodes"]
    assert sorted(ready) == sorted(n.name for n in result.plan.nodes)


def test_a_thing_that_is_not_operational_is_in_the_result_and_raised_on_request(
    tmp_path: Path,
) -> None:
    plan, _ = usecases.plan_of(TOPOLOGY, "uc-unit")
    result = usecases.UpResult(
        plan=plan,
        run_dir=tmp_path,
        image="x",
        outcomes={"thermostat-01": ("failed", "voucher refused")},
    )
    assert result.failed == {"thermostat-01": ("failed", "voucher refused")}
    with pytest.raises(CommissioningFailed) as caught:
        result.raise_for_commissioning()
    assert caught.value.exit_code == 10 and "1 of 1 things" in caught.value.message
