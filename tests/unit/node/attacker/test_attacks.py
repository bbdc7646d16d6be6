"""Attacks of the attacker host, against real sockets on loopback: what they put on the wire
decodes as what they claim (EDHOC message_1, CoAP requests, 802.15.4 FRAG1 frames in ZEP), and
their counters follow the target's answers."""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from typing import Any

import aiocoap
import cbor2
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from prometheus_client import CollectorRegistry

from testbed.node.attacker.base import Counters
from testbed.node.attacker.coap_floods import EdhocFlood
from testbed.node.attacker.lowpan_flood import FragmentFlood
from testbed.node.attacker.service import AttackerService
from testbed.node.errors import ActionError
from testbed.node.logs import EventLog
from testbed.node.radio import frag, mac, zep


def _log() -> EventLog:
    return EventLog(logging.getLogger("test-attacker"))


def _decode_sequence(payload: bytes) -> list[Any]:
    stream, items = io.BytesIO(payload), []
    while stream.tell() < len(payload):
        items.append(cbor2.CBORDecoder(stream).decode())
    return items


def test_edhoc_message_1_is_method_3_suite_2_with_a_point_on_p256() -> None:
    attack = EdhocFlood({"target": "::1"}, {}, Counters("edhoc-flood", None))
    attack.path = (".well-known", "edhoc")
    firsts = [attack.request(i) for i in range(3)]
    for message in firsts:
        assert message.code == aiocoap.POST and message.opt.uri_path == (".well-known", "edhoc")
        true, method, suite, g_x, c_i = _decode_sequence(message.payload)
        assert (true, method, suite) == (True, 3, 2)
        assert len(g_x) == 32 and -24 <= c_i <= 23
        # The x coordinate of a real P-256 point (compressed form with either sign decodes).
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x02" + g_x)
    assert len({m.payload for m in firsts}) == 3  # a fresh ephemeral key every time


def test_coap_flood_counts_sent_answered_and_refused() -> None:
    async def main() -> dict[str, int]:
        server = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        server.bind(("::1", 0))
        server.setblocking(False)
        loop = asyncio.get_running_loop()

        async def serve() -> None:
            n = 0
            while True:
                data, addr = await loop.sock_recvfrom(server, 2048)
                request = aiocoap.Message.decode(data)
                code = aiocoap.CONTENT if n % 2 == 0 else aiocoap.UNAUTHORIZED
                reply = aiocoap.Message(code=code)
                reply.mtype, reply.mid, reply.token = aiocoap.NON, request.mid, request.token
                await loop.sock_sendto(server, reply.encode(), addr)
                n += 1

        task = loop.create_task(serve())
        service = AttackerService({}, CollectorRegistry(), _log())
        port = server.getsockname()[1]
        await service.start(
            {"attack": "coap-flood", "target": "::1", "port": port, "rate": 200, "duration": 0.2}
        )
        await asyncio.sleep(1.0)
        result = await service.stop({"attack": "coap-flood"})
        task.cancel()
        server.close()
        counters: dict[str, int] = result["counters"]
        return counters

    counters = asyncio.run(main())
    assert counters["sent"] >= 20
    assert counters["answered"] + counters["refused"] == counters["sent"]
    assert abs(counters["answered"] - counters["refused"]) <= 1


def test_unknown_attack_and_bad_parameters_are_refused() -> None:
    async def main() -> None:
        service = AttackerService({}, None, _log())
        with pytest.raises(ActionError, match="unknown attack"):
            await service.start({"attack": "nuke"})
        with pytest.raises(ActionError, match="not an IPv6 address"):
            await service.start({"attack": "coap-flood", "target": "tc-facility"})
        with pytest.raises(ActionError, match="rate"):
            await service.start({"attack": "coap-flood", "target": "::1", "rate": 10**6})
        with pytest.raises(ActionError, match="placed on a radio PAN"):
            await service.start({"attack": "fragment-flood"})

    asyncio.run(main())


