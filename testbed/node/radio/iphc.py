"""LOWPAN_IPHC header compression with LOWPAN_NHC for UDP (RFC 6282).

    base: 011 TF(2) NH(1) HLIM(2) | CID(1) SAC(1) SAM(2) M(1) DAC(1) DAM(2)
    then, in this order: CID extension, traffic class/flow label, next header, hop limit,
    source address, destination address; then the UDP NHC byte 11110 C PP, ports, checksum.

What the compressor produces (what our traffic needs, chosen per packet, smallest first):
- traffic class and flow label elided when zero, otherwise the shortest TF form (the traffic
  class goes on the wire rearranged as ECN then DSCP, as Section 3.1.1 requires);
- hop limit 1/64/255 elided, anything else inline;
- link-local unicast (fe80::/64): IID elided when it is the one the MAC address gives (SAM/DAM
  11), 16 bits when it has the 0000:00ff:fe00:XXXX form, otherwise 64 bits;
- unicast under a shared context prefix (the PAN's ULA /64, SAC/DAC 1, context 0 without a CID
  byte, 1-15 with one): the same three IID forms; any other address inline (128 bits);
- the unspecified source address (SAC 1, SAM 00);
- multicast destinations in the 8/32/48-bit forms (ff02::XX, ffXX::XX:XXXX, ffXX::XX:XXXX:XXXX);
- UDP directly after the IPv6 header: ports compressed (0xF0Bx pairs in 4 bits each, 0xF0xx in
  8 bits), the length always elided (it follows from the datagram size), the checksum always
  carried (RFC 6282, Section 4.3.2: eliding it needs the upper layer's consent, which ours
  does not give).

The decompressor also accepts an elided UDP checksum (the caller recomputes it once the whole
datagram is there, see ``fill_udp_checksum``). It rejects, with a reason, what we never produce
and cannot reconstruct faithfully: extension-header and IPv6-in-IPv6 NHC (next headers other
than UDP are carried inline instead), unicast-prefix-based multicast (M=1 DAC=1), reserved
modes, and contexts it does not know.

The payload length is never carried: it is the datagram size (from the fragment header, or the
frame length when unfragmented) minus the 40-byte IPv6 header.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from testbed.node.radio.addressing import SHORT_IID_PREFIX, iid_from_lladdr
from testbed.node.radio.errors import EncodeError, MalformedError

IPV6_HEADER = 40
UDP_HEADER = 8
NH_UDP = 17
DISPATCH_IPV6 = 0x41  # uncompressed IPv6 follows (RFC 4944)
MAX_DATAGRAM = 2047  # 11-bit datagram_size of RFC 4944

_LL_HIGH = b"\xfe\x80" + bytes(6)
_ZERO16 = bytes(16)
_IPV6 = struct.Struct("!IHBB")  # version/TC/flow label, payload length, next header, hop limit
_UDP = struct.Struct("!HHHH")
_HLIM_CODE = {1: 1, 64: 2, 255: 3}
_HLIM_VALUE = (0, 1, 64, 255)


@dataclass(frozen=True)
class Context:
    """A shared prefix for stateful compression. Only prefixes up to /64 are supported: the
    address's bits between the prefix length and 64 must be zero (RFC 6282: bits covered by
    neither the context nor the inline IID are zero)."""

    prefix: bytes
    length: int = 64
    high: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not 1 <= self.length <= 64:
            raise ValueError("context prefix length must be 1..64")
        if len(self.prefix) not in (8, 16):
            raise ValueError("context prefix has 8 or 16 bytes")
        value = int.from_bytes(self.prefix[:8], "big")
        mask = ((1 << self.length) - 1) << (64 - self.length)
        object.__setattr__(self, "high", (value & mask).to_bytes(8, "big"))

    def covers(self, addr: bytes) -> bool:
        return addr[:8] == self.high


Contexts = Mapping[int, Context]
NO_CONTEXTS: Contexts = {}


@dataclass(frozen=True, slots=True)
class Decompressed:
    header: bytes  # the uncompressed IPv6 header (and UDP header when NHC carried it)
    consumed: int  # bytes of the 6LoWPAN payload the compressed form took
    udp_checksum_elided: bool = False


# ---------------------------------------------------------------- compression


def _unicast(addr: bytes, lladdr: bytes, contexts: Contexts) -> tuple[int, int, bytes, int]:
    """(AC bit, AM mode, inline bytes, context id) of a unicast address."""
    if addr[:8] == _LL_HIGH:
        ac, cid = 0, 0
    else:
        found = next((c for c, ctx in contexts.items() if ctx.covers(addr)), None)
        if found is None:
            return 0, 0, addr, 0
        ac, cid = 1, found
    iid = addr[8:]
    if iid == iid_from_lladdr(lladdr):
        return ac, 3, b"", cid
    if iid[:6] == SHORT_IID_PREFIX:
        return ac, 2, iid[6:], cid
    return ac, 1, iid, cid


def _multicast(addr: bytes) -> tuple[int, bytes]:
    if addr[1] == 0x02 and addr[2:15] == _ZERO16[:13]:
        return 3, addr[15:]
    if addr[2:13] == _ZERO16[:11]:
        return 2, addr[1:2] + addr[13:]
    if addr[2:11] == _ZERO16[:9]:
        return 1, addr[1:2] + addr[11:]
    return 0, addr


def compress(
    packet: bytes | bytearray | memoryview,
    src_lladdr: bytes,
    dst_lladdr: bytes,
    contexts: Contexts = NO_CONTEXTS,
) -> tuple[bytes, int]:
    """Compress the IPv6 (and UDP) header of ``packet`` for a frame from ``src_lladdr`` to
    ``dst_lladdr``. Returns (IPHC bytes, uncompressed header bytes they replace): the rest of
    the packet, ``packet[consumed:]``, follows unchanged."""
    pkt = bytes(packet[: IPV6_HEADER + UDP_HEADER])
    total = len(packet)
    if total < IPV6_HEADER:
        raise EncodeError("not-ipv6", f"{total} B is shorter than an IPv6 header")
    word, plen, nh, hlim = _IPV6.unpack_from(pkt)
    if word >> 28 != 6:
        raise EncodeError("not-ipv6", f"IP version {word >> 28}")
    if plen != total - IPV6_HEADER:
        raise EncodeError("bad-ipv6-length", f"payload length {plen}, packet {total} B")
    if total > MAX_DATAGRAM:
        raise EncodeError("oversize", f"{total} B exceeds the 6LoWPAN datagram size limit")
    tc = (word >> 20) & 0xFF
    flow = word & 0xFFFFF
    ecn, dscp = tc & 0x03, tc >> 2
    src, dst = pkt[8:24], pkt[24:40]

    inline = bytearray()
    if flow == 0 and tc == 0:
        tf = 3
    elif flow == 0:
        tf = 2
        inline.append(ecn << 6 | dscp)
    elif dscp == 0:
        tf = 1
        inline += ((ecn << 22) | flow).to_bytes(3, "big")
    else:
        tf = 0
        inline += ((ecn << 30) | (dscp << 24) | flow).to_bytes(4, "big")

    udp = (
        nh == NH_UDP
        and total >= IPV6_HEADER + UDP_HEADER
        and _UDP.unpack_from(pkt, IPV6_HEADER)[2] == plen
    )
    if not udp:
        inline.append(nh)
    hlim_code = _HLIM_CODE.get(hlim, 0)
    if not hlim_code:
        inline.append(hlim)

    if src == _ZERO16:
        sac, sam, src_inline, sci = 1, 0, b"", 0
    else:
        sac, sam, src_inline, sci = _unicast(src, src_lladdr, contexts)
    if dst[0] == 0xFF:
        m, dac, dci = 1, 0, 0
        dam, dst_inline = _multicast(dst)
    else:
        m = 0
        dac, dam, dst_inline, dci = _unicast(dst, dst_lladdr, contexts)
    cid = 1 if (sci or dci) else 0

    head = bytearray((
        0x60 | tf << 3 | (1 if udp else 0) << 2 | hlim_code,
        cid << 7 | sac << 6 | sam << 4 | m << 3 | dac << 2 | dam,
    ))  # fmt: skip
    if cid:
        head.append(sci << 4 | dci)
    head += inline
    head += src_inline
    head += dst_inline
    if not udp:
        return bytes(head), IPV6_HEADER
    sport, dport, _, checksum = _UDP.unpack_from(pkt, IPV6_HEADER)
    if sport & 0xFFF0 == 0xF0B0 and dport & 0xFFF0 == 0xF0B0:
        head += bytes((0xF3, (sport & 0x0F) << 4 | (dport & 0x0F)))
    elif dport & 0xFF00 == 0xF000:
        head.append(0xF1)
        head += struct.pack("!HB", sport, dport & 0xFF)
    elif sport & 0xFF00 == 0xF000:
        head.append(0xF2)
        head += struct.pack("!BH", sport & 0xFF, dport)
    else:
        head.append(0xF0)
        head += struct.pack("!HH", sport, dport)
    head += checksum.to_bytes(2, "big")
    return bytes(head), IPV6_HEADER + UDP_HEADER


# ---------------------------------------------------------------- decompression


def _take(data: bytes, pos: int, n: int) -> bytes:
    if pos + n > len(data):
        raise MalformedError("truncated", "IPHC header runs past the frame")
    return data[pos : pos + n]


def _context(contexts: Contexts, cid: int) -> Context:
    ctx = contexts.get(cid)
    if ctx is None:
        raise MalformedError("unknown-context", f"context {cid}")
    return ctx


def _unicast_from(
    am: int, data: bytes, pos: int, lladdr: bytes | None, high: bytes
) -> tuple[bytes, int]:
    if am == 0:  # stateless: 128 bits inline (the stateful AM=00 cases are the caller's)
        return _take(data, pos, 16), pos + 16
    if am == 1:
        return high + _take(data, pos, 8), pos + 8
    if am == 2:
        return high + SHORT_IID_PREFIX + _take(data, pos, 2), pos + 2
    if lladdr is None:
        raise MalformedError("no-lladdr", "address elided but the frame has no MAC address")
    return high + iid_from_lladdr(lladdr), pos


def decompress(
    lowpan: bytes | bytearray | memoryview,
    src_lladdr: bytes | None,
    dst_lladdr: bytes | None,
    contexts: Contexts = NO_CONTEXTS,
    datagram_size: int | None = None,
) -> Decompressed:
    """Rebuild the IPv6 (and UDP) header from an IPHC header at the start of ``lowpan``.
    ``datagram_size`` is the whole IPv6 packet's size when fragmented; without it the packet is
    assumed to end with ``lowpan``."""
    data = bytes(lowpan)
    if len(data) < 2 or data[0] >> 5 != 0b011:
        raise MalformedError("not-iphc")
    b0, b1 = data[0], data[1]
    tf, nhc, hlim_code = (b0 >> 3) & 3, (b0 >> 2) & 1, b0 & 3
    cid, sac, sam = b1 >> 7, (b1 >> 6) & 1, (b1 >> 4) & 3
    m, dac, dam = (b1 >> 3) & 1, (b1 >> 2) & 1, b1 & 3
    pos = 2
    sci = dci = 0
    if cid:
        ext = _take(data, 2, 1)[0]
        sci, dci = ext >> 4, ext & 0x0F
        pos = 3

    ecn = dscp = flow = 0
    if tf == 0:
        v = int.from_bytes(_take(data, pos, 4), "big")
        ecn, dscp, flow, pos = v >> 30, (v >> 24) & 0x3F, v & 0xFFFFF, pos + 4
    elif tf == 1:
        v = int.from_bytes(_take(data, pos, 3), "big")
        ecn, flow, pos = v >> 22, v & 0xFFFFF, pos + 3
    elif tf == 2:
        v = _take(data, pos, 1)[0]
        ecn, dscp, pos = v >> 6, v & 0x3F, pos + 1
    nh = NH_UDP
    if not nhc:
        nh = _take(data, pos, 1)[0]
        pos += 1
    if hlim_code:
        hlim = _HLIM_VALUE[hlim_code]
    else:
        hlim = _take(data, pos, 1)[0]
        pos += 1

    if sac and sam == 0:
        src = _ZERO16
    else:
        high = _context(contexts, sci).high if sac else _LL_HIGH
        src, pos = _unicast_from(sam, data, pos, src_lladdr, high)
    if m:
        if dac:
            raise MalformedError("unsupported-iphc", "unicast-prefix-based multicast")
        if dam == 0:
            dst, pos = _take(data, pos, 16), pos + 16
        elif dam == 1:
            d = _take(data, pos, 6)
            dst, pos = b"\xff" + d[:1] + _ZERO16[:9] + d[1:], pos + 6
        elif dam == 2:
            d = _take(data, pos, 4)
            dst, pos = b"\xff" + d[:1] + _ZERO16[:11] + d[1:], pos + 4
        else:
            dst, pos = b"\xff\x02" + _ZERO16[:13] + _take(data, pos, 1), pos + 1
    else:
        if dac and dam == 0:
            raise MalformedError("unsupported-iphc", "DAC=1 DAM=00 is reserved")
        high = _context(contexts, dci).high if dac else _LL_HIGH
        dst, pos = _unicast_from(dam, data, pos, dst_lladdr, high)

    udp_header = b""
    checksum_elided = False
    if nhc:
        n = _take(data, pos, 1)[0]
        pos += 1
        if n >> 3 != 0b11110:
            raise MalformedError("unsupported-nhc", f"NHC byte 0x{n:02x}")
        checksum_elided = bool(n & 0x04)
        ports = n & 0x03
        if ports == 0:
            sport, dport = struct.unpack("!HH", _take(data, pos, 4))
            pos += 4
        elif ports == 1:
            sport, d8 = struct.unpack("!HB", _take(data, pos, 3))
            dport, pos = 0xF000 | d8, pos + 3
        elif ports == 2:
            s8, dport = struct.unpack("!BH", _take(data, pos, 3))
            sport, pos = 0xF000 | s8, pos + 3
        else:
            b = _take(data, pos, 1)[0]
            sport, dport, pos = 0xF0B0 | b >> 4, 0xF0B0 | (b & 0x0F), pos + 1
        checksum = 0
        if not checksum_elided:
            checksum = int.from_bytes(_take(data, pos, 2), "big")
            pos += 2
        udp_header = _UDP.pack(sport, dport, 0, checksum)

    header_len = IPV6_HEADER + len(udp_header)
    total = len(data) - pos + header_len if datagram_size is None else datagram_size
    if total < header_len or total > MAX_DATAGRAM:
        raise MalformedError("bad-size", f"datagram of {total} B with a {header_len} B header")
    plen = total - IPV6_HEADER
    word = 6 << 28 | (dscp << 2 | ecn) << 20 | flow
    header = _IPV6.pack(word, plen, nh, hlim) + src + dst
    if udp_header:
        header += udp_header[:4] + plen.to_bytes(2, "big") + udp_header[6:]
    return Decompressed(header, pos, checksum_elided)


def fill_udp_checksum(packet: bytearray) -> None:
    """Compute the UDP checksum of a complete IPv6+UDP packet in place (RFC 8200 pseudo-header),
    for datagrams whose checksum the sender elided."""
    plen = len(packet) - IPV6_HEADER
    packet[IPV6_HEADER + 6 : IPV6_HEADER + 8] = b"\x00\x00"
    pseudo = bytes(packet[8:40]) + struct.pack("!IxxxB", plen, NH_UDP)
    value = internet_checksum(pseudo + bytes(packet[IPV6_HEADER:]))
    packet[IPV6_HEADER + 6 : IPV6_HEADER + 8] = (value or 0xFFFF).to_bytes(2, "big")


def internet_checksum(data: bytes) -> int:
    """One's complement of the one's complement sum of 16-bit words (RFC 1071)."""
    if len(data) % 2:
        data += b"\x00"
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF
