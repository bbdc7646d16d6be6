"""Guests on the medium (stations that run their own MAC, like RIOT native) over real UDP on ::1:
the hub ACKs their acknowledged frames at once and once only, and paces frames to them by their
own ACKs (frontend.MediumHub._guest_frame/_drain_guest)."""

from __future__ import annotations

import asyncio
from typing import Any

from testbed.contracts.radio import RadioPanConfig
from testbed.node.radio import mac, zep
from testbed.node.radio.frontend import GUEST_ACK_WAIT, MediumHub

GUEST_EUI = bytes.fromhex("e6d9e603f87d6da7")
ROUTER_SHORT = b"\x00\x10"


class Guest(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.got: list[tuple[float, zep.ZepData]] = []
        self.arrived = asyncio.Event()

    def datagram_received(self, data: bytes, addr: Any) -> None:
        msg = zep.decode(data)
        assert isinstance(msg, zep.ZepData)
        self.got.append((asyncio.get_running_loop().time(), msg))
        self.arrived.set()

    def frames(self, kind: int) -> list[mac.MacFrame]:
        return [f for f in (mac.decode(m.frame) for _, m in self.got) if f.frame_type == kind]

    async def until(self, count: int, timeout: float = 2.0) -> None:
        async with asyncio.timeout(timeout):
            while len(self.got) < count:
                self.arrived.clear()
                await self.arrived.wait()


async def pan() -> tuple[MediumHub, Any, Guest, list[bytes], Any]:
    cfg = RadioPanConfig(
        pan="floor1", address="fd00:0:0:1::ff:fe00:10/64", short=0x10, medium="::1",
        channel=15, pan_id=0xABCD, names={"0010": "br"},
    )  # fmt: skip
    hub = MediumHub(cfg)
    await hub.open(("::1", 0))
    assert hub.transport is not None
    hub_addr = hub.transport.get_extra_info("sockname")[:2]
    received: list[bytes] = []
    transmit = hub.attach_local("br", (ROUTER_SHORT,), lambda f, t, _sender: received.append(f))
    loop = asyncio.get_running_loop()
    transport, guest = await loop.create_datagram_endpoint(Guest, local_addr=("::1", 0))
    transport.sendto(zep.encode_hello(GUEST_EUI), hub_addr)
    return hub, transport, guest, received, (transmit, hub_addr)


def test_a_guest_gets_one_immediate_ack_per_acknowledged_frame() -> None:
    asyncio.run(immediate_ack())


async def immediate_ack() -> None:
    hub, transport, guest, received, (_, hub_addr) = await pan()
    try:
        frame = mac.encode_data(
            seq=77, pan_id=0xABCD, src=GUEST_EUI, dst=ROUTER_SHORT, payload=b"\x41x"
        )
        sent_at = asyncio.get_running_loop().time()
        transport.sendto(zep.encode_data(frame, channel=15), hub_addr)
        await guest.until(1)
        at, msg = guest.got[0]
        assert mac.decode(msg.frame).frame_type == mac.FRAME_ACK and mac.decode(msg.frame).seq == 77
        assert at - sent_at < 0.1  # at once, not after the modelled airtime and a timer
        async with asyncio.timeout(2):
            while not received:
                await asyncio.sleep(0.005)
        await asyncio.sleep(0.05)  # the medium's own ACK would have gone out by now
        assert len(guest.got) == 1 and hub.guest_acks == 1
        nodes: Any = hub.medium.snapshot()["nodes"]
        assert nodes["br"]["acks_sent"] == 1  # the medium modelled the ACK all the same
        # A frame for nobody gets no ACK (the guest's MAC will retry and give up, as on air).
        nobody = mac.encode_data(
            seq=78, pan_id=0xABCD, src=GUEST_EUI, dst=b"\x0b\xad", payload=b"\x41x"
        )
        transport.sendto(zep.encode_data(nobody, channel=15), hub_addr)
        await asyncio.sleep(0.05)
        assert len(guest.got) == 1
    finally:
        transport.close()
        hub.close()


def test_frames_to_a_guest_wait_for_its_ack() -> None:
    asyncio.run(paced_by_ack())


async def paced_by_ack() -> None:
    hub, transport, guest, _, (transmit, hub_addr) = await pan()
    try:
        await asyncio.sleep(0.05)  # the HELLO is in
        for seq in range(3):
            transmit(
                mac.encode_data(
                    seq=seq, pan_id=0xABCD, src=ROUTER_SHORT, dst=GUEST_EUI, payload=b"\x41y"
                )
            )
        await guest.until(1)
        await asyncio.sleep(GUEST_ACK_WAIT / 3)
        assert len(guest.frames(mac.FRAME_DATA)) == 1  # the second waits for the guest's ACK
        ack_at = asyncio.get_running_loop().time()
        transport.sendto(zep.encode_data(mac.encode_ack(0), channel=15), hub_addr)
        await guest.until(2)
        assert guest.got[1][0] - ack_at < GUEST_ACK_WAIT  # released by the ACK
        # No ACK this time: the third goes after GUEST_ACK_WAIT anyway.
        await guest.until(3, timeout=2 * GUEST_ACK_WAIT + 1)
        # Measured from the ACK that released the second (it cannot have left before that), not
        # from when this loop got round to reading the second: on a loaded machine that read can
        # be late by more than the wait itself, which made the gap look short.
        assert guest.got[2][0] - ack_at >= GUEST_ACK_WAIT
        assert [f.seq for f in guest.frames(mac.FRAME_DATA)] == [0, 1, 2]
    finally:
        transport.close()
        hub.close()
