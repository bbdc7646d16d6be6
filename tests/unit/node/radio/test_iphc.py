"""IPHC/NHC (RFC 6282) against published vectors and an independent implementation.

RFC 6282 has no worked hex examples, so the vectors are of three kinds:
- field layouts derived by hand from the RFC's figures (each case says which bits it sets);
- RIOT's own test vectors (tests/net/gnrc_sixlowpan and gnrc_sixlowpan_frag_minfwd): compressed
  headers RIOT produces, and a two-fragment datagram RIOT reassembles to a known packet;
- scapy's LoWPAN_IPHC, both directions (test_scapy.py), and Wireshark (test_wireshark.py).
"""

from __future__ import annotations

import pytest

from testbed.node.radio.addressing import link_local
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.iphc import Context, compress, decompress
from testbed.node.radio.reassembly import Reassembler
from tests.unit.node.radio.packets import (
    A_SHORT,
    B_SHORT,
    ULA,
    filler,
    ip6,
    ipv6,
    udp6,
    udp_checksum_ok,
)

LL_A = link_local(A_SHORT)  # fe80::ff:fe00:1
LL_B = link_local(B_SHORT)


def test_best_case_udp_is_2_plus_4_bytes() -> None:
    # TF=11 NH=1 HLIM=10 (64) | SAM=11 DAM=11 -> 0x7e 0x33; UDP NHC 11110 0 11, ports 4+4 bits.
    pkt = udp6(LL_A, LL_B, 0xF0B1, 0xF0B2, b"x")
    head, consumed = compress(pkt, A_SHORT, B_SHORT)
    assert consumed == 48
    assert head.hex() == "7e33f312" + pkt[46:48].hex()


@pytest.mark.parametrize(
    ("tc", "flow", "tf", "inline"),
    [
        (0x00, 0, 3, ""),  # everything elided
        (0xB8, 0, 2, "2e"),  # EF (DSCP 46), ECN 0: ECN|DSCP = 00 101110
        (0xB9, 0, 2, "6e"),  # EF, ECN 1: 01 101110 (ECN first: the rotation of 3.1.1)
        (0x01, 0x12345, 1, "412345"),  # DSCP 0: ECN(2) rsv(2) flow(20)
        (0xB9, 0x12345, 0, "6e012345"),  # ECN(2) DSCP(6) rsv(4) flow(20)
    ],
)
def test_traffic_class_and_flow_label_forms(tc: int, flow: int, tf: int, inline: str) -> None:
    pkt = ipv6(LL_A, LL_B, 58, b"\x80\x00abcd", tc=tc, flow=flow, hlim=255)
    head, _ = compress(pkt, A_SHORT, B_SHORT)
    assert (head[0] >> 3) & 3 == tf
    assert head[2:].hex() == inline + "3a"  # then next header inline (ICMPv6)
    assert decompress(head + pkt[40:], A_SHORT, B_SHORT).header == pkt[:40]


@pytest.mark.parametrize(
    ("dst", "dam", "inline"),
    [
        ("ff02::1", 3, "01"),  # ff02::00XX
        ("ff05::1:3", 2, "05010003"),  # ffXX::00XX:XXXX
        ("ff02::1:ff00:2", 1, "0201ff000002"),  # ffXX::00XX:XXXX:XXXX (solicited-node)
        ("ff0e::1234:5678:9abc:1", 0, "ff0e000000000000123456789abc0001"),
    ],
)
def test_multicast_destination_forms(dst: str, dam: int, inline: str) -> None:
    pkt = ipv6(LL_A, ip6(dst), 58, b"\x80\x00", hlim=255)
    head, _ = compress(pkt, A_SHORT, b"\xff\xff")
    assert head[1] == 0x30 | 0x08 | dam  # SAM=11, M=1, DAC=0
    assert head[3:].hex() == inline
    assert decompress(head + pkt[40:], A_SHORT, b"\xff\xff").header == pkt[:40]


