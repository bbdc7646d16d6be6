"""`testbed move` as a use case, against a SCRIPTED backend built from the real plan of
topologies/two-floors.yaml (the real move is tests/integration/test_mobility.py): every refusal
comes before any change, a move does its steps in order with the addresses the planner's
convention gives, the record in the run directory makes status show the current PAN."""

from __future__ import annotations

import dataclasses
import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from testbed.contracts.radio import RadioPanConfig
from testbed.engines.base import ExecResult, NodeStatus
from testbed.errors import MoveError
from testbed.node.radio.addressing import link_local
from testbed.plan import make_plan
from testbed.topology import load_topology
from testbed.usecases import mobility, placement
from tests.unit.compose.conftest import ROOT

RUN = "mob-unit"


def _nodes(topology: str) -> list[NodeStatus]:
    plan = make_plan(load_topology(ROOT / "topologies" / topology), RUN)
    return [
        NodeStatus(
            run=RUN,
            node=n.name,
            role=n.role,
            kind=n.config.attributes.get("kind", ""),
            state="running",
            resource=n.resource,
            image="testbed/node:x",
            addresses={i.network: i.ipv6.split("/")[0] for i in n.config.interfaces},
            # as Docker shows them: the kind is a label of its own, not an attribute
            attributes={k: v for k, v in n.config.attributes.items() if k != "kind"},
        )
        for n in plan.nodes
    ]


class ScriptedBackend:
    """NOT Docker: answers control actions and commands the way the nodes do, records them."""

    name = "scripted"

    def __init__(self, nodes: list[NodeStatus], read_at: str | None = None) -> None:
        self.nodes = nodes
        self.calls: list[tuple[str, ...]] = []
        self.read_at = read_at  # the address the backend reads the moved thing at
        self.fail_exec = False  # the re-addressing script fails

    def runs(self) -> dict[str, int]:
        return {RUN: len(self.nodes)}

    def empty_networks(self, run: str) -> list[str]:
        return []

    def status(self, run: str | None = None) -> list[NodeStatus]:
        return list(self.nodes)

    def attach_network(self, run: str, node: str, network: str, ipv6: str) -> None:
        self.calls.append(("attach", node, network, ipv6))

    def detach_network(self, run: str, node: str, network: str) -> None:
        self.calls.append(("detach", node, network))

    def exec(self, run: str, node: str, command: list[str]) -> ExecResult:
        if command[:4] == ["python3", "-m", "testbed.node.probe", "action"]:
            action, params = command[4], json.loads(command[5])
            self.calls.append(("action", node, action, json.dumps(params, sort_keys=True)))
            result: dict[str, Any] = {"changed": True}
            if action == "moved":
                result = {"lifecycle": "operational", "handshakes": 1}
            return ExecResult(0, json.dumps({"result": result}).encode())
        if command[:4] == ["ip", "-6", "-j", "route"]:
            router = "fd00::1"  # replaced below by the thing's planned router
            for n in self.nodes:
                if n.node == node:
                    router = str(placement.radio_of(n).router)  # type: ignore[union-attr]
            routes = [
                {"dst": "fd96::/64", "gateway": router, "dev": "lowpan0"},
                {"dst": "default", "dev": "lowpan0"},
            ]
            return ExecResult(0, json.dumps(routes).encode())
        self.calls.append(("exec", node, command[-1]))
        if self.fail_exec:
            return ExecResult(2, b"RTNETLINK answers: Operation not permitted")
        return ExecResult(0, b"")

    def node_state(self, run: str, node: str) -> dict[str, Any] | None:
        if node == "backend":
            things = {}
            if self.read_at:
                things["lamp-101"] = {
                    "name": "lamp-101",
                    "address": self.read_at,
                    "last": {"light": {"outcome": "ok", "at": 4e9}},
                }
            return {"state": {"kind": "backend", "backend": {"things": things}}}
        return {"state": {"bootstrap": {"profile": "edhoc-oscore", "outcome": "success",
                                        "messages": [{"direction": "sent", "bytes": 40,
                                                      "datagrams": 1}]}}}  # fmt: skip


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("TESTBED_HOME", str(tmp_path))
    return tmp_path


def _radio(nodes: list[NodeStatus], name: str) -> RadioPanConfig:
    radio = placement.radio_of(next(n for n in nodes if n.node == name))
    assert radio is not None
    return radio


