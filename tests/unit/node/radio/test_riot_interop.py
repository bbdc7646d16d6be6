"""The unmodified RIOT node (tests/fixtures/interop/riot/) against our medium and the border
router's 6LoWPAN-ND, in one process and on loopback: no Docker, no TUN.

The router side is the real ``MediumHub`` with the real ``RouterPort``; where the router's kernel
would be, a small ICMPv6 echo responder answers (and originates) echoes, so that RIOT's
fragmented 600-byte echoes cross RFC 4944 fragmentation in both directions. The end-to-end
version with the real kernel, backend and capture is tests/integration/test_riot.py.
"""

from __future__ import annotations

import asyncio
import ipaddress
import platform
import struct
import threading
from collections.abc import Callable, Iterator
from typing import TypeVar

import pytest

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import nd
from testbed.node.radio.frontend import MediumHub, link_config
from testbed.node.radio.ndrouter import RouterPort
from tests.integration.nodes import wait_for
from tests.riot import FIXTURE, RiotNode
from tests.unit.node.radio.packets import ip6

pytestmark = [
    pytest.mark.skipif(
        platform.machine() != "x86_64" or not FIXTURE.exists(), reason="RIOT native64 is x86-64"
    ),
]
PREFIX = ipaddress.IPv6Network("fd00:1:2:3::/64")
ROUTER = "fd00:1:2:3::ff:fe00:1"
CHANNEL, PAN_ID = 15, 0xABCD
T = TypeVar("T")


class Router:
    """The hub and the router's port on an event loop in a thread; echo instead of a kernel."""

    def __init__(self, hub_port: int, loss: float) -> None:
        self.config = RadioPanConfig(
            pan="floor1", address=f"{ROUTER}/64", short=1, medium="::1", port=hub_port,
            channel=CHANNEL, pan_id=PAN_ID, seed=7, names={"0011": "thing"},
        )  # fmt: skip
        self.loss = loss
        self.loop = asyncio.new_event_loop()
        self.replies: list[bytes] = []  # echo replies that reached the "kernel"
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        assert self.ready.wait(10)

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self._open())
        self.ready.set()
        self.loop.run_forever()

    async def _open(self) -> None:
        self.hub = MediumHub(self.config)
        await self.hub.open(("::1", self.config.port))
        self.hub.set_links(link_config(self.loss))
        self.port = RouterPort(self.config, lambda f: self._tx(f), self._kernel)
        self._tx = self.hub.attach_local(
            "br", (self.config.short_addr, self.config.ext_addr), self.port.receive_frame
        )
        self.port.tick(self.loop.time())

    def _kernel(self, packet: bytes) -> None:
        if packet[6] != nd.ICMPV6 or packet[24:40] != ip6(ROUTER):
            return
        if packet[40] == 129:
            self.replies.append(packet)
        elif packet[40] == 128:  # echo request -> reply with the same payload
            body = bytes((129, 0, 0, 0)) + packet[44:]
            self.port.send_packet(nd.icmpv6_packet(ip6(ROUTER), packet[8:24], body, 64))

    def echo(self, dst: str, size: int, seq: int) -> None:
        body = (
            struct.pack("!BBHHH", 128, 0, 0, 0x7357, seq)
            + bytes(range(256)) * (size // 256)
            + bytes(size % 256)
        )
        packet = nd.icmpv6_packet(ip6(ROUTER), ip6(dst), body, 64)
        self.loop.call_soon_threadsafe(self.port.send_packet, packet)

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()`` on the router's loop (its objects are the loop's), from the test thread."""

        async def run() -> T:
            return fn()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(10)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.hub.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


@pytest.fixture
def router(
    request: pytest.FixtureRequest, unused_udp_port_pair: tuple[int, int]
) -> Iterator[Router]:
    r = Router(unused_udp_port_pair[0], getattr(request, "param", 0.0))
    try:
        yield r
    finally:
        r.close()


@pytest.fixture
def unused_udp_port_pair() -> tuple[int, int]:
    import socket

    with (
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as a,
        socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as b,
    ):
        a.bind(("::1", 0))
        b.bind(("::1", 0))
        return a.getsockname()[1], b.getsockname()[1]


def riot(router: Router, port: int) -> RiotNode:
    return RiotNode(("::1", port), ("::1", router.config.port), eui64="e6:d9:e6:03:f8:7d:6d:a7")


def test_riot_joins_registers_and_exchanges_fragmented_echoes(
    router: Router, unused_udp_port_pair: tuple[int, int]
) -> None:
    with riot(router, unused_udp_port_pair[1]) as node:
        node.join(CHANNEL, PAN_ID)
        address = node.global_address(PREFIX, 30)
        assert address == "fd00:1:2:3:e4d9:e603:f87d:6da7"  # from its EUI-64, U/L flipped
        route = node.command("nib route")
        assert "default via fe80::ff:fe00:1" in route, route
        # The router holds the registration, for the EUI-64 the node registered.
        eui = router.call(lambda: router.port.nd.lookup(ip6(address)))
        assert eui == bytes.fromhex("e6d9e603f87d6da7"), eui
        sent, got, out = node.ping(ROUTER, count=3, size=600)
        # 600 B of payload + the 8 B echo header came back whole; RIOT native loses an
        # occasional frame to its own timing (see frontend._drain_guest), so not all three.
        assert sent == 3 and got >= 1 and out.count("608 bytes from") == got, out
        for seq in range(3):
            router.echo(address, 600, seq)

        def replies() -> int:
            whole = [
                p for p in router.replies if len(p) == 40 + 8 + 600 and p[8:24] == ip6(address)
            ]
            return len(whole)

        wait_for(replies, 20, "600-byte echo replies from RIOT")
        frag = router.call(lambda: dict(router.port.station.fragments_per_packet))
        assert max(frag) >= 6, frag  # 648-byte packets took six fragments towards RIOT
        # and RIOT's fragmented requests and replies were reassembled here
        assert router.call(lambda: router.port.station.reassembler.reassembled) >= 2


@pytest.mark.parametrize("router", [0.1], indirect=True)
def test_riot_joins_at_ten_percent_frame_loss_within_30_s(
    router: Router, unused_udp_port_pair: tuple[int, int]
) -> None:
    with riot(router, unused_udp_port_pair[1]) as node:
        node.join(CHANNEL, PAN_ID)
        node.global_address(PREFIX, 30)
        regs = router.call(lambda: router.port.nd.registrations())
        assert len(regs) == 1, regs
        assert router.hub.medium.links.default.expected_loss == pytest.approx(0.1)