@pytest.mark.parametrize(
    ("src", "sam", "inline"),
    [
        ("fe80::ff:fe00:1", 3, ""),  # derived from the short MAC address
        ("fe80::ff:fe00:9", 2, "0009"),  # 0000:00ff:fe00:XXXX, 16 bits
        ("fe80::1:2:3:4", 1, "0001000200030004"),  # any other IID, 64 bits
        ("2001:db8::1", 0, "20010db8000000000000000000000001"),  # no context: 128 bits
    ],
)
def test_stateless_source_forms(src: str, sam: int, inline: str) -> None:
    pkt = ipv6(ip6(src), LL_B, 58, b"\x80\x00", hlim=255)
    head, _ = compress(pkt, A_SHORT, B_SHORT)
    assert head[1] == sam << 4 | 0x03
    assert head[3:].hex() == inline
    assert decompress(head + pkt[40:], A_SHORT, B_SHORT).header == pkt[:40]


def test_stateful_context_zero_and_extension_byte() -> None:
    ctx = {0: Context(ULA), 3: Context(bytes.fromhex("fd00000000000002"))}
    src = ULA + bytes.fromhex("000000fffe000001")  # the ULA address derived from A_SHORT
    dst = bytes.fromhex("fd00000000000002") + bytes.fromhex("0011223344556677")
    pkt = udp6(src, dst, 5683, 5684, b"hello")
    head, _ = compress(pkt, A_SHORT, B_SHORT, ctx)
    # CID=1 SAC=1 SAM=11 | M=0 DAC=1 DAM=01; CID byte: SCI 0, DCI 3; then the 64-bit IID.
    assert head[1] == 0x80 | 0x40 | 0x30 | 0x04 | 0x01
    assert head[2] == 0x03
    assert head[3:11] == dst[8:]
    back = decompress(head + pkt[48:], A_SHORT, B_SHORT, ctx)
    assert back.header + pkt[48:] == pkt
    with pytest.raises(MalformedError) as info:
        decompress(head + pkt[48:], A_SHORT, B_SHORT, {0: ctx[0]})
    assert info.value.reason == "unknown-context"


def test_unspecified_source() -> None:
    pkt = ipv6(bytes(16), ip6("ff02::2"), 58, b"\x85\x00\x00\x00", hlim=255)
    head, _ = compress(pkt, A_SHORT, b"\xff\xff")
    assert head[:2].hex() == "7b4b"  # SAC=1 SAM=00 (::), M=1 DAM=11
    assert decompress(head + pkt[40:], A_SHORT, b"\xff\xff").header == pkt[:40]


# ---------------------------------------------------------------- RIOT's vectors

RIOT_LOCAL = bytes.fromhex("020000fffe000001")
RIOT_REMOTE = bytes.fromhex("020000fffe000002")


def test_riot_gnrc_sixlowpan_two_fragments_reassemble() -> None:
    # tests/net/gnrc_sixlowpan: FRAG1 (size 148, tag 1) with IPHC 7f 30 (TF/NH/HLIM 255, SAM=11,
    # dst fd01::1 inline), UDP NHC f3 00 (ports 61616/61616), checksum 0x232f, 48 zero bytes;
    # FRAGN at offset 12 (96 B) with 52 zero bytes. RIOT reports: src fe80::ff:fe00:2,
    # dst fd01::1, hop limit 255, UDP length 108, checksum 0x232f, 100 payload bytes.
    frag1 = bytes.fromhex("c09400017f30fd010000000000000000000000000001f300232f")
    frag1 += bytes(48)
    fragn = bytes.fromhex("e09400010c") + bytes(52)
    r = Reassembler()
    assert r.receive(frag1, RIOT_REMOTE, RIOT_LOCAL, 0.0) is None
    pkt = r.receive(fragn, RIOT_REMOTE, RIOT_LOCAL, 0.0)
    assert pkt is not None and len(pkt) == 148
    expected = ipv6(ip6("fe80::ff:fe00:2"), ip6("fd01::1"), 17, b"", hlim=255)[:40]
    assert pkt[:40] == expected[:4] + (108).to_bytes(2, "big") + expected[6:]
    assert pkt[40:48].hex() == "f0b0f0b0006c232f"
    assert pkt[48:] == bytes(100)
    assert udp_checksum_ok(pkt)  # RIOT's checksum is right for the packet we rebuilt