@pytest.mark.parametrize(
    ("thing", "pan", "words"),
    [
        ("lamp-999", "floor2", "has no thing 'lamp-999'"),
        ("br1", "floor2", "br1 is a border_router, not a thing"),
        ("lamp-101", "floor1", "is on PAN floor1 already"),
        ("lamp-101", "floor9", "has no PAN 'floor9'"),
    ],
)
def test_refusals_name_the_problem_and_change_nothing(
    thing: str, pan: str, words: str, home: Path
) -> None:
    backend = ScriptedBackend(_nodes("two-floors.yaml"))
    with pytest.raises(MoveError) as caught:
        mobility.move(backend, thing, pan, RUN)  # type: ignore[arg-type]
    assert words in caught.value.message
    assert caught.value.exit_code == 2
    assert backend.calls == []
    assert not (home / "runs" / RUN / placement.MOVES_FILE).exists()


def test_a_thing_on_a_plain_network_is_refused() -> None:
    backend = ScriptedBackend(_nodes("minimal.yaml"))
    thing = next(n.node for n in backend.nodes if n.role == "thing")
    with pytest.raises(MoveError, match="not a station of a radio PAN"):
        mobility.move(backend, thing, "floor2", RUN)  # type: ignore[arg-type]
    assert backend.calls == []


def test_a_stopped_thing_is_refused() -> None:
    nodes = _nodes("two-floors.yaml")
    nodes = [n if n.node != "lamp-101" else dataclasses.replace(n, state="exited") for n in nodes]
    backend = ScriptedBackend(nodes)
    with pytest.raises(MoveError, match="lamp-101 is exited"):
        mobility.move(backend, "lamp-101", "floor2", RUN)  # type: ignore[arg-type]
    assert backend.calls == []


def test_a_move_runs_its_steps_in_order_with_the_new_pans_addresses(home: Path) -> None:
    nodes = _nodes("two-floors.yaml")
    old, hub = _radio(nodes, "lamp-101"), _radio(nodes, "br2")
    # lamp-201 holds lamp-101's short address on floor2: the move takes the first free one.
    assert _radio(nodes, "lamp-201").short == old.short
    new_ip = ipaddress.IPv6Address(int(hub.prefix.network_address) | 0xFF_FE00_0000 | 0x100)
    backend = ScriptedBackend(nodes, read_at=str(new_ip))
    result = mobility.move(backend, "lamp-101", "floor2", RUN, wait_read=5.0)  # type: ignore[arg-type]
    assert (result.old_pan, result.pan, result.router, result.old_router) == (
        "floor1", "floor2", "br2", "br1",
    )  # fmt: skip
    assert result.address == str(new_ip) and result.short == 0x100
    assert result.handshakes == 1 and result.bootstrap is not None
    assert result.bootstrap["bytes"] == 40
    assert set(result.timings) == {"radio", "reregistered", "read_again"}
    kinds = [(c[0], c[1], c[2]) for c in backend.calls]
    carrier = placement.carrier_address(hub, 0x100)
    assert kinds == [
        ("action", "br2", "station-admit"),
        ("attach", "lamp-101", "pan-floor2"),
        ("action", "lamp-101", "radio-move"),
        ("exec", "lamp-101", kinds[3][2]),
        ("action", "br1", "station-release"),
        ("detach", "lamp-101", "pan-floor1"),
        ("action", "lamp-101", "moved"),
    ]
    admit = json.loads(backend.calls[0][3])
    assert admit == {"pan": "floor2", "name": "lamp-101", "short": 0x100, "carrier": carrier}
    assert backend.calls[1][3] == carrier
    moved = RadioPanConfig.from_attribute("floor2", json.loads(backend.calls[2][3])["attribute"])
    assert (moved.ip, moved.medium, moved.router) == (new_ip, hub.medium, str(hub.ip))
    assert (moved.channel, moved.pan_id) == (hub.channel, hub.pan_id)
    script = backend.calls[3][2]
    assert f"ip -6 addr replace {new_ip}/64 dev lowpan0 nodad" in script
    assert f"ip -6 route replace fd96::/64 via {hub.ip} dev lowpan0" in script
    assert f"ip -6 addr del {old.address} dev lowpan0" in script
    assert f"ip -6 route replace {old.prefix} via {hub.ip} dev lowpan0" in script
    assert script.index("addr replace") < script.index("addr del")
    # Recorded: status shows the thing on floor2, its data address the new one.
    shown = {n.node: n for n in mobility.current(backend, RUN)}  # type: ignore[arg-type]
    lamp = shown["lamp-101"]
    assert (lamp.attributes["pan"], lamp.attributes[placement.PLANNED_PAN]) == ("floor2", "floor1")
    assert placement.radio_of(lamp).ip == new_ip  # type: ignore[union-attr]
    assert "radio-floor1" not in lamp.attributes
    path = home / "runs" / RUN / placement.MOVES_FILE
    assert path.stat().st_mode & 0o777 == 0o600


