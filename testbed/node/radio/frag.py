"""RFC 4944 fragmentation of IPHC-compressed IPv6 packets.

    FRAG1: 11000 size(11) | tag(16)                  4 B, then the IPHC header and payload
    FRAGN: 11100 size(11) | tag(16) | offset(8)      5 B, offset in 8-octet units

``size`` and ``offset`` count bytes of the *uncompressed* IPv6 packet (RFC 6282, Section 2), so
the first fragment's compressed header stands for 40 (IPv6) or 48 (IPv6+UDP) bytes. Every
fragment but the last ends on an 8-octet boundary of the uncompressed packet; a packet whose
compressed form fits one frame is sent without a fragment header.

With a 9 B MAC header (short addresses, PAN ID compression) and 2 B FCS a frame carries 116 B:
a FRAGN carries 104 B of the packet (13 x 8 after its 5 B header), the FRAG1 the compressed
header plus 64-96 B (the header and its payload up to an 8-octet boundary). Hence 6 frames for
600 B and 12 for 1,200 B (references.md); with extended addresses (21 B header, 104 B per frame)
a FRAGN carries 96 B and 1,200 B takes 13 frames.
"""

from __future__ import annotations

import struct

from testbed.node.radio.errors import EncodeError
from testbed.node.radio.iphc import NO_CONTEXTS, Contexts, compress

FRAG1_LEN = 4
FRAGN_LEN = 5
FRAG1_DISPATCH = 0b11000
FRAGN_DISPATCH = 0b11100

_FRAG1 = struct.Struct("!HH")
_FRAGN = struct.Struct("!HHB")


def fragment(
    packet: bytes | bytearray | memoryview,
    src_lladdr: bytes,
    dst_lladdr: bytes,
    *,
    max_payload: int,
    tag: int,
    contexts: Contexts = NO_CONTEXTS,
) -> list[bytes]:
    """6LoWPAN payloads (one per frame) carrying ``packet``; ``max_payload`` is what a frame
    leaves for them (see mac.max_payload)."""
    pkt = bytes(packet)
    iphc, consumed = compress(pkt, src_lladdr, dst_lladdr, contexts)
    if len(iphc) + len(pkt) - consumed <= max_payload:
        return [iphc + pkt[consumed:]]
    size = len(pkt)
    # First fragment: compressed header, then payload up to an 8-octet boundary of the
    # uncompressed packet (the next fragment's offset must be expressible).
    first = (max_payload - FRAG1_LEN - len(iphc) + consumed) // 8 * 8 - consumed
    step = (max_payload - FRAGN_LEN) // 8 * 8
    if first < 0 or step <= 0:
        raise EncodeError("frame-too-small", f"{max_payload} B per frame cannot carry fragments")
    tag &= 0xFFFF
    out = [_FRAG1.pack(FRAG1_DISPATCH << 11 | size, tag) + iphc + pkt[consumed : consumed + first]]
    offset = consumed + first
    head = FRAGN_DISPATCH << 11 | size
    while offset < size:
        out.append(_FRAGN.pack(head, tag, offset >> 3) + pkt[offset : offset + step])
        offset += step
    return out