# RIOT's minfwd test uses build-time link-layer bytes _LL0.._LL7; any value works for these
# vectors because the addresses are carried inline or derived from the MAC address.
LL = bytes.fromhex("1a2b3c4d5e6f7081")
LOC_GB = bytes.fromhex("20010db8d335917e") + bytes((LL[0] ^ 2,)) + LL[1:]
REM_GB = bytes.fromhex("20010db8d335917e") + bytes((LL[0] ^ 2,)) + LL[1:7] + bytes((LL[7] + 1,))
REM_L2 = LL[:7] + bytes((LL[7] + 1,))


@pytest.mark.parametrize(("hlim", "iphc"), [(64, "7e00"), (65, "7c0041")])
def test_riot_minfwd_first_fragment_header(hlim: int, iphc: str) -> None:
    # _test_1st_frag_comp / _comp_prev_hop: global addresses inline, UDP 0xf0b4 -> 0xf0ba,
    # checksum 0x47b8, datagram of 1232 B.
    src = bytes.fromhex("20010db8d6c30acfdc712b85082f75fb")
    body = bytes.fromhex("f0b4f0ba04a847b8") + filler(1184)
    pkt = ipv6(src, REM_GB, 17, body, hlim=hlim)
    head, consumed = compress(pkt, LL, REM_L2)
    assert consumed == 48
    assert head.hex() == iphc + src.hex() + REM_GB.hex() + "f34a47b8"


def test_riot_minfwd_link_local_and_global_icmpv6() -> None:
    # _test_send_ll: link-local to link-local from the L2 addresses: 7a 33 3a.
    loc_ll, rem_ll = link_local(LL), link_local(REM_L2)
    pkt = ipv6(loc_ll, rem_ll, 58, filler(108))
    assert compress(pkt, LL, REM_L2)[0].hex() == "7a333a"
    # _test_send_frag1: the same between global addresses: 7a 00 3a + both inline.
    pkt = ipv6(LOC_GB, REM_GB, 58, filler(108))
    assert compress(pkt, LL, REM_L2)[0].hex() == "7a003a" + LOC_GB.hex() + REM_GB.hex()


# ---------------------------------------------------------------- rejections


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x7e", "not-iphc"),
        (b"\x41\x00", "not-iphc"),
        (bytes.fromhex("7a00") + bytes(10), "truncated"),  # 128-bit source cut short
        (bytes.fromhex("7e33e0"), "unsupported-nhc"),  # extension-header NHC
        (bytes.fromhex("7e3c") + bytes(6), "unsupported-iphc"),  # M=1 DAC=1
        (bytes.fromhex("7e34"), "unsupported-iphc"),  # DAC=1 DAM=00 reserved
        (bytes.fromhex("7e73"), "unknown-context"),  # SAC=1 SAM=11 without context 0
    ],
)
def test_garbled_iphc_is_rejected_with_reason(data: bytes, reason: str) -> None:
    with pytest.raises(MalformedError) as info:
        decompress(data, A_SHORT, B_SHORT)
    assert info.value.reason == reason


def test_datagram_size_smaller_than_header_is_rejected() -> None:
    pkt = udp6(LL_A, LL_B, 1, 2, b"")
    head, _ = compress(pkt, A_SHORT, B_SHORT)
    with pytest.raises(MalformedError, match="bad-size"):
        decompress(head, A_SHORT, B_SHORT, datagram_size=44)


def test_elided_udp_checksum_is_recomputed() -> None:
    pkt = udp6(LL_A, LL_B, 0xF0B1, 0xF0B2, b"payload")
    head, _ = compress(pkt, A_SHORT, B_SHORT)
    elided = head[:2] + bytes((head[2] | 0x04,)) + head[3:4]  # C=1, checksum bytes dropped
    out = Reassembler().receive(elided + pkt[48:], A_SHORT, B_SHORT, 0.0)
    assert out == pkt
