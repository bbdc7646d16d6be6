"""A radio PAN in the plan, its node attributes, radio metrics, frames per bootstrap."""

from __future__ import annotations

import asyncio
import dataclasses
import ipaddress
import logging
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from testbed.contracts.node_config import NodeConfig
from testbed.contracts.radio import RadioPanConfig, ext_from_short, radio_pans, short_from_ext
from testbed.node.bootstrap.profile import BootstrapContext, BootstrapResult, FactoryIdentity
from testbed.node.bootstrap.profile import TrustCenterRef as Ref
from testbed.node.errors import ActionError, ConfigError
from testbed.node.logs import EventLog
from testbed.node.radio.addressing import lladdr_for_ipv6
from testbed.node.radio.attach import RadioAttachment, probability
from testbed.node.radio.bootstrap import RadioMetered
from testbed.node.radio.metrics import NodeSample, PanSample, RadioCollector, Samples
from testbed.plan.planner import make_plan
from testbed.topology.loader import load_topology

ROOT = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def plan():  # type: ignore[no-untyped-def]
    return make_plan(load_topology(ROOT / "topologies" / "radio.yaml"), "radio-unit")


def test_a_radio_pan_gets_a_carrier_network_and_keeps_its_prefix(plan) -> None:  # type: ignore[no-untyped-def]
    prefix = ipaddress.IPv6Network(plan.ula_prefix)
    carrier = ipaddress.IPv6Network(plan.network("pan-floor1").subnet6)
    pan64 = ipaddress.IPv6Network((int(prefix.network_address) | 0x10 << 64, 64))
    assert carrier != pan64 and carrier.subnet_of(prefix)
    tc = plan.node("tc-facility").config
    # Trust center and backend route the PAN /64 (not the carrier) via the router.
    assert str(pan64) in {r.prefix for r in tc.routes}
    assert str(carrier) not in {r.prefix for r in tc.routes}
    br = radio_pans(plan.node("br1").config.attributes)[0]
    for name in ("thermostat-01", "lamp-01", "lamp-02"):
        config = plan.node(name).config
        (mine,) = radio_pans(config.attributes)
        assert (
            mine.prefix == pan64 and ipaddress.IPv6Address(config.address("pan-floor1")) in carrier
        )
        # The PAN address embeds the short address; its link-layer address follows from it.
        assert lladdr_for_ipv6(mine.ip.packed) == mine.short_addr
        assert mine.medium == plan.node("br1").config.address("pan-floor1")
        assert mine.router == str(br.ip)
        assert {r.via for r in config.routes} == {str(br.ip)}
        assert br.names[f"{mine.short:04x}"] == name
        # The medium binds each planned station to its planned carrier address.
        assert br.carriers[name] == config.address("pan-floor1") and not mine.carriers
    assert "br1" not in br.carriers  # the router's station lives in the hub's process
    assert br.reassembly_policy == "per-station" and br.reassembly_limits().total_bytes == 10240
    assert br.loss == 0.0 and br.seed == 7 and br.channel == 15 and br.pan_id == 0xABCD
    # The hub admits the default 16 guests beyond the planned stations; things carry no bound.
    assert br.guest_stations == 16
    assert all(
        radio_pans(n.config.attributes)[0].guest_stations is None
        for n in plan.nodes
        if n.role == "thing"
    )


def test_bridge_pans_are_planned_as_before() -> None:
    bridge = ROOT / "tests" / "fixtures" / "topologies" / "good" / "base.yaml"  # medium: bridge
    plan = make_plan(load_topology(bridge), "radio-unit")
    prefix = ipaddress.IPv6Network(plan.ula_prefix)
    pan = ipaddress.IPv6Network(plan.network("pan-p1").subnet6)
    assert pan == ipaddress.IPv6Network((int(prefix.network_address) | 0x10 << 64, 64))
    assert not any(k.startswith("radio-") for n in plan.nodes for k in n.config.attributes)


