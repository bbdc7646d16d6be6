"""The ``capture`` action's recorder and pcap: every transmission of the medium while it runs,
nothing afterwards, the medium restored; tshark reads ZEP -> 802.15.4 -> 6LoWPAN -> IPv6 ->
UDP -> CoAP without a malformed packet (where tshark is installed)."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import subprocess
from pathlib import Path

import pytest

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import mac
from testbed.node.radio.medium_types import OnAir
from testbed.node.shaping.aircapture import for_station, record, to_pcap
from tests.unit.node.radio.packets import ip6, udp6
from tests.unit.node.radio.pan import Pan, ext_of, short_of

# A CoAP GET /temperature (confirmable, message id 0x1234, token 0xAB) and a large payload
# that takes several fragments.
COAP = bytes.fromhex("41011234ab") + b"\xbbtemperature"
BIG = bytes.fromhex("4145abcdab") + b"\xff" + bytes(400)


class FakeHub:
    """What ``record``/``to_pcap`` need of a MediumHub, around a PAN run in this process."""

    def __init__(self) -> None:
        self.pan = Pan(n=2, seed=1)
        self.medium = self.pan.medium
        self.config = RadioPanConfig(
            pan="floor1", address="fd00:0:0:10::ff:fe00:1/64", short=1, medium="fd00:0:0:20::1",
            channel=15,
        )  # fmt: skip
        self.clock = 0.0

    def now(self) -> float:
        return self.clock

    def endpoints(self) -> dict[str, str]:
        return {"n1": "[fd00:0:0:20::5]:17754"}

    def traffic(self, at: float) -> None:
        src, dst = ip6("fd00:0:0:10::1"), ip6("fd00:0:0:10::2")
        self.pan.send("n0", "n1", udp6(src, dst, 5683, 5683, COAP), at)
        self.pan.send("n1", "n0", udp6(dst, src, 5683, 5683, BIG), at)
        self.clock = at + 1.0
        self.pan.run(self.clock)


def capture(hub: FakeHub) -> list:  # type: ignore[type-arg]
    async def scenario() -> list:  # type: ignore[type-arg]
        task = asyncio.create_task(record(hub, 0.2, 10_000))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        hub.traffic(hub.clock)
        frames, cut = await task
        assert not cut
        return frames

    return asyncio.run(scenario())


def test_records_while_running_and_restores_the_medium() -> None:
    hub = FakeHub()
    frames = capture(hub)
    # 1 frame for the request, several fragments for the answer, each acknowledged.
    data = [f for f in frames if len(f.frame) > 5]
    acks = [f for f in frames if len(f.frame) == 5]
    assert len(data) >= 5 and len(acks) == len(data)
    assert {f.node for f in frames} == {"n0", "n1"}
    assert not hub.medium.config.record_air and "run" not in vars(hub.medium)
    hub.traffic(hub.clock)  # afterwards: nothing recorded, no OnAir events either
    assert not any(isinstance(e, OnAir) for e in hub.pan.events[-20:])


def test_the_limit_cuts_the_capture() -> None:
    hub = FakeHub()

    async def scenario() -> tuple[int, bool]:
        task = asyncio.create_task(record(hub, 0.1, 3))  # type: ignore[arg-type]
        await asyncio.sleep(0.02)
        hub.traffic(hub.clock)
        frames, cut = await task
        return len(frames), cut

    assert asyncio.run(scenario()) == (3, True)


def test_one_stations_air_is_what_it_sent_or_was_sent_and_their_acks() -> None:
    hub = FakeHub()
    hub.pan = Pan(n=3, seed=1)
    hub.medium = hub.pan.medium
    frames = capture(hub)  # n0 -> n1 and n1 -> n0, while n2 talks to n0 and broadcasts:

    async def more() -> list:  # type: ignore[type-arg]
        task = asyncio.create_task(record(hub, 0.2, 10_000))  # type: ignore[arg-type]
        await asyncio.sleep(0.05)
        at = hub.clock
        src, dst = ip6("fd00:0:0:10::3"), ip6("fd00:0:0:10::1")
        hub.pan.send("n2", "n0", udp6(src, dst, 5683, 5683, COAP), at)
        hub.pan.send("n2", None, udp6(src, ip6("ff02::1"), 5683, 5683, COAP), at)
        hub.pan.send("n0", "n1", udp6(dst, ip6("fd00:0:0:10::2"), 5683, 5683, COAP), at)
        hub.clock = at + 1.0
        hub.pan.run(hub.clock)
        recorded, _ = await task
        return recorded

    frames += asyncio.run(more())
    kept = for_station(frames, "n1", frozenset({short_of(1), ext_of(1)}))
    data = [mac.decode(f.frame) for f in kept if len(f.frame) > 5]
    acks = [f for f in kept if len(f.frame) == 5]
    assert {f.node for f in kept} == {"n0", "n1"}
    assert all(d.dst in (short_of(1), ext_of(1)) or d.src in (short_of(1), ext_of(1)) for d in data)
    assert len(acks) == len(data) >= 6  # each unicast frame with its ACK, nothing of n2's
    everything = [f for f in frames if f.node == "n2"]
    assert everything and not any(f.node == "n2" for f in kept)


def test_the_pcap_names_each_station_by_its_carrier_port() -> None:
    hub = FakeHub()
    hub.endpoints = lambda: {"n1": "[fd00:0:0:20::5]:17760"}  # type: ignore[method-assign]
    frames = capture(hub)
    devices: dict[str, int] = {}
    pcap = to_pcap(frames, hub, "br1", devices)  # type: ignore[arg-type]
    assert devices == {"br1": 0, "n0": 1, "n1": 2} or devices == {"br1": 0, "n1": 1, "n0": 2}
    # n1's datagrams go from [fd00:0:0:20::5]:17760 (a packed thing's own port) to the medium.
    src = ipaddress.IPv6Address("fd00:0:0:20::5").packed
    medium = ipaddress.IPv6Address("fd00:0:0:20::1").packed
    sent = pcap.count(src + medium + (17760).to_bytes(2, "big"))
    assert sent == len([f for f in frames if f.node == "n1"]) > 0


TSHARK = shutil.which("tshark")


@pytest.mark.skipif(TSHARK is None, reason="tshark is not installed")
def test_tshark_decodes_the_capture(tmp_path: Path) -> None:
    hub = FakeHub()
    frames = capture(hub)
    path = tmp_path / "air.pcap"
    path.write_bytes(to_pcap(frames, hub, "br1"))  # type: ignore[arg-type]
    assert TSHARK is not None
    out = subprocess.run(
        [TSHARK, "-r", str(path), "-n", "-T", "fields", "-e", "frame.protocols",
         "-e", "_ws.malformed", "-o", "6lowpan.context0:fd00:0:0:10::/64"],
        capture_output=True, text=True, timeout=120, check=True,
    ).stdout.splitlines()  # fmt: skip
    assert len(out) == len(frames)
    assert [line for line in out if not line.endswith("\t")] == []  # no malformed packet
    protocols = " ".join(out)
    for proto in ("zep", "wpan", "6lowpan", "ipv6", "udp", "coap"):
        assert f":{proto}" in protocols, (proto, out[:3])
