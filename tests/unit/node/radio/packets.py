"""Builders of IPv6 test packets (valid lengths and checksums) and address fixtures."""

from __future__ import annotations

import ipaddress
import struct

from testbed.node.radio.iphc import internet_checksum

A_EXT = bytes.fromhex("0200000000000001")
B_EXT = bytes.fromhex("0200000000000002")
A_SHORT = b"\x00\x01"
B_SHORT = b"\x00\x02"
ULA = bytes.fromhex("fd00000000000001")  # the PAN's /64 in tests


def ip6(text: str) -> bytes:
    return ipaddress.IPv6Address(text).packed


def ipv6(
    src: bytes,
    dst: bytes,
    nh: int,
    payload: bytes,
    *,
    hlim: int = 64,
    tc: int = 0,
    flow: int = 0,
) -> bytes:
    head = struct.pack("!IHBB", 6 << 28 | tc << 20 | flow, len(payload), nh, hlim)
    return head + src + dst + payload


def udp6(
    src: bytes,
    dst: bytes,
    sport: int,
    dport: int,
    payload: bytes,
    **kw: int,
) -> bytes:
    length = 8 + len(payload)
    pseudo = src + dst + struct.pack("!IxxxB", length, 17)
    body = struct.pack("!HHHH", sport, dport, length, 0) + payload
    checksum = internet_checksum(pseudo + body) or 0xFFFF
    body = body[:6] + checksum.to_bytes(2, "big") + body[8:]
    return ipv6(src, dst, 17, body, **kw)


def udp_checksum_ok(packet: bytes) -> bool:
    length = len(packet) - 40
    pseudo = packet[8:40] + struct.pack("!IxxxB", length, 17)
    return internet_checksum(pseudo + packet[40:]) == 0


def filler(n: int, seed: int = 0) -> bytes:
    return bytes((i * 31 + seed * 7 + 11) & 0xFF for i in range(n))


def echo(src: bytes, dst: bytes, kind: int, ident: int, seq: int, data: bytes) -> bytes:
    """An ICMPv6 echo request (kind 128) or reply (129) with its checksum."""
    body = struct.pack("!BBHHH", kind, 0, 0, ident, seq) + data
    pseudo = src + dst + struct.pack("!IxxxB", len(body), 58)
    checksum = internet_checksum(pseudo + body)
    return ipv6(src, dst, 58, body[:2] + checksum.to_bytes(2, "big") + body[4:])


def is_echo(packet: bytes, kind: int) -> bool:
    return len(packet) > 44 and packet[6] == 58 and packet[40] == kind
