"""Minimal pcap writer for captures of the medium (Wireshark/tshark read both forms).

- ``LINKTYPE_IEEE802_15_4_WITHFCS`` (195): one record per PSDU, FCS included; Wireshark goes
  straight to 802.15.4 -> 6LoWPAN -> IPv6.
- ``LINKTYPE_RAW`` (101): one record per IP packet; ``zep_udp`` wraps a ZEP datagram in
  IPv6/UDP to port 17754, which is what a capture on the PAN's network shows and what
  Wireshark dissects as ZEP -> 802.15.4 -> 6LoWPAN -> IPv6.
"""

from __future__ import annotations

import struct
from typing import BinaryIO

from testbed.contracts.radio import ZEP_PORT
from testbed.node.radio.iphc import internet_checksum

LINKTYPE_RAW = 101
LINKTYPE_IEEE802_15_4_WITHFCS = 195


class PcapWriter:
    def __init__(self, stream: BinaryIO, linktype: int, snaplen: int = 65535) -> None:
        self._stream = stream
        stream.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, snaplen, linktype))

    def write(self, data: bytes, time: float) -> None:
        seconds = int(time)
        micros = min(round((time - seconds) * 1e6), 999_999)
        self._stream.write(struct.pack("<IIII", seconds, micros, len(data), len(data)) + data)


def zep_udp(src: bytes, dst: bytes, zep: bytes, sport: int = ZEP_PORT) -> bytes:
    """An IPv6/UDP packet from ``src`` to ``dst`` (16-byte addresses) carrying ``zep``."""
    length = 8 + len(zep)
    pseudo = src + dst + struct.pack("!IxxxB", length, 17)
    udp = struct.pack("!HHHH", sport, ZEP_PORT, length, 0) + zep
    checksum = internet_checksum(pseudo + udp) or 0xFFFF
    udp = udp[:6] + checksum.to_bytes(2, "big") + udp[8:]
    return struct.pack("!IHBB", 6 << 28, length, 17, 64) + src + dst + udp
