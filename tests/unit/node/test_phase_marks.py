"""phase-mark: the node's phase-run metrics, and the testbed.iot.phase_mark module driving it."""

from __future__ import annotations

import asyncio
from types import ModuleType
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from testbed.node.errors import ActionError
from testbed.node.phase_marks import PhaseMarks
from tests.unit.phases.conftest import _collection_module
from tests.unit.phases.fake_node import FakeThing, serving


def mark(marks: PhaseMarks, **params: Any) -> dict[str, Any]:
    return asyncio.run(marks.mark(params))


def value(registry: CollectorRegistry, name: str, **labels: str) -> float | None:
    return registry.get_sample_value(name, labels)


def test_marks_count_runs_and_keep_the_last_times() -> None:
    registry = CollectorRegistry()
    marks = PhaseMarks(registry, clock=lambda: 1000.0)
    first = mark(marks, phase="commission", outcome="successful", start=900.0)
    assert first == {
        "phase": "commission",
        "outcome": "successful",
        "counted": True,
        "changed": False,
    }
    mark(marks, phase="commission", outcome="failed", start=950.0, end=990.0)
    runs = "testbed_phase_runs_total"
    assert value(registry, runs, phase="commission", outcome="successful") == 1
    assert value(registry, runs, phase="commission", outcome="failed") == 1
    assert value(registry, "testbed_phase_last_run_start_seconds", phase="commission") == 950
    assert value(registry, "testbed_phase_last_run_end_seconds", phase="commission") == 990


def test_the_same_run_counts_once() -> None:
    registry = CollectorRegistry()
    marks = PhaseMarks(registry, clock=lambda: 1000.0)
    mark(marks, phase="install", outcome="successful", start=1.0)
    again = mark(marks, phase="install", outcome="successful", start=1.0)
    assert again["counted"] is False
    assert value(registry, "testbed_phase_runs_total", phase="install", outcome="successful") == 1


@pytest.mark.parametrize(
    "params",
    [
        {"phase": "Install!", "outcome": "successful"},
        {"phase": "install", "outcome": "changed"},
        {"phase": "install", "outcome": "failed", "start": "soon"},
        {"phase": "install", "outcome": "failed", "start": 10.0, "end": 5.0},
    ],
)
def test_bad_parameters_are_refused(params: dict[str, Any]) -> None:
    with pytest.raises(ActionError):
        mark(PhaseMarks(CollectorRegistry()), **params)


def test_metrics_are_those_of_the_catalogue() -> None:
    registry = CollectorRegistry()
    mark(PhaseMarks(registry), phase="maintain", outcome="successful")
    text = generate_latest(registry).decode()
    assert 'testbed_phase_runs_total{outcome="successful",phase="maintain"} 1.0' in text


class MarkingThing(FakeThing):
    """A fake node whose phase-mark action is the real one."""

    def __init__(self) -> None:
        super().__init__()
        self.registry = CollectorRegistry()
        self.marks = PhaseMarks(self.registry)

    def act(self, name: str, params: dict[str, Any]) -> dict[str, Any]:
        if name == "phase-mark":
            return asyncio.run(self.marks.mark(params))
        return super().act(name, params)


@pytest.fixture(scope="module")
def mark_module() -> ModuleType:
    return _collection_module("modules.phase_mark")


@pytest.fixture(scope="module")
def control() -> ModuleType:
    return _collection_module("module_utils.control")


def test_module_marks_without_a_change(mark_module: ModuleType, control: ModuleType) -> None:
    node = MarkingThing()
    with serving(node) as served:
        client = control.ControlClient(port=served.port)
        params = {"phase": "commission", "outcome": "failed", "start": 5.0, "end": None}
        result = mark_module.run(params, client)
        predicted = mark_module.run(params, client, check_mode=True)
    assert result == {
        "changed": False,
        "mark": {"phase": "commission", "outcome": "failed", "counted": True},
    }
    assert predicted == {"changed": False}
    assert [name for name, _ in served.calls] == ["phase-mark"]
    assert value(node.registry, "testbed_phase_last_run_start_seconds", phase="commission") == 5


def test_module_doc_renders() -> None:
    from tests.unit.phases.test_docs import ansible_doc

    proc = ansible_doc("testbed.iot.phase_mark")
    assert proc.returncode == 0, proc.stderr
    assert "WARNING" not in proc.stderr and "ERROR" not in proc.stderr, proc.stderr
    assert "testbed_phase_runs_total" in proc.stdout and "EXAMPLES" in proc.stdout


def test_every_phase_playbook_marks_its_hosts() -> None:
    from testbed.phases.runner import PHASES, playbook_path

    for phase in PHASES:
        text = playbook_path(phase).read_text()
        if "import_playbook" in text:
            continue  # site.yml: its parts mark
        assert f"testbed.iot.phase_mark:\n            phase: {phase}\n" in text, phase
