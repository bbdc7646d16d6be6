"""What a passive eavesdropper on a PAN learns from a capture (IEEE 802.15.4 frames, pcap).

Read from the air alone, with no key: the link-layer addresses of every station (802.15.4
headers are never encrypted here), and every printable string in the frames, classified
against the building's vocabulary (thing names, vendors, models, domains, CoAP resource names,
URNs and serial numbers). With EDHOC method 3 and OSCORE, identities travel inside encrypted
EDHOC messages and resource names inside the OSCORE ciphertext (RFC 8613 Section 4.1: Uri-Path
is a class E option), so the expectation is that none of these appear.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path
from typing import Any

from testbed.node.radio import zep
from testbed.node.radio.errors import RadioError

LINKTYPE_IEEE802_15_4_WITHFCS = 195
LINKTYPE_RAW = 101
PRINTABLE = re.compile(rb"[\x20-\x7e]{4,}")
SERIAL = re.compile(r"(?i)\b(?:urn:[a-z0-9:._-]+|sn[-:]?[0-9a-f]{6,})\b")


def frames(path: Path) -> list[bytes]:
    """The 802.15.4 frames of a capture: linktype 195 directly, linktype 101 (raw IPv6, the
    medium's own capture) as IPv6/UDP/ZEP datagrams that carry them."""
    data = path.read_bytes()
    if len(data) < 24:
        return []
    magic = struct.unpack("<I", data[:4])[0]
    endian = "<" if magic == 0xA1B2C3D4 else ">"
    linktype = struct.unpack(endian + "I", data[20:24])[0]
    out, offset = [], 24
    while offset + 16 <= len(data):
        _, _, incl, _ = struct.unpack(endian + "IIII", data[offset : offset + 16])
        record = data[offset + 16 : offset + 16 + incl]
        offset += 16 + incl
        if linktype == LINKTYPE_IEEE802_15_4_WITHFCS:
            out.append(record)
        elif linktype == LINKTYPE_RAW and len(record) > 48 and record[0] >> 4 == 6:
            try:
                message = zep.decode(record[48:])  # IPv6 (40) + UDP (8) + ZEP
            except (ValueError, RadioError):
                continue
            if isinstance(message, zep.ZepData):
                out.append(message.frame)
    return out


def mac_source(frame: bytes) -> str | None:
    """The source address of an 802.15.4 frame header (2006 format), as hex."""
    if len(frame) < 3:
        return None
    fcf = int.from_bytes(frame[:2], "little")
    dst_mode, src_mode, compress = (fcf >> 10) & 3, (fcf >> 14) & 3, (fcf >> 6) & 1
    offset = 3
    if dst_mode:
        offset += 2 + (2 if dst_mode == 2 else 8)
    if src_mode == 0:
        return None
    if not compress:
        offset += 2
    size = 2 if src_mode == 2 else 8
    raw = frame[offset : offset + size]
    return raw[::-1].hex(":") if len(raw) == size else None


def analyse(
    path: Path, context0: str | None = None, vocabulary: dict[str, list[str]] | None = None
) -> dict[str, Any]:
    """{"clear": {category: [values]}, "strings": [...], "secrets": [...]}."""
    vocab = {k: sorted(set(v)) for k, v in (vocabulary or {}).items()}
    addresses: set[str] = set()
    strings: set[str] = set()
    for frame in frames(path):
        source = mac_source(frame)
        if source:
            addresses.add(source)
        strings.update(m.decode("ascii") for m in PRINTABLE.findall(frame))
    clear: dict[str, list[str]] = {"link_addresses": sorted(addresses)}
    text = "\n".join(sorted(strings))
    for category, words in vocab.items():
        clear[category] = [w for w in words if w and w in text]
    clear["identifiers"] = sorted(set(SERIAL.findall(text)))
    # Visible by design: the EDHOC resource of the trust center (message_1 and _3 are plain
    # CoAP requests to it), which tells an eavesdropper that a bootstrap is under way.
    clear["endpoints"] = sorted({s for s in strings if "well-known" in s or s == "edhoc"})
    return {
        "file": path.name,
        "context0": context0,
        "frames": len(frames(path)),
        "clear": clear,
        "strings": sorted(strings)[:500],
        "secrets": [],  # filled by the caller when it knows secrets to look for
    }
