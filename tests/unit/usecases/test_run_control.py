"""Stop, start and restart of a run that exists, against a scripted backend: the order of `up`,
the readiness probe for nodes only, things awaited; a stopped run told apart from a running one;
the backend chosen by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import pytest
from typer.testing import CliRunner

from testbed import bringup, engines, usecases
from testbed.cli.app import app
from testbed.engines.base import EventFn, NodeStatus
from testbed.errors import AlreadyRunning, InputError, PackedThingError, RunStopped
from testbed.plan import make_plan
from testbed.topology import load_topology
from testbed.usecases.run_control import tiers
from tests.unit.compose.conftest import ROOT

NODE = NodeStatus(
    run="office", node="", role="", kind="", state="exited", resource="", image="testbed/node:x"
)
ROLES = {
    "thermostat-01": "thing",
    "br1": "border_router",
    "prometheus": "observer",
    "tc-facility": "trust_center",
    "backend": "internet_host",
    "lamp-01": "thing",
}


def building(state: str = "exited") -> list[NodeStatus]:
    return [
        dataclasses.replace(NODE, node=name, role=role, resource=f"tb-office-{name}", state=state)
        for name, role in ROLES.items()
    ]


class ScriptedEngine:
    """Containers that exist; records what is stopped and started, and how."""

    name = "scripted"

    def __init__(self, nodes: list[NodeStatus]) -> None:
        self.nodes = {n.node: n for n in nodes}
        self.calls: list[tuple[str, list[str], bool]] = []

    def runs(self) -> dict[str, int]:
        return {"office": len(self.nodes) + 4}  # and networks

    def empty_networks(self, run: str) -> list[str]:
        return []

    def status(self, run: str | None = None) -> list[NodeStatus]:
        return list(self.nodes.values())

    def _set(self, names: Sequence[str], state: str) -> None:
        for name in names:
            self.nodes[name] = dataclasses.replace(self.nodes[name], state=state)

    def stop_nodes(self, run: str, nodes: Sequence[str]) -> list[str]:
        self.calls.append(("stop", sorted(nodes), False))
        running = [n for n in nodes if self.nodes[n].state == "running"]
        self._set(nodes, "exited")
        return sorted(running)

    def start_nodes(
        self, run: str, nodes: Sequence[str], on_event: EventFn, *, probe: bool = True
    ) -> None:
        self.calls.append(("start", sorted(nodes), probe))
        self._set(nodes, "running")
        for name in nodes:
            on_event("started", name)
            if probe:
                on_event("ready", name)

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        return {"state": {"lifecycle": "operational"}}


def test_start_follows_the_order_of_up_and_probes_nodes_only() -> None:
    backend = ScriptedEngine(building())
    result = usecases.start(backend, "office")  # type: ignore[arg-type]
    assert backend.calls == [
        ("start", ["backend", "br1", "tc-facility"], True),
        ("start", ["lamp-01", "thermostat-01"], True),
        ("start", ["prometheus"], False),
    ]
    assert sorted(result.started) == sorted(ROLES)
    assert result.outcomes == {
        "thermostat-01": ("operational", ""),
        "lamp-01": ("operational", ""),
    }
    assert not result.failed


def test_start_leaves_running_nodes_alone_and_restart_of_one_node_touches_only_it() -> None:
    nodes = building("running")
    nodes[0] = dataclasses.replace(nodes[0], state="exited")  # thermostat-01
    backend = ScriptedEngine(nodes)
    usecases.start(backend, "office")  # type: ignore[arg-type]
    assert backend.calls == [("start", ["thermostat-01"], True)]
    backend.calls.clear()
    usecases.restart(backend, "office", "br1")  # type: ignore[arg-type]
    assert backend.calls == [("stop", ["br1"], False), ("start", ["br1"], True)]


def test_stop_stops_services_first_and_things_before_the_infrastructure() -> None:
    backend = ScriptedEngine(building("running"))
    stopped = usecases.stop(backend, "office")  # type: ignore[arg-type]
    assert [names for _, names, _ in backend.calls] == [
        ["prometheus"],
        ["lamp-01", "thermostat-01"],
        ["backend", "br1", "tc-facility"],
    ]
    assert sorted(stopped) == sorted(ROLES)


def test_tiers_put_unknown_roles_last() -> None:
    assert [[n.node for n in tier] for tier in tiers(building())] == [
        ["br1", "tc-facility", "backend"],
        ["thermostat-01", "lamp-01"],
        ["prometheus"],
    ]


class PackedEngine(ScriptedEngine):
    """The building plus a thing host running lamp-02 and lamp-03: a packed thing has no
    container, and its status is its thing host's (testbed.engines.packed)."""

    PACK = ("lamp-02", "lamp-03")

    def __init__(self, state: str) -> None:
        host = dataclasses.replace(
            NODE, node="lamp-pack-01", role="thing_host", resource="tb-office-lamp-pack-01",
            state=state,
        )  # fmt: skip
        super().__init__([*building(state), host])

    def status(self, run: str | None = None) -> list[NodeStatus]:
        host = self.nodes["lamp-pack-01"]
        packed = [
            dataclasses.replace(host, node=name, role="thing", attributes={"thing-host": host.node})
            for name in self.PACK
        ]
        return [*self.nodes.values(), *packed]

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        if node != "lamp-pack-01":
            return super().node_state(run, node)
        return {"packed": {name: {"state": {"lifecycle": "operational"}} for name in self.PACK}}


