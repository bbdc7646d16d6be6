"""The asyncio front ends over real UDP sockets on ::1: two things' radios (ZepClient) and the
medium hub with the router's station in process, exactly as the containers wire them (minus
the TUN devices, replaced by lists)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace

import pytest

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import mac, zep
from testbed.node.radio.frontend import MediumHub, link_config
from testbed.node.radio.port import StationPort
from testbed.node.radio.zep_client import ZepClient
from tests.unit.node.radio.packets import filler, ip6, ipv6, udp6

PREFIX = "fd00:0:0:1"
ROUTER, A, B, C = 0x10, 0x11, 0x12, 0x13
NAMES = {"0010": "br", "0011": "a", "0012": "b", "0013": "c"}  # c: planned, started late
BACKBONE_HOST = ip6("fd00:0:0:2::5")


def addr(short: int) -> bytes:
    return ip6(f"{PREFIX}:0:ff:fe00:{short:x}")


def cfg(short: int, port: int = 0, **kw: object) -> RadioPanConfig:
    return RadioPanConfig(
        pan="floor1",
        address=f"{PREFIX}:0:ff:fe00:{short:x}/64",
        short=short,
        medium="::1",
        router="" if short == ROUTER else f"{PREFIX}:0:ff:fe00:{ROUTER:x}",
        port=port,
        channel=15,
        pan_id=0xABCD,
        names=NAMES,
        **kw,  # type: ignore[arg-type]
    )


def packet(src: bytes, dst: bytes, size: int, seed: int = 0) -> bytes:
    """An IPv6 packet of exactly ``size`` bytes (40..1280): UDP from 48 bytes on."""
    if size < 48:
        return ipv6(src, dst, 59, filler(size - 40, seed))  # no next header
    return udp6(src, dst, 5683, 40000 + seed, filler(size - 48, seed))


@dataclass
class Pan:
    hub: MediumHub
    router: StationPort
    clients: dict[str, ZepClient]
    ports: dict[str, StationPort]
    got: dict[str, list[bytes]] = field(default_factory=dict)

    def close(self) -> None:
        for client in self.clients.values():
            client.close()
        self.hub.close()

    async def wait(self, name: str, count: int, timeout: float = 10.0) -> list[bytes]:
        deadline = asyncio.get_running_loop().time() + timeout
        while len(self.got[name]) < count:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{name} got {len(self.got[name])} of {count} packets")
            await asyncio.sleep(0.01)
        return self.got[name]


async def make_pan(bind: str = "::1", **hub_kw: object) -> Pan:
    hub = MediumHub(cfg(ROUTER, **hub_kw))
    await hub.open((bind, 0))
    assert hub.transport is not None
    port = hub.transport.get_extra_info("sockname")[1]
    got: dict[str, list[bytes]] = {"br": [], "a": [], "b": []}
    router = StationPort(cfg(ROUTER), lambda f: transmit(f), got["br"].append)
    transmit = hub.attach_local(
        "br", (router.config.short_addr, router.config.ext_addr), router.receive_frame
    )
    clients, ports = {}, {}
    for name, short in (("a", A), ("b", B)):
        client = ZepClient(cfg(short, port))
        ports[name] = StationPort(client.config, client.transmit, got[name].append)
        client.port = ports[name]
        await client.open(("::1", 0))
        clients[name] = client
    pan = Pan(hub, router, clients, ports, got)
    # Both HELLOs registered: the hub knows where a and b are before they send a frame.
    for _ in range(200):
        if set(hub.endpoints()) == {"a", "b"}:
            break
        await asyncio.sleep(0.005)
    assert set(hub.endpoints()) == {"a", "b"}
    return pan


def run(body: Callable[[Pan], Awaitable[None]], bind: str = "::1", **hub_kw: object) -> None:
    async def main() -> None:
        pan = await make_pan(bind, **hub_kw)
        try:
            await body(pan)
        finally:
            pan.close()

    asyncio.run(main())


SIZES = [40, 41, 47, 48, 49, 99, 100, 101, 127, 128, 200, 255, 256, 600, 1000, 1279, 1280]


def test_packets_of_every_size_class_arrive_intact_between_things_and_router() -> None:
    async def body(pan: Pan) -> None:
        sent = [packet(addr(A), addr(B), size, i) for i, size in enumerate(SIZES)]
        for p in sent:
            assert pan.ports["a"].send_packet(p) >= 1
        assert await pan.wait("b", len(sent)) == sent
        # Off the PAN: a thing sends to the router's station (its next hop), the router back.
        up = packet(addr(B), BACKBONE_HOST, 1280, 1)
        pan.ports["b"].send_packet(up)
        assert await pan.wait("br", 1) == [up]
        down = packet(BACKBONE_HOST, addr(A), 1000, 2)
        pan.router.send_packet(down)
        assert await pan.wait("a", 1) == [down]
        # A 1280-byte packet takes more than one frame: the fragmentation is real.
        assert max(pan.ports["a"].station.fragments_per_packet) > 1
        medium = pan.hub.medium.snapshot()["nodes"]
        assert medium["a"]["frames_sent"] == pan.ports["a"].station.frames_sent  # type: ignore[index]
        assert pan.hub.dropped == {}

    run(body)


def test_full_loss_stops_traffic_and_reset_restores_it() -> None:
    async def body(pan: Pan) -> None:
        pan.hub.set_links(link_config(1.0))
        pan.ports["a"].send_packet(packet(addr(A), addr(B), 300))
        # 3 frames, 4 attempts each, ~3 ms per attempt: long over after half a second.
        await asyncio.sleep(0.5)
        assert pan.got["b"] == []
        node = pan.hub.medium.snapshot()["nodes"]["a"]  # type: ignore[index]
        assert node["dropped"]["retries-exhausted"] == 3
        assert node["transmissions"] == 12
        pan.hub.reset_links()
        p = packet(addr(A), addr(B), 300, 1)
        pan.ports["a"].send_packet(p)
        assert await pan.wait("b", 1) == [p]

    run(body)


def test_planned_loss_and_per_link_settings() -> None:
    async def body(pan: Pan) -> None:
        # Planned 100% loss, then a per-link override lets only a -> b through.
        pan.ports["a"].send_packet(packet(addr(A), addr(B), 100))
        await asyncio.sleep(0.2)
        assert pan.got["b"] == []
        pan.hub.set_links(link_config(0.0), "a", "b")
        pan.hub.set_links(link_config(0.0), "b", "a")  # ACKs come back over b -> a
        p = packet(addr(A), addr(B), 100, 1)
        pan.ports["a"].send_packet(p)
        assert await pan.wait("b", 1) == [p]
        pan.ports["a"].send_packet(packet(addr(A), BACKBONE_HOST, 100))
        await asyncio.sleep(0.2)
        assert pan.got["br"] == []
        with pytest.raises(KeyError):
            pan.hub.set_links(link_config(0.0), "nobody")

    run(body, loss=1.0)


def test_a_node_setting_changes_that_stations_links_both_ways_only() -> None:
    async def body(pan: Pan) -> None:
        links = pan.hub.medium.links
        pan.hub.set_links(link_config(1.0), node="a")
        assert {links.config(x, y).delivery for x, y in (("a", "b"), ("b", "a"))} == {0.0}
        assert {links.config(x, y).delivery for x, y in (("a", "br"), ("br", "a"))} == {0.0}
        assert links.config("b", "br").delivery == links.config("br", "b").delivery == 1.0
        # Its neighbours still hear each other: b -> br gets through.
        p = packet(addr(B), BACKBONE_HOST, 100)
        pan.ports["b"].send_packet(p)
        assert await pan.wait("br", 1) == [p]
        with pytest.raises(KeyError):
            pan.hub.set_links(link_config(0.0), node="nobody")

    run(body)


def test_mld_and_router_solicitations_stay_off_the_air() -> None:
    async def body(pan: Pan) -> None:
        a = pan.ports["a"]
        all_routers, mld_group = ip6("ff02::2"), ip6("ff02::16")
        rs = ipv6(addr(A), all_routers, 58, bytes([133, 0, 0, 0, 0, 0, 0, 0]), hlim=255)
        hbh = bytes([58, 0, 5, 2, 0, 0, 1, 0])  # Router Alert, then ICMPv6
        mld = ipv6(bytes(16), mld_group, 0, hbh + bytes([143]) + bytes(27), hlim=1)
        assert a.send_packet(rs) == 0 and a.send_packet(mld) == 0
        assert a.send_packet(b"\x45" + bytes(39)) == 0  # IPv4 on a TUN that shows it
        assert dict(a.packets_filtered) == {"rs": 1, "mld": 1, "not-ipv6": 1}
        assert a.station.frames_sent == 0
        # A real multicast packet goes out as a broadcast and reaches both others.
        p = packet(addr(A), ip6("ff02::1"), 60)
        assert a.send_packet(p) == 1
        assert await pan.wait("b", 1) == [p] and await pan.wait("br", 1) == [p]

    run(body)


def test_garbage_is_counted_not_fatal() -> None:
    async def body(pan: Pan) -> None:
        loop = asyncio.get_running_loop()
        assert pan.hub.transport is not None
        hub_port = pan.hub.transport.get_extra_info("sockname")[1]
        transport, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("::1", 0)
        )
        hub = ("::1", hub_port)
        for n in (1, 3, 8, 31, 32, 40, 200):
            transport.sendto(os.urandom(n), hub)
        transport.sendto(zep.encode_data(b"\x41\x88" + bytes(3), channel=15), hub)  # frame garbled
        transport.sendto(zep.encode_data(bytes(5), channel=11), hub)  # another channel
        # A stranger sending to a thing's radio is not the medium.
        a_port = pan.clients["a"].transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        transport.sendto(zep.encode_data(bytes(5)), ("::1", a_port))
        await asyncio.sleep(0.1)
        transport.close()
        assert sum(pan.hub.dropped.values()) >= 8
        assert pan.hub.dropped["wrong-channel"] == 1
        assert pan.clients["a"].dropped["foreign-sender"] == 1
        # Still working.
        p = packet(addr(A), addr(B), 500)
        pan.ports["a"].send_packet(p)
        assert await pan.wait("b", 1) == [p]

    run(body)


def test_a_restarted_thing_is_followed_to_its_new_endpoint() -> None:
    async def body(pan: Pan) -> None:
        old = pan.clients["b"]
        old.close()
        client = ZepClient(replace(old.config))
        client.port = StationPort(client.config, client.transmit, pan.got["b"].append)
        await client.open(("::1", 0))
        pan.clients["b"] = client
        await asyncio.sleep(0.05)  # its HELLO
        p = packet(addr(A), addr(B), 200)
        pan.ports["a"].send_packet(p)
        assert await pan.wait("b", 1) == [p]
        assert sorted(pan.hub.medium.nodes()) == ["a", "b", "br"]

    run(body)


def test_guests_beyond_the_bound_are_refused_and_planned_stations_still_join() -> None:
    """A flood of HELLOs from fake stations (anyone on the carrier network can send them) stops
    at the PAN's guest bound (the topology's ``guest_stations``): link state grows with the
    square of the stations. The planned stations are always admitted, also after the flood."""

    async def body(pan: Pan) -> None:
        loop = asyncio.get_running_loop()
        assert pan.hub.transport is not None
        hub_port = pan.hub.transport.get_extra_info("sockname")[1]
        guests = []
        for i in range(6):
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, local_addr=("::1", 0)
            )
            transport.sendto(
                zep.encode_hello(bytes([0x02, 0, 0, 0, 0, 0, 0x10, i])), ("::1", hub_port)
            )
            guests.append(transport)
        await asyncio.sleep(0.2)
        for transport in guests:
            transport.close()
        assert pan.hub.dropped["too-many-nodes"] == 4
        assert len([n for n in pan.hub.endpoints() if n.startswith("ll-")]) == 2
        # The planned thing c starts after the flood and joins all the same.
        late = ZepClient(cfg(C, hub_port))
        pan.got["c"] = []
        late.port = StationPort(late.config, late.transmit, pan.got["c"].append)
        await late.open(("::1", 0))
        pan.clients["c"] = late
        p = packet(addr(A), addr(C), 600)
        for _ in range(100):
            if "c" in pan.hub.endpoints():
                break
            await asyncio.sleep(0.01)
        pan.ports["a"].send_packet(p)
        assert await pan.wait("c", 1) == [p]
        assert sorted(n for n in pan.hub.medium.nodes() if not n.startswith("ll-")) == [
            "a",
            "b",
            "br",
            "c",
        ]
        assert pan.hub.dropped["too-many-nodes"] == 4

    run(body, guest_stations=2)


class Recorder(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[bytes] = []

    def datagram_received(self, data: bytes, addr: tuple[object, ...]) -> None:
        self.got.append(data)


async def stranger(host: str = "::1") -> tuple[asyncio.DatagramTransport, Recorder]:
    """A UDP endpoint on the carrier network that is no planned station."""
    return await asyncio.get_running_loop().create_datagram_endpoint(Recorder, local_addr=(host, 0))


def test_a_hello_claiming_a_planned_station_from_another_host_is_refused() -> None:
    """Anyone on the carrier network can send a HELLO with b's EUI-64; it must not take b over
    (before, b's frames went to the claimant until b's next HELLO)."""

    async def body(pan: Pan) -> None:
        assert pan.hub.transport is not None
        hub_port = pan.hub.transport.get_extra_info("sockname")[1]
        thief, heard = await stranger("127.0.0.1")  # another host than b's ::1
        b_ext = pan.clients["b"].config.ext_addr
        thief.sendto(zep.encode_hello(b_ext), ("127.0.0.1", hub_port))
        short_b = pan.clients["b"].config.short_addr
        frame = pan.ports["a"].station.send(packet(addr(B), addr(A), 60), short_b)[0]
        thief.sendto(zep.encode_data(frame, channel=15), ("127.0.0.1", hub_port))  # as b
        await asyncio.sleep(0.1)
        assert pan.hub.dropped["station-hijack"] == 2
        assert pan.hub.endpoints()["b"].startswith("[::1]")
        p = packet(addr(A), addr(B), 300)
        pan.ports["a"].send_packet(p)
        assert await pan.wait("b", 1) == [p]
        assert pan.got["a"] == []  # the forged frame from "b" reached nobody
        thief.close()
        assert heard.got == []  # nothing meant for b went to the thief

    run(body, bind="::")


def test_invented_sources_are_refused_and_a_first_fragment_flood_spares_the_others() -> None:
    """A guest floods the router with first fragments of 2,047-byte datagrams under invented
    sources (the attack that filled the router's buffer for 60 s): its own address is admitted,
    the invented ones are refused as foreign-sender, and a's fragmented packets still arrive."""

    async def body(pan: Pan) -> None:
        assert pan.hub.transport is not None
        hub = ("::1", pan.hub.transport.get_extra_info("sockname")[1])
        guest, _ = await stranger()
        router_short = pan.router.config.short_addr
        for i in range(50):
            src = bytes([0xEE, i])
            head = bytes([0xC7, 0xFF]) + i.to_bytes(2, "big") + b"\x41\x60" + bytes(39 + 48)
            frame = mac.encode_data(seq=i, pan_id=0xABCD, src=src, dst=router_short, payload=head)
            guest.sendto(zep.encode_data(frame, channel=15), hub)
        await asyncio.sleep(0.3)
        assert pan.hub.dropped["foreign-sender"] == 49
        station = pan.router.station.reassembler.snapshot()
        assert station["open_datagrams"] == 1 and station["buffered_bytes"] == 2047
        sent = [packet(addr(A), BACKBONE_HOST, 1280, i) for i in range(4)]
        for p in sent:
            pan.ports["a"].send_packet(p)
        assert await pan.wait("br", 4) == sent
        guest.close()

    run(body)
