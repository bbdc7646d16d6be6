"""The phase runner: real ansible-runner on a local-connection playbook (no Docker), event
collection into per-host outcomes, RUN/phases.jsonl, and the CLI's -e parsing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from testbed.cli.phase import parse_extravars, summary
from testbed.engines.base import NodeStatus
from testbed.engines.docker import ansible_connection
from testbed.errors import TestbedError
from testbed.phases import records, runner
from tests.unit.phases.test_inventory import statuses

PLAYBOOK = """
- name: A phase that works on most hosts
  hosts: role_thing
  gather_facts: false
  vars:
    ansible_connection: local
    ansible_python_interpreter: "{{ ansible_playbook_python }}"
  tasks:
    - name: touch
      ansible.builtin.command: "true"
      changed_when: inventory_hostname == 'lamp-01'
    - name: refuse one
      ansible.builtin.fail:
        msg: "firmware-update: firmware refused: digest-mismatch"
      when: inventory_hostname == 'lamp-02'
    - name: finish
      ansible.builtin.debug:
        msg: "{{ greeting | default('done') }}"
    - name: nothing to update here
      ansible.builtin.set_fact:
        testbed_skipped: "firmware update: no vendor cloud publishes firmware for ventis/co2"
      when: inventory_hostname == 'co2-01'