def test_a_thing_host_starts_with_the_things_and_its_pack_is_awaited() -> None:
    backend = PackedEngine("exited")
    result = usecases.start(backend, "office")  # type: ignore[arg-type]
    assert backend.calls == [
        ("start", ["backend", "br1", "tc-facility"], True),
        ("start", ["lamp-01", "lamp-pack-01", "thermostat-01"], True),  # with the readiness probe
        ("start", ["prometheus"], False),
    ]
    assert set(result.outcomes) == {"lamp-01", "thermostat-01", "lamp-02", "lamp-03"}
    assert sorted(result.started) == sorted([*ROLES, "lamp-pack-01"])  # containers
    backend.calls.clear()
    usecases.stop(backend, "office")  # type: ignore[arg-type]
    assert backend.calls[1] == ("stop", ["lamp-01", "lamp-pack-01", "thermostat-01"], False)


def test_restarting_a_thing_host_restarts_its_pack_and_one_packed_thing_is_refused() -> None:
    backend = PackedEngine("running")
    result = usecases.restart(backend, "office", "lamp-pack-01")  # type: ignore[arg-type]
    assert backend.calls == [("stop", ["lamp-pack-01"], False), ("start", ["lamp-pack-01"], True)]
    assert set(result.outcomes) == {"lamp-02", "lamp-03"} and result.started == ["lamp-pack-01"]
    backend.calls.clear()
    for verb in (usecases.restart, usecases.stop, usecases.start):
        with pytest.raises(PackedThingError) as caught:
            verb(backend, "office", "lamp-02")  # type: ignore[operator]
        assert caught.value.exit_code == 2
        assert "lamp-02 is a packed thing: it runs in thing host lamp-pack-01 with 1 packmate" in (
            caught.value.message
        )
        assert "testbed restart lamp-pack-01 --run office" in caught.value.hint
        assert "--limit lamp-02" in caught.value.hint
    assert backend.calls == []  # nothing was stopped or started


def test_a_stopped_run_is_not_an_up_run() -> None:
    stopped = ScriptedEngine(building("exited"))
    with pytest.raises(RunStopped) as caught:
        bringup.ensure_not_running(stopped, "office")  # type: ignore[arg-type]
    assert caught.value.exit_code == 14 and "testbed start --run office" in caught.value.hint
    running = ScriptedEngine(building("running"))
    with pytest.raises(AlreadyRunning):
        bringup.ensure_not_running(running, "office")  # type: ignore[arg-type]


def test_status_lines_tell_stopped_and_partly_running_runs() -> None:
    assert usecases.state_lines(building("running")) == []
    (stopped,) = usecases.state_lines(building("exited"))
    assert "run office is stopped (5 nodes exist, none runs)" in stopped
    assert "testbed start --run office" in stopped
    partly = building("running")
    partly[1] = dataclasses.replace(partly[1], state="exited")
    (line,) = usecases.state_lines(partly)
    assert "partly running (4 of 5 nodes)" in line
    # The run's services do not count: a stopped Prometheus alone leaves the run running.
    services_down = [
        dataclasses.replace(n, state="exited") if n.role == "observer" else n
        for n in building("running")
    ]
    assert usecases.state_lines(services_down) == []