def test_attribute_round_trip_and_address_convention() -> None:
    config = RadioPanConfig(
        pan="p", address="fd00::ff:fe00:11/64", short=0x11, medium="fd00:1::10", seed=3
    )
    assert RadioPanConfig.from_attribute("p", config.to_attribute()) == config
    bounded = dataclasses.replace(config, guest_stations=0)
    assert RadioPanConfig.from_attribute("p", bounded.to_attribute()) == bounded
    assert short_from_ext(ext_from_short(0x1234)) == b"\x12\x34"
    assert short_from_ext(bytes(8)) is None
    with pytest.raises(ValueError):
        RadioPanConfig(pan="p", address="fd00::1/48", short=1, medium="::1")
    with pytest.raises(ValueError):
        radio_pans({"radio-p": "{not json"})
    shared = dataclasses.replace(
        config, reassembly_policy="shared", reassembly_buffer=4096, carriers={"a": "fd00::5"}
    )
    assert RadioPanConfig.from_attribute("p", shared.to_attribute()) == shared
    assert "reassembly_policy" not in config.to_attribute()  # defaults stay out
    with pytest.raises(ValueError, match="reassembly policy"):
        dataclasses.replace(config, reassembly_policy="fifo")


def test_the_reassembly_switch_reaches_the_router(tmp_path: Path) -> None:
    text = (
        (ROOT / "topologies" / "radio.yaml")
        .read_text()
        .replace(
            "    seed: 7\n",
            "    seed: 7\n    reassembly: {policy: shared, buffer_bytes: 6000}\n",
        )
    )
    path = tmp_path / "shared.yaml"
    path.write_text(text)
    plan = make_plan(load_topology(path), "radio-unit")
    br = radio_pans(plan.node("br1").config.attributes)[0]
    limits = br.reassembly_limits()
    assert (limits.policy, limits.total_bytes, limits.per_sender_bytes) == ("shared", 6000, 2560)
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("buffer_bytes: 6000", "buffer_bytes: 2000"))
    with pytest.raises(Exception, match="per_sender_bytes"):
        load_topology(bad)


def node_config(role: str, attributes: dict[str, str]) -> NodeConfig:
    return NodeConfig(
        run="r", building="b", node="n", role=role, interfaces=(), attributes=attributes
    )


def test_attachment_only_for_radio_pans(tmp_path: Path) -> None:
    log = EventLog(logging.getLogger("radio-test"))
    assert RadioAttachment.for_node(node_config("thing", {"pan": "p"}), log) is None
    one = RadioPanConfig(pan="a", address="fd00::ff:fe00:11/64", short=0x11, medium="::1")
    two = RadioPanConfig(pan="b", address="fd01::ff:fe00:11/64", short=0x11, medium="::1")
    attrs = {one.key: one.to_attribute(), two.key: two.to_attribute()}
    with pytest.raises(ConfigError):
        RadioAttachment.for_node(node_config("thing", attrs), log)
    br = RadioAttachment.for_node(node_config("border_router", attrs), log)
    assert br is not None and set(br.pans) == {"a", "b"}
    assert set(br.actions()) == {
        "link-show",
        "link-set",
        "link-reset",
        "station-admit",
        "station-release",
    }
    with pytest.raises(ActionError):
        asyncio.run(br.actions()["link-set"]({"loss": 0.5}))  # which PAN?


def test_loss_parameters() -> None:
    assert probability("10%", "loss") == pytest.approx(0.1)
    assert probability(0.25, "loss") == 0.25
    for bad in ("abc", 1.5, "-1%"):
        with pytest.raises(ActionError):
            probability(bad, "loss")