@pytest.mark.parametrize("sources", ["own", "spoofed"])
def test_fragment_flood_sends_first_fragments_from_own_or_spoofed_sources(sources: str) -> None:
    async def main() -> list[bytes]:
        medium = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        medium.bind(("::1", 0))
        attributes = {
            "zep-medium": "::1",
            "pan-id": "43981",
            "channel": "15",
            "router-short": "0010",
        }
        attack = FragmentFlood(
            {"sources": sources, "datagram_size": 1280},
            attributes,
            Counters("fragment-flood", None),
        )
        import testbed.node.attacker.lowpan_flood as module

        module.ZEP_PORT = medium.getsockname()[1]
        try:
            await attack.setup()
            for i in range(4):
                await attack.send_one(i)
            await attack.close()
        finally:
            module.ZEP_PORT = 17754
        medium.settimeout(2)
        got = [medium.recv(2048) for _ in range(5)]
        medium.close()
        return got

    hello, *datagrams = asyncio.run(main())
    registered = zep.decode(hello)
    assert isinstance(registered, zep.ZepHello)
    sources_seen, tags = set(), set()
    for datagram in datagrams:
        message = zep.decode(datagram)
        assert isinstance(message, zep.ZepData) and message.channel == 15
        frame = mac.decode(message.frame)
        assert frame.dst == bytes.fromhex("0010") and frame.dst_pan == 0xABCD
        assert frame.payload[0] >> 3 == frag.FRAG1_DISPATCH
        tags.add(int.from_bytes(frame.payload[2:4], "big"))
        assert int.from_bytes(frame.payload[:2], "big") & 0x7FF == 1280
        sources_seen.add(frame.src)
    assert len(tags) == 4  # each first fragment opens a datagram of its own
    if sources == "own":
        assert sources_seen == {registered.ext_addr}
    else:
        assert len(sources_seen) == 4 and registered.ext_addr not in sources_seen


def test_replay_sends_the_recorded_frames_again_and_refuses_garbage() -> None:
    import base64

    import testbed.node.attacker.replay as module
    from testbed.node.attacker.replay import FrameReplay

    recorded = [
        mac.encode_data(
            seq=i, pan_id=0xABCD, src=b"\x00\x10", dst=b"\x00\x13", payload=b"\x7a" * 20
        )
        for i in range(3)
    ]

    async def main() -> list[bytes]:
        medium = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        medium.bind(("::1", 0))
        module.ZEP_PORT = medium.getsockname()[1]
        try:
            attributes = {"zep-medium": "::1", "channel": "15"}
            bad = FrameReplay(
                {"frames": ["bm90IGEgZnJhbWU="]}, attributes, Counters("replay", None)
            )
            with pytest.raises(ActionError, match=r"not a valid 802\.15\.4 frame"):
                await bad.setup()
            frames = [base64.b64encode(f).decode() for f in recorded]
            attack = FrameReplay(
                {"frames": frames, "rate": 100}, attributes, Counters("replay", None)
            )
            await attack.setup()
            await attack.run()  # each recorded frame once, then it ends by itself
            assert attack.counters.values["sent"] == 3
        finally:
            module.ZEP_PORT = 17754
        medium.settimeout(2)
        got = [medium.recv(2048) for _ in range(4)]
        medium.close()
        return got

    hello, *datagrams = asyncio.run(main())
    assert isinstance(zep.decode(hello), zep.ZepHello)
    replayed = [zep.decode(d) for d in datagrams]
    assert [m.frame for m in replayed if isinstance(m, zep.ZepData)] == recorded


