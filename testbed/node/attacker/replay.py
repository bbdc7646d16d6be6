"""replay: recorded 802.15.4 frames sent again into the PAN, from a guest radio station.

The frames (``frames``: base64 PSDUs, FCS included) come from a capture of the PAN (the
scenario runner picks them: the frames an eavesdropper recorded towards one thing), so they
claim their original link-layer source, as a replaying attacker's frames would. The thing's
OSCORE replay window (RFC 8613 Section 7.4) must refuse each protected request; that shows in
``testbed_thing_refused_total{reason="replay"}`` on the victim, since its answers go to the
claimed source, not to the attacker. Only ``sent`` moves here.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import os
import socket

from testbed.node.attacker.base import Attack
from testbed.node.errors import ActionError
from testbed.node.radio import mac, zep
from testbed.node.radio.errors import RadioError

ZEP_PORT = 17754
MAX_FRAMES = 512


class FrameReplay(Attack):
    name = "replay"

    async def setup(self) -> None:
        medium = self.attributes.get("zep-medium")
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
        self.channel = int(self.attributes.get("channel", "15"))
        if not self.count:
            self.count = len(self.frames)  # each recorded frame once unless asked otherwise
        self.sock = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        # Registered as a station of its own first (a guest with an extended address).
        own = bytes((0x02,)) + os.urandom(7)
        self.sock.sendto(zep.encode_hello(own), self.medium)

    async def send_one(self, index: int) -> None:
        frame = self.frames[index % len(self.frames)]
        self.sock.sendto(zep.encode_data(frame, channel=self.channel, seq=index), self.medium)
        self.counters.add("sent")

    async def close(self) -> None:
        self.sock.close()