def test_collector_exports_published_samples() -> None:
    registry = CollectorRegistry()
    collector = RadioCollector()
    registry.register(collector)
    collector.publish(
        Samples(
            (
                NodeSample(
                    "p", "br", 10, 7, 0.04, {"channel-loss": 2}, {1: 3, 5: 1}, {"mld": 4}, 1, 0
                ),
            ),
            (PanSample("p", 0.1, 0.1, {"too-many-nodes": 5, "garbled-short": 1}),),
        )
    )
    text = generate_latest(registry).decode()
    assert 'testbed_radio_frames_sent_total{node="br",pan="p"} 10.0' in text
    assert 'testbed_radio_frames_dropped_total{cause="channel-loss",node="br",pan="p"} 2.0' in text
    assert 'testbed_radio_fragments_per_packet_bucket{le="1",node="br",pan="p"} 3.0' in text
    assert 'testbed_radio_fragments_per_packet_bucket{le="4",node="br",pan="p"} 3.0' in text
    assert 'testbed_radio_fragments_per_packet_bucket{le="6",node="br",pan="p"} 4.0' in text
    assert 'testbed_radio_fragments_per_packet_sum{node="br",pan="p"} 8.0' in text
    assert 'testbed_radio_queue_length{node="br",pan="p"} 0.0' in text
    assert 'testbed_radio_link_loss_ratio{pan="p"} 0.1' in text
    assert 'testbed_radio_datagrams_refused_total{cause="too-many-nodes",pan="p"} 5.0' in text


class _Profile:
    name = "edhoc-oscore"

    def __init__(self, counters: dict[str, int]) -> None:
        self.counters = counters

    async def bootstrap(self, ctx: BootstrapContext) -> BootstrapResult:
        self.counters["frames_sent"] += 9
        self.counters["frames_received"] += 12
        return BootstrapResult.measured(self.name, 0.2, [])


def test_frames_per_bootstrap_go_into_the_report() -> None:
    counters = {"frames_sent": 5, "frames_received": 1}
    metered = RadioMetered(_Profile(counters), lambda: counters)
    ctx = BootstrapContext(
        node="n",
        identity=FactoryIdentity(private_key=Path("k")),
        trust_center=Ref(uri="coap://[::1]"),
        csr_der=b"",
    )
    result = asyncio.run(metered.bootstrap(ctx))
    report = result.to_dict()
    assert report["radio"] == {"frames_sent": 9, "frames_received": 12}
    assert report["outcome"] == "success" and report["profile"] == "edhoc-oscore"


def test_an_idle_station_keeps_its_published_samples_and_a_busy_one_renews_them() -> None:
    """A thing's station publishes its samples again only when one of its counters moved (a
    packed thing host runs this twice a second for each of its things); every kind of counter
    that goes into a sample counts as a move."""
    log = EventLog(logging.getLogger("radio-test"))
    one = RadioPanConfig(pan="a", address="fd00::ff:fe00:11/64", short=0x11, medium="::1")
    thing = RadioAttachment.for_node(node_config("thing", {one.key: one.to_attribute()}), log)
    assert thing is not None
    pan = thing.pans["a"]
    thing.publish()
    first = thing.collector.samples
    assert [n.frames_sent for n in first.nodes] == [0]
    thing.publish()
    assert thing.collector.samples is first  # nothing moved: not rebuilt
    assert pan.client is not None
    moves = [
        lambda: setattr(pan.port.station, "frames_sent", 3),
        lambda: pan.port.station.dropped.update(["duplicate"]),
        lambda: pan.port.station.reassembler.dropped_fragments.update(["garbled"]),
        lambda: pan.port.station.fragments_per_packet.update([2]),
        lambda: pan.client.dropped.update(["foreign-sender"]),  # type: ignore[union-attr]
        lambda: setattr(pan.tun, "write_dropped", 1),
        lambda: pan.port.packets_filtered.update(["mld"]),
    ]
    for move in moves:
        before = thing.collector.samples
        move()
        thing.publish()
        assert thing.collector.samples is not before
    (sample,) = thing.collector.samples.nodes
    assert sample.frames_sent == 3 and sample.filtered == {"mld": 1}
    assert sample.dropped["tun-write"] == 1 and sample.dropped["foreign-sender"] == 1
