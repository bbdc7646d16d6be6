"""IPv6 Neighbour Discovery messages and options as 6LoWPAN-ND uses them (pure encoding).

RFC 4861 gives the messages (RS 133, RA 134, NS 135, NA 136) and options (SLLAO 1, TLLAO 2,
PIO 3); RFC 6775 adds the Address Registration Option (ARO 33), the 6LoWPAN Context Option
(6CO 34) and the Authoritative Border Router Option (ABRO 35); RFC 8505 extends the ARO into
the EARO (same type and size: a TID and flags in the former reserved bits, the EUI-64 becomes
the Registration Ownership Verifier). Layouts, all fields big-endian, ``length`` in units of
8 octets including type and length:

    SLLAO/TLLAO (RFC 4944 s8)  type, len 1 (short address) or 2 (EUI-64), address, zero padding
    PIO   (RFC 4861 s4.6.2)    3, 4, prefix length, L|A|reserved, valid (32), preferred (32),
                               reserved (32), prefix (16)
    ARO   (RFC 6775 s4.1)      33, 2, status, reserved (8), reserved (16), lifetime (16,
                               minutes), EUI-64 (8)
    EARO  (RFC 8505 s4.1)      33, 2, status, opaque, rsvd(4)|I(2)|R|T, TID, lifetime (16,
                               minutes), ROVR (8)
    6CO   (RFC 6775 s4.2)      34, 2 or 3, context length, res(3)|C|CID(4), reserved (16),
                               valid lifetime (16, minutes), prefix (8 or 16)
    ABRO  (RFC 6775 s4.3)      35, 3, version low (16), version high (16), valid lifetime (16,
                               minutes; 0 means 10000), 6LBR address (16)

``parse`` accepts a whole IPv6 packet and returns the ND message it carries, or None when the
packet is no ND message; it raises MalformedError for an ND message that RFC 4861 s6.1/s7.1
says to discard silently (bad checksum, hop limit other than 255, an option of length 0,
options that run past the end), so that callers can count why.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass, field

from testbed.node.radio.errors import MalformedError
from testbed.node.radio.iphc import IPV6_HEADER, internet_checksum

ICMPV6 = 58
RS, RA, NS, NA = 133, 134, 135, 136
OPT_SLLAO, OPT_TLLAO, OPT_PIO = 1, 2, 3
OPT_ARO, OPT_6CO, OPT_ABRO = 33, 34, 35
ND_HOP_LIMIT = 255

# ARO/EARO status (RFC 6775 s4.1, RFC 8505 s4.1, IANA "Address Registration Option Status").
STATUS_SUCCESS = 0
STATUS_DUPLICATE = 1
STATUS_NC_FULL = 2
STATUS_MOVED = 3
STATUS_REMOVED = 4
STATUS_NAMES = {
    STATUS_SUCCESS: "success",
    STATUS_DUPLICATE: "duplicate",
    STATUS_NC_FULL: "neighbour-cache-full",
    STATUS_MOVED: "moved",
    STATUS_REMOVED: "removed",
}

# NA flags (RFC 4861 s4.4): Router, Solicited, Override.
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80, 0x40, 0x20
PIO_ONLINK, PIO_AUTONOMOUS = 0x80, 0x40
EARO_T = 0x01  # the TID field is valid (RFC 8505)
EARO_R = 0x02  # the registering node asks the router to route for the address

ALL_NODES = ipaddress.IPv6Address("ff02::1").packed
ALL_ROUTERS = ipaddress.IPv6Address("ff02::2").packed
UNSPECIFIED = bytes(16)


# ------------------------------------------------------------------ options


def _option(kind: int, body: bytes) -> bytes:
    pad = -(2 + len(body)) % 8
    return bytes((kind, (2 + len(body) + pad) // 8)) + body + bytes(pad)


def lladdr_option(kind: int, lladdr: bytes) -> bytes:
    """SLLAO (kind 1) or TLLAO (kind 2) for a 2- or 8-byte 802.15.4 address (RFC 4944 s8)."""
    if len(lladdr) not in (2, 8):
        raise ValueError("an 802.15.4 address has 2 or 8 bytes")
    return _option(kind, bytes(lladdr))


def pio(
    prefix: ipaddress.IPv6Network,
    valid: int,
    preferred: int,
    *,
    on_link: bool = False,
    autonomous: bool = True,
) -> bytes:
    flags = (PIO_ONLINK if on_link else 0) | (PIO_AUTONOMOUS if autonomous else 0)
    body = struct.pack("!BBIII", prefix.prefixlen, flags, valid, preferred, 0)
    return _option(OPT_PIO, body + prefix.network_address.packed)


def sixco(
    prefix: ipaddress.IPv6Network, cid: int, lifetime_min: int, compress: bool = True
) -> bytes:
    if not 0 <= cid <= 15:
        raise ValueError("a context id has 4 bits")
    n = 8 if prefix.prefixlen <= 64 else 16
    head = struct.pack("!BBHH", prefix.prefixlen, (0x10 if compress else 0) | cid, 0, lifetime_min)
    return _option(OPT_6CO, head + prefix.network_address.packed[:n])


def abro(address: bytes, version: int, lifetime_min: int) -> bytes:
    body = struct.pack("!HHH", version & 0xFFFF, (version >> 16) & 0xFFFF, lifetime_min)
    return _option(OPT_ABRO, body + address)


@dataclass(frozen=True, slots=True)
class Aro:
    """An ARO (``tid`` None) or an EARO (RFC 8505: ``tid`` set, T flag on the wire)."""

    status: int
    lifetime_min: int
    rovr: bytes  # the EUI-64 (ARO) or the 64-bit Registration Ownership Verifier (EARO)
    tid: int | None = None
    flags: int = 0  # EARO's R and I bits as on the wire (T is implied by tid)
    opaque: int = 0

    def encode(self) -> bytes:
        if len(self.rovr) != 8:
            raise ValueError("this ARO carries a 64-bit EUI-64/ROVR")
        if self.tid is None:
            body = struct.pack("!BBHH", self.status, 0, 0, self.lifetime_min)
        else:
            flags = (self.flags & ~EARO_T & 0x0F) | EARO_T
            body = struct.pack(
                "!BBBBH", self.status, self.opaque, flags, self.tid & 0xFF, self.lifetime_min
            )
        return _option(OPT_ARO, body + self.rovr)

    @classmethod
    def decode(cls, body: bytes) -> Aro:
        if len(body) != 14:
            raise MalformedError("nd-bad-aro", f"ARO of {len(body) + 2} B")
        status, opaque, flags, tid, lifetime = struct.unpack_from("!BBBBH", body)
        if flags & EARO_T:
            return cls(status, lifetime, body[6:], tid, flags & (EARO_R | 0x0C), opaque)
        return cls(status, lifetime, body[6:])


def parse_options(data: bytes) -> list[tuple[int, bytes]]:
    """(type, body without type and length) per option; MalformedError as RFC 4861 s4.6."""
    out, off = [], 0
    while off < len(data):
        if off + 2 > len(data):
            raise MalformedError("nd-truncated-option")
        kind, units = data[off], data[off + 1]
        if units == 0:
            raise MalformedError("nd-zero-length-option")
        end = off + units * 8
        if end > len(data):
            raise MalformedError("nd-truncated-option")
        out.append((kind, data[off + 2 : end]))
        off = end
    return out


def lladdr_from_option(body: bytes) -> bytes:
    """The 802.15.4 address in an SLLAO/TLLAO body (6 bytes: short; 14: EUI-64)."""
    if len(body) == 6:
        return body[:2]
    if len(body) == 14:
        return body[:8]
    raise MalformedError("nd-bad-lladdr-option", f"{len(body) + 2} B link-layer address option")


# ------------------------------------------------------------------ messages


@dataclass(frozen=True, slots=True)
class NdMessage:
    """A parsed RS/RA/NS/NA: the IPv6 addresses, the ICMPv6 type, the target (NS/NA), flags
    (RA: M/O; NA: R/S/O), the link-layer address options and the ARO/EARO if any."""

    kind: int
    src: bytes
    dst: bytes
    target: bytes | None = None
    flags: int = 0
    sllao: bytes | None = None
    tllao: bytes | None = None
    aro: Aro | None = None
    options: tuple[tuple[int, bytes], ...] = field(default=())


def checksum(src: bytes, dst: bytes, icmp: bytes) -> int:
    pseudo = src + dst + struct.pack("!IxxxB", len(icmp), ICMPV6)
    return internet_checksum(pseudo + icmp)


def icmpv6_packet(src: bytes, dst: bytes, icmp: bytes, hop_limit: int = ND_HOP_LIMIT) -> bytes:
    """An IPv6 packet carrying ``icmp`` (type, code, zero checksum, ...): checksum filled in."""
    icmp = (
        icmp[:2] + checksum(src, dst, icmp[:2] + b"\0\0" + icmp[4:]).to_bytes(2, "big") + icmp[4:]
    )
    head = struct.pack("!IHBB", 6 << 28, len(icmp), ICMPV6, hop_limit)
    return head + src + dst + icmp


def router_advertisement(
    src: bytes,
    dst: bytes,
    options: bytes,
    router_lifetime: int,
    cur_hop_limit: int = 64,
    reachable_ms: int = 0,
    retrans_ms: int = 0,
) -> bytes:
    body = struct.pack("!BBHBBHII", RA, 0, 0, cur_hop_limit, 0, router_lifetime, reachable_ms,
                       retrans_ms)  # fmt: skip
    return icmpv6_packet(src, dst, body + options)


def neighbour_advertisement(
    src: bytes, dst: bytes, target: bytes, flags: int, options: bytes = b""
) -> bytes:
    body = struct.pack("!BBHB3x", NA, 0, 0, flags) + target
    return icmpv6_packet(src, dst, body + options)


def neighbour_solicitation(src: bytes, dst: bytes, target: bytes, options: bytes = b"") -> bytes:
    return icmpv6_packet(src, dst, struct.pack("!BBHI", NS, 0, 0, 0) + target + options)


def router_solicitation(src: bytes, dst: bytes, options: bytes = b"") -> bytes:
    return icmpv6_packet(src, dst, struct.pack("!BBHI", RS, 0, 0, 0) + options)


_FIXED = {RS: 8, RA: 16, NS: 24, NA: 24}


def parse(packet: bytes) -> NdMessage | None:
    """The ND message in ``packet`` (a bare ICMPv6 after the IPv6 header; ND never carries
    extension headers), None for anything else. MalformedError for an invalid ND message."""
    if len(packet) < IPV6_HEADER + 4 or packet[0] >> 4 != 6 or packet[6] != ICMPV6:
        return None
    kind = packet[IPV6_HEADER]
    if kind not in _FIXED:
        return None
    icmp = packet[IPV6_HEADER : IPV6_HEADER + int.from_bytes(packet[4:6], "big")]
    src, dst = packet[8:24], packet[24:40]
    if len(icmp) < _FIXED[kind] or len(packet) < IPV6_HEADER + len(icmp):
        raise MalformedError("nd-truncated", f"ICMPv6 type {kind} of {len(icmp)} B")
    if packet[7] != ND_HOP_LIMIT:
        raise MalformedError("nd-hop-limit", f"hop limit {packet[7]}")
    if icmp[1] != 0:
        raise MalformedError("nd-code", f"code {icmp[1]}")
    if checksum(src, dst, icmp) != 0:
        raise MalformedError("nd-checksum")
    options = tuple(parse_options(icmp[_FIXED[kind] :]))
    target = icmp[8:24] if kind in (NS, NA) else None
    flags = icmp[5] if kind == RA else icmp[4] if kind == NA else 0
    sllao = tllao = None
    aro = None
    for opt, body in options:
        if opt == OPT_SLLAO:
            sllao = lladdr_from_option(body)
        elif opt == OPT_TLLAO:
            tllao = lladdr_from_option(body)
        elif opt == OPT_ARO:
            aro = Aro.decode(body)
    if kind == NS and target is not None and target[0] == 0xFF:
        raise MalformedError("nd-multicast-target")
    if sllao is not None and src == UNSPECIFIED:
        raise MalformedError("nd-sllao-from-unspecified")  # RFC 4861 s6.1.1, s7.1.1
    return NdMessage(kind, src, dst, target, flags, sllao, tllao, aro, options)