def test_a_backend_that_never_reads_the_new_address_is_an_error() -> None:
    backend = ScriptedBackend(_nodes("two-floors.yaml"), read_at="fd00::dead")
    assert mobility._backends(backend, RUN) == ["backend"]  # type: ignore[arg-type]
    with pytest.raises(MoveError, match="did not read it there"):
        mobility.move(backend, "lamp-101", "floor2", RUN, wait_read=0.6)  # type: ignore[arg-type]


def test_a_move_that_fails_midway_is_undone_in_reverse(home: Path) -> None:
    nodes = _nodes("two-floors.yaml")
    old = _radio(nodes, "lamp-101")
    backend = ScriptedBackend(nodes)
    backend.fail_exec = True
    with pytest.raises(MoveError, match="re-addressing on PAN floor2 failed") as caught:
        mobility.move(backend, "lamp-101", "floor2", RUN)  # type: ignore[arg-type]
    assert "the move was undone" in caught.value.hint
    kinds = [(c[0], c[1], c[2]) for c in backend.calls]
    assert kinds == [
        ("action", "br2", "station-admit"),
        ("attach", "lamp-101", "pan-floor2"),
        ("action", "lamp-101", "radio-move"),
        ("exec", "lamp-101", kinds[3][2]),  # the move's addressing: fails
        ("exec", "lamp-101", kinds[4][2]),  # undone: the old addresses back (fails too here)
        ("action", "lamp-101", "radio-move"),  # the radio back to floor1
        ("detach", "lamp-101", "pan-floor2"),
        ("action", "br2", "station-release"),
    ]
    back = json.loads(backend.calls[5][3])
    assert back["pan"] == "floor1"
    assert RadioPanConfig.from_attribute("floor1", back["attribute"]) == old
    assert not (home / "runs" / RUN / placement.MOVES_FILE).exists()


def test_a_policy_building_is_refused() -> None:
    nodes = _nodes("two-floors.yaml")
    policed = {"policy-forward": "[]"}
    nodes = [
        n if n.node != "br1" else dataclasses.replace(n, attributes={**n.attributes, **policed})
        for n in nodes
    ]
    backend = ScriptedBackend(nodes)
    with pytest.raises(MoveError, match="forward policy"):
        mobility.move(backend, "lamp-101", "floor2", RUN)  # type: ignore[arg-type]
    assert backend.calls == []


def test_the_link_local_address_is_the_one_the_radio_derives() -> None:
    for short in (0x11, 0x100, 0xFFFD):
        derived = ipaddress.IPv6Address(link_local(short.to_bytes(2, "big")))
        assert placement.link_local(short) == derived


def test_free_short_keeps_the_own_one_when_it_is_free() -> None:
    assert placement.free_short(0x11, {0x10, 0x12}) == 0x11
    assert placement.free_short(0x11, {0x11}) == placement.MOVED_SHORT_BASE
    assert placement.free_short(0x11, {0x11, 0x100, 0x101}) == 0x102


def test_read_at_needs_the_new_address_and_a_fresh_successful_read() -> None:
    listing = {"x": {"name": "t", "address": "fd::1",
                     "last": {"r": {"outcome": "ok", "at": 100.0}}}}  # fmt: skip
    state = {"state": {"kind": "backend", "backend": {"things": listing}}}
    assert mobility.read_at(state, "t", "fd::1", since=99.0)
    assert not mobility.read_at(state, "t", "fd::1", since=101.0)
    assert not mobility.read_at(state, "t", "fd::2", since=0.0)
    assert not mobility.read_at(None, "t", "fd::1", since=0.0)


def test_a_packed_thing_is_refused() -> None:
    # A packed thing's status as the engine reports it (engines/packed.py expand): its thing
    # host's container, its own attributes with the host's name.
    nodes = _nodes("two-floors.yaml")
    nodes = [
        n
        if n.node != "lamp-101"
        else dataclasses.replace(n, attributes={**n.attributes, "thing-host": "lamp-pack-01"})
        for n in nodes
    ]
    backend = ScriptedBackend(nodes)
    with pytest.raises(MoveError, match="packed in thing host lamp-pack-01"):
        mobility.move(backend, "lamp-101", "floor2", RUN)  # type: ignore[arg-type]
    assert backend.calls == []
