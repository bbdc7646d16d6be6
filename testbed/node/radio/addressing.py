"""Link-layer addresses and the IPv6 interface identifiers derived from them.

A link-layer address is ``bytes``: 2 bytes for a short address, 8 for an extended address (EUI-64),
most significant byte first, as people write them (``02:00:00:ff:fe:00:00:01``, ``0x1234``).
802.15.4 puts addresses on the air least significant byte first; only ``mac.py`` reverses them.

Interface identifiers (RFC 6282, Section 3.2.2, and RFC 4944, Section 6):
- from an EUI-64: the EUI-64 with the Universal/Local bit (0x02 of the first byte) inverted;
- from a short address XXXX: ``0000:00ff:fe00:XXXX`` (RFC 6282's form, without a PAN ID).
"""

from __future__ import annotations

BROADCAST = b"\xff\xff"
SHORT_IID_PREFIX = b"\x00\x00\x00\xff\xfe\x00"
LINK_LOCAL_PREFIX = b"\xfe\x80" + bytes(6)


def check_lladdr(addr: bytes) -> bytes:
    if len(addr) not in (2, 8):
        raise ValueError(f"a link-layer address has 2 or 8 bytes, not {len(addr)}")
    return bytes(addr)


def iid_from_lladdr(addr: bytes) -> bytes:
    """The 8-byte interface identifier that stateless autoconfiguration derives from ``addr``."""
    if len(addr) == 8:
        return bytes((addr[0] ^ 0x02,)) + addr[1:]
    if len(addr) == 2:
        return SHORT_IID_PREFIX + addr
    raise ValueError(f"a link-layer address has 2 or 8 bytes, not {len(addr)}")


def lladdr_from_iid(iid: bytes) -> bytes:
    """Inverse of ``iid_from_lladdr``: the link-layer address an IID was derived from."""
    if len(iid) != 8:
        raise ValueError("an interface identifier has 8 bytes")
    if iid[:6] == SHORT_IID_PREFIX:
        return iid[6:]
    return bytes((iid[0] ^ 0x02,)) + iid[1:]


def link_local(addr: bytes) -> bytes:
    """fe80::/64 + the IID of ``addr``, as 16 bytes."""
    return LINK_LOCAL_PREFIX + iid_from_lladdr(addr)


def lladdr_for_ipv6(dst: bytes) -> bytes:
    """Link-layer destination for an IPv6 destination on the PAN, without neighbour discovery:
    multicast goes to the broadcast short address, unicast to the address its IID was derived
    from (our nodes only use MAC-derived IIDs on the PAN; anything else needs real ND)."""
    if len(dst) != 16:
        raise ValueError("an IPv6 address has 16 bytes")
    if dst[0] == 0xFF:
        return BROADCAST
    return lladdr_from_iid(dst[8:])


def format_lladdr(addr: bytes) -> str:
    return ":".join(f"{b:02x}" for b in addr)