"""


class FakeEngine:
    name = "fake"

    def __init__(self, nodes: list[NodeStatus]) -> None:
        self.nodes = nodes

    def status(self, run: str | None = None) -> list[NodeStatus]:
        return [n for n in self.nodes if run is None or n.run == run]

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        return {"state": {"lifecycle": "operational"}}

    def ansible_connection(self, node: NodeStatus) -> dict[str, str]:
        return ansible_connection(node)  # the Docker backend's: the playbook runs locally anyway


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    shutil.copy(runner.PLAYBOOKS / "ansible.cfg", playbooks / "ansible.cfg")
    (playbooks / "commission.yml").write_text(PLAYBOOK)
    (playbooks / "install.yml").write_text("- hosts: nosuchgroup\n  tasks: []\n")
    monkeypatch.setattr(runner, "PLAYBOOKS", playbooks)
    return playbooks


@pytest.fixture
def backend(tmp_path: Path) -> FakeEngine:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    nodes = [
        NodeStatus(**{**n.__dict__, "run_dir": str(run_dir)}) for n in statuses(run="ans-runner")
    ]
    return FakeEngine(nodes)


def test_phase_outcomes_events_and_record(
    project: Path, backend: FakeEngine, tmp_path: Path
) -> None:
    events: list[runner.PhaseEvent] = []
    result = runner.run_phase(
        "commission",
        engine=backend,  # type: ignore[arg-type]
        run="ans-runner",
        extravars={"greeting": "hi"},
        forks=4,
        on_event=events.append,
    )
    things = {"thermostat-01", "thermostat-02", "co2-01", "occupancy-01", "lamp-01", "lamp-02"}
    assert set(result.hosts) == things
    assert result.failed_hosts == ["lamp-02"]
    assert not result.succeeded
    lamp2 = result.hosts["lamp-02"]
    assert lamp2.outcome == "failed"
    assert lamp2.reason == "refuse one: firmware-update: firmware refused: digest-mismatch"
    assert result.hosts["lamp-01"].outcome == "changed"
    assert result.hosts["thermostat-01"].outcome == "ok"
    assert result.hosts["thermostat-01"].ok == 2  # touch, finish (refuse one: skipped)
    assert result.hosts["thermostat-01"].skipped == 2  # refuse one, nothing to update here
    assert result.hosts["lamp-02"].ok == 1  # the others finished; lamp-02 stopped
    assert result.tasks == 4
    # A step skipped on purpose is reported with its reason; the host still succeeded.
    co2 = result.hosts["co2-01"]
    skipped = "firmware update: no vendor cloud publishes firmware for ventis/co2"
    assert (co2.outcome, co2.skipped_steps) == ("ok", [skipped])
    assert result.hosts["thermostat-01"].skipped_steps == []
    kinds = {(e.kind, e.host) for e in events}
    assert ("failed", "lamp-02") in kinds and ("changed", "lamp-01") in kinds
    assert all(e.duration_s is not None for e in events if e.kind in ("ok", "changed"))
    # the inventory was written for the run, and the run recorded
    assert (tmp_path / "run" / "ansible" / "inventory" / "hosts.yml").is_file()
    (recorded,) = records.read_phases(tmp_path / "run")
    assert recorded["phase"] == "commission" and recorded["status"] == "failed"
    assert recorded["hosts"]["lamp-02"]["outcome"] == "failed"
    assert recorded["extravars"] == {"greeting": "hi"}
    assert recorded["end"] >= recorded["start"]
    assert recorded["hosts"]["co2-01"]["skipped_steps"] == [skipped]
    text = json.dumps(recorded)
    assert "digest-mismatch" in text
    table = summary(result)
    assert table.row_count == 6
    assert f"skipped {skipped}" in list(table.columns[-1].cells)


def test_limit_narrows_the_hosts(project: Path, backend: FakeEngine) -> None:
    result = runner.run_phase(
        "commission",
        engine=backend,
        run="ans-runner",
        limit="vendor_acme",  # type: ignore[arg-type]
    )
    assert set(result.hosts) == {"thermostat-01", "thermostat-02"}
    assert result.succeeded


def test_nothing_ran_is_an_error_with_ansibles_words(project: Path, backend: FakeEngine) -> None:
    with pytest.raises(runner.PhaseError, match="before any task ran"):
        runner.run_phase(
            "commission",
            engine=backend,
            run="ans-runner",
            limit="nosuchhost",  # type: ignore[arg-type]
        )


def test_unknown_phase(project: Path) -> None:
    with pytest.raises(runner.PhaseError, match="unknown phase 'upgrade'"):
        runner.playbook_path("upgrade")


def test_collector_counts_from_the_recap() -> None:
    collector = runner._Collector(None)
    collector({"event": "playbook_on_task_start", "event_data": {"task": "t"}})
    collector(
        {
            "event": "runner_on_unreachable",
            "event_data": {"host": "a", "task": "t", "res": {"msg": "container is not running"}},
        }
    )
    collector(
        {
            "event": "runner_on_failed",
            "event_data": {"host": "b", "task": "t", "res": {"msg": "x"}, "ignore_errors": True},
        }
    )
    collector(
        {
            "event": "playbook_on_stats",
            "event_data": {"ok": {"b": 1}, "dark": {"a": 1}, "failures": {}, "ignored": {"b": 1}},
        }
    )
    out = collector.outcomes()
    assert out["a"].outcome == "unreachable" and out["a"].reason == "t: container is not running"
    assert out["b"].outcome == "ok" and out["b"].reason == ""


def test_failure_message_prefers_msg_then_items() -> None:
    assert runner.failure_message({"msg": "  a\n b "}) == "a b"
    looped = {"results": [{"failed": False}, {"failed": True, "msg": "second"}]}
    assert runner.failure_message(looped) == "second"
    assert runner.failure_message({"module_stderr": "Traceback"}) == "Traceback"
    assert runner.failure_message({}) == "failed (no message)"
    assert len(runner.failure_message({"msg": "x" * 1000})) == runner.REASON_LIMIT


def test_records_append_and_skip_torn_lines(tmp_path: Path) -> None:
    base = {"phase": "install", "start": 1.0, "end": 2.0, "hosts": {}}
    path = records.record_phase(tmp_path, base)
    records.record_phase(tmp_path, {**base, "phase": "commission"})
    with path.open("a") as handle:
        handle.write('{"phase": "maint')  # a crash mid-write
    assert [r["phase"] for r in records.read_phases(tmp_path)] == ["install", "commission"]
    assert (path.stat().st_mode & 0o777) == 0o600
    with pytest.raises(ValueError, match="hosts"):
        records.record_phase(tmp_path, {"phase": "x", "start": 1, "end": 2})


def test_extravars() -> None:
    assert parse_extravars(["firmware_version=2.0.0", "a=b=c"]) == {
        "firmware_version": "2.0.0",
        "a": "b=c",
    }
    assert parse_extravars(['{"maintenance_rekey": false}']) == {"maintenance_rekey": False}
    with pytest.raises(TestbedError):
        parse_extravars(["novalue"])
    with pytest.raises(TestbedError):
        parse_extravars(["{not json"])


def test_resume_continues_the_last_failed_run(tmp_path: Path) -> None:
    with pytest.raises(runner.PhaseError, match="no run"):
        runner.resumed_start(tmp_path, "maintain")
    base = {"phase": "maintain", "start": 10.0, "end": 20.0, "hosts": {}, "status": "failed"}
    records.record_phase(tmp_path, base)
    records.record_phase(tmp_path, {**base, "phase": "install", "start": 30.0})
    assert runner.resumed_start(tmp_path, "maintain") == 10.0
    records.record_phase(tmp_path, {**base, "start": 40.0, "status": "successful"})
    with pytest.raises(runner.PhaseError, match="succeeded"):
        runner.resumed_start(tmp_path, "maintain")