def test_replay_gives_a_coap_request_a_fresh_message_id_and_nothing_else() -> None:
    import ipaddress
    import struct

    from testbed.node.attacker.replay import FrameReplay
    from testbed.node.radio import iphc

    prefix = ipaddress.IPv6Network("fd00:1:2:10::/64")
    router, thing = b"\x00\x10", b"\x00\x13"
    src = ipaddress.IPv6Address("fd00:1:2:2::11").packed  # the backend, beyond the router
    dst = prefix.network_address.packed[:8] + bytes.fromhex("000000fffe000013")
    coap = bytes([0x52, 0x01, 0x12, 0x34, 0xAB, 0xCD]) + b"\x92\x09\x01" + b"\xff" + b"x" * 12
    udp = struct.pack("!HHHH", 40000, 5683, 8 + len(coap), 0) + coap
    packet = bytearray(struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + src + dst + udp)
    iphc.fill_udp_checksum(packet)
    contexts = {0: iphc.Context(prefix.network_address.packed)}
    compressed, consumed = iphc.compress(packet, router, thing, contexts)
    frame = mac.encode_data(
        seq=5, pan_id=0xABCD, src=router, dst=thing, payload=compressed + bytes(packet[consumed:])
    )
    attack = FrameReplay(
        {"frames": ["AA=="]}, {"pan-prefix": str(prefix)}, Counters("replay", None)
    )
    attack.contexts, attack.fresh_ids = contexts, True
    attack.own = bytes.fromhex("02aabbccddeeff01")
    changed = mac.decode(attack.rewrite(frame, 3))
    head = iphc.decompress(changed.payload, changed.src, changed.dst, contexts)
    again = bytearray(head.header + changed.payload[head.consumed :])
    assert again[48 + 2 : 48 + 4] != b"\x12\x34"  # a new message ID ...
    assert again[:46] == packet[:46] and again[52:] == packet[52:]  # ... and nothing else
    check = bytearray(again)
    iphc.fill_udp_checksum(check)
    assert check == again  # the UDP checksum fits the new ID
    # sent from the attacker's own station, the recorded IPv6 source carried inline
    assert changed.src == attack.own and changed.dst == thing
    assert again[8:24] == src


def test_replayed_frames_pass_the_medium_that_refuses_the_recorded_ones() -> None:
    """The medium binds stations to their addresses: a guest sending the router's recorded
    frames as they were is refused as foreign-sender; the replay's rewritten frames, from the
    guest's own address, are admitted (and then meet the thing's OSCORE replay window)."""
    import ipaddress
    import struct

    from testbed.node.attacker.replay import FrameReplay
    from testbed.node.radio import iphc
    from testbed.node.radio.admission import FOREIGN_SENDER, Admitted, Stations

    prefix = ipaddress.IPv6Network("fd00:1:2:10::/64")
    router, thing = b"\x00\x00", b"\x00\x13"
    src = ipaddress.IPv6Address("fd00:1:2:2::11").packed
    dst = prefix.network_address.packed[:8] + bytes.fromhex("000000fffe000013")
    udp = struct.pack("!HHHH", 40000, 5683, 12, 0) + bytes([0x40, 0x01, 0, 1])
    packet = bytearray(struct.pack("!IHBB", 6 << 28, len(udp), 17, 64) + src + dst + udp)
    iphc.fill_udp_checksum(packet)
    contexts = {0: iphc.Context(prefix.network_address.packed)}
    compressed, consumed = iphc.compress(packet, router, thing, contexts)
    recorded = mac.encode_data(
        seq=9, pan_id=0xABCD, src=router, dst=thing, payload=compressed + bytes(packet[consumed:])
    )
    attack = FrameReplay({"frames": ["AA=="]}, {}, Counters("replay", None))
    attack.contexts, attack.fresh_ids = contexts, False
    attack.own = bytes.fromhex("02aabbccddeeff02")

    stations = Stations({router: "br1", thing: "lamp-01"}, 4)
    stations.add_local("br1", (router,))
    guest = ("fd00::99", 17754)
    assert isinstance(stations.admit(guest, attack.own, hello=True), Admitted)
    assert stations.admit(guest, mac.decode(recorded).src) == FOREIGN_SENDER
    replayed = mac.decode(attack.rewrite(recorded, 0))
    assert isinstance(stations.admit(guest, replayed.src), Admitted)
    head = iphc.decompress(replayed.payload, replayed.src, replayed.dst, contexts)
    assert bytes(head.header + replayed.payload[head.consumed :]) == bytes(packet)
