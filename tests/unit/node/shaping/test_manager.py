"""The node's link shaping: implementation choice, devices, actions, metrics (commands recorded,
nothing applied to this host)."""

from __future__ import annotations

import asyncio
import json
import logging

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from testbed.contracts.impairment import Impairment, LinkSpec
from testbed.contracts.node_config import Interface, NodeConfig
from testbed.node.errors import ActionError, NetSetupError
from testbed.node.logs import EventLog
from testbed.node.shaping import manager as mgr
from testbed.node.shaping.runner import Recorder, Result

BACKBONE, INTERNET = "fd00:0:0:1::2", "fd00:0:0:2::2"
ADDR = json.dumps(
    [
        {"ifname": "lo", "addr_info": [{"family": "inet6", "local": "::1"}]},
        {"ifname": "eth1", "addr_info": [{"family": "inet6", "local": BACKBONE}]},
        {"ifname": "eth2", "addr_info": [{"family": "inet6", "local": INTERNET}]},
    ]
)


def config() -> NodeConfig:
    specs = [
        LinkSpec("backbone", Impairment(), seed=1),
        LinkSpec("internet", Impairment(delay=0.02), seed=2),
    ]
    return NodeConfig(
        run="r",
        building="b",
        node="br1",
        role="border_router",
        interfaces=(
            Interface("mgmt", "fd00:0:0:9::2/64"),
            Interface("backbone", f"{BACKBONE}/64"),
            Interface("internet", f"{INTERNET}/64"),
        ),
        attributes={s.key: s.to_attribute() for s in specs},
        forwarding=True,
    )


def answer(netem_ok: bool):  # type: ignore[no-untyped-def]
    def reply(cmd: list[str]) -> Result:
        if cmd[:3] == ["ip", "-j", "addr"]:
            return Result(0, ADDR, "")
        if "netem" in cmd and cmd[:3] == ["tc", "qdisc", "add"] and not netem_ok:
            return Result(2, "", "Error: Specified qdisc kind is unknown.")
        if cmd[:3] == ["tc", "-s", "-j"]:
            return Result(0, json.dumps([{"kind": "netem", "packets": 10, "drops": 2}]), "")
        return Result(0, "", "")

    return reply


def make(netem_ok: bool = True) -> tuple[mgr.LinkShaping, Recorder]:
    rec = Recorder(answer=answer(netem_ok))
    shaping = mgr.LinkShaping.for_node(config(), EventLog(logging.getLogger("t")))
    assert shaping is not None
    shaping.runner = rec
    return shaping, rec


def test_only_border_routers_shape() -> None:
    plain = NodeConfig("r", "b", "t1", "thing", (Interface("mgmt", "fd00::1/64"),))
    assert mgr.LinkShaping.for_node(plain, EventLog(logging.getLogger("t"))) is None


def test_device_lookup() -> None:
    assert mgr.device_for(INTERNET, ADDR) == "eth2"
    assert mgr.device_for("fd00::99", ADDR) is None
    assert mgr.device_for(BACKBONE, "not json") is None


def test_netem_is_chosen_where_the_probe_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mgr.FORCE_ENV, raising=False)
    shaping, rec = make(netem_ok=True)

    async def scenario() -> None:
        await shaping.start()
        await shaping.stop()

    asyncio.run(scenario())
    assert shaping.implementation == "netem"
    snap = shaping.snapshot()
    assert snap["links"]["internet"]["device"] == "eth2"
    assert snap["links"]["internet"]["describe"] == "delay 20ms"
    # The planned internet delay was set up on eth2 and on its IFB; backbone had nothing to do.
    adds = [c for c in rec.lines if c[:3] == ["tc", "qdisc", "add"] and "netem" in c]
    assert {c[4] for c in adds} == {"eth2", "ifb-internet", "tbnetemprobe"}


def test_userspace_is_chosen_without_netem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(mgr.FORCE_ENV, raising=False)
    shaping, _ = make(netem_ok=False)
    asyncio.run(shaping.choose())
    assert shaping.implementation == "userspace-tap"
    assert "qdisc kind is unknown" in shaping.reason


def test_forcing_an_implementation(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mgr.FORCE_ENV, "userspace")
    shaping, rec = make(netem_ok=True)
    asyncio.run(shaping.choose())
    assert shaping.implementation == "userspace-tap" and rec.lines == []


def test_actions_set_reset_and_metrics(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mgr.FORCE_ENV, "netem")
    shaping, _rec = make()
    registry = CollectorRegistry()
    shaping.register_metrics(registry)
    actions = shaping.actions()

    async def scenario() -> dict[str, object]:
        await shaping.start()
        answer = await actions["shaping-set"](
            {"link": "backbone", "impairment": {"delay": 0.05, "loss": 0.2}}
        )
        with pytest.raises(ActionError, match="jitter"):
            await actions["shaping-set"]({"link": "backbone", "impairment": {"jitter": 0.1}})
        with pytest.raises(ActionError, match="no IP link"):
            await actions["shaping-set"]({"link": "pan-floor1", "impairment": {}})
        shown = await actions["shaping-show"]({})
        assert shown["links"]["backbone"]["describe"] == "delay 50ms, loss 20%"
        reset = await actions["shaping-reset"]({"link": "backbone"})
        assert reset["describe"] == "none"
        return answer

    answer = asyncio.run(scenario())
    assert answer["implementation"] == "netem" and answer["device"] == "eth1"
    text = generate_latest(registry).decode()
    # netem's counters: both directions' qdiscs read (10 sent + 2 dropped each), kept monotonic
    # across the teardown that reset brought.
    assert 'testbed_link_packets_total{action="shaped",link="backbone"} 24.0' in text
    assert 'testbed_link_packets_total{action="dropped",link="backbone"} 4.0' in text
    assert 'testbed_link_info{impairment="delay 20ms",implementation="netem",link="internet"}' in (
        text
    )


def test_a_refused_command_is_a_net_setup_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(mgr.FORCE_ENV, "netem")
    shaping, _rec = make(netem_ok=False)
    with pytest.raises(NetSetupError, match="cannot shape link internet"):
        asyncio.run(shaping.start())