def test_an_engine_is_chosen_by_name() -> None:
    assert "docker" in engines.names() and engines.DEFAULT == "docker"
    with pytest.raises(InputError) as caught:
        engines.get("kubernetes-someday")
    assert caught.value.exit_code == 2 and "docker" in caught.value.hint
    result = CliRunner().invoke(app, ["--backend", "nope", "validate", "topologies/minimal.yaml"])
    # main() turns it into exit code 2; the runner hands over the error itself.
    assert isinstance(result.exception, InputError)
    assert "unknown engine 'nope'" in str(result.exception)


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--engine", "nope"], {}),
        (["--backend", "nope"], {}),  # the earlier name, kept as a hidden alias
        ([], {"TESTBED_ENGINE": "nope"}),
        ([], {"TESTBED_BACKEND": "nope"}),
    ],
)
def test_the_engine_option_its_variable_and_their_old_names(
    args: list[str], env: dict[str, str]
) -> None:
    result = CliRunner().invoke(app, [*args, "validate", "topologies/minimal.yaml"], env=env)
    assert isinstance(result.exception, InputError)
    assert "unknown engine 'nope'" in str(result.exception)


def test_the_engine_and_its_alias_must_agree() -> None:
    result = CliRunner().invoke(
        app, ["--engine", "docker", "--backend", "swarm", "validate", "topologies/minimal.yaml"]
    )
    assert isinstance(result.exception, InputError)
    assert "name different engines" in str(result.exception)
    ok = CliRunner().invoke(
        app, ["--engine", "docker", "--backend", "docker", "validate", "topologies/minimal.yaml"]
    )
    assert ok.exit_code == 0, ok.output
    assert "--backend" not in CliRunner().invoke(app, ["--help"]).output


def test_a_topology_made_in_code_plans_like_its_file() -> None:
    path = ROOT / "topologies" / "minimal.yaml"
    from_code, text = usecases.plan_of(load_topology(path), "code")
    from_file = make_plan(
        load_topology(path), "code", "", from_code.nodes[0].labels["testbed.run-dir"]
    )
    assert from_code.to_dict() == from_file.to_dict()
    assert load_topology(path) == load_topology_text(text)


def load_topology_text(text: str) -> Any:
    from testbed.topology.loader import parse_topology

    return parse_topology(text, source="<code>")


class LeftEngine(ScriptedEngine):
    """The building, stopped after lamp-01 was decommissioned; thermostat-01 never commissioned
    (``left``: its lifecycle state and its auto-commission attribute)."""

    def __init__(self, left: str, auto_commission: str) -> None:
        nodes = building()
        nodes[0] = dataclasses.replace(nodes[0], attributes={"auto-commission": auto_commission})
        super().__init__(nodes)
        self.left = left

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        lifecycle = {"lamp-01": "decommissioned", "thermostat-01": self.left}[node]
        return {"state": {"lifecycle": lifecycle}}


def test_start_does_not_wait_for_things_left_where_only_an_operator_moves_them_on() -> None:
    # No time to wait at all: what start still waits for would come back as a timeout.
    result = usecases.start(LeftEngine("installed", "false"), "office", timeout=0.0)  # type: ignore[arg-type]
    assert result.outcomes == {
        "lamp-01": ("decommissioned", ""),
        "thermostat-01": ("installed", ""),  # awaits the commission phase
    }
    assert result.resting == {"lamp-01", "thermostat-01"} and result.failed == {}


def test_start_still_waits_for_a_thing_that_commissions_itself() -> None:
    result = usecases.start(LeftEngine("installed", "true"), "office", timeout=0.0)  # type: ignore[arg-type]
    assert result.resting == {"lamp-01"}
    assert result.failed == {"thermostat-01": ("installed", "timeout: still not commissioned")}
    failed = usecases.start(LeftEngine("failed", "false"), "office", timeout=0.0)  # type: ignore[arg-type]
    assert failed.failed == {"thermostat-01": ("failed", "")}  # a failure is never resting
