"""RFC 4944 fragmentation and reassembly: every size 40..1280, frame counts, bounds, timeouts."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.contracts.radio import ReassemblyLimits
from testbed.node.radio import mac
from testbed.node.radio.addressing import link_local
from testbed.node.radio.frag import fragment
from testbed.node.radio.iphc import Context
from testbed.node.radio.reassembly import Reassembler
from testbed.node.radio.station import Station, StationConfig
from tests.unit.node.radio.packets import (
    A_EXT,
    A_SHORT,
    B_EXT,
    B_SHORT,
    ULA,
    filler,
    ip6,
    ipv6,
    udp6,
)

CONTEXTS = {0: Context(ULA)}


def make_packet(size: int, kind: int, seed: int = 0) -> bytes:
    """An IPv6 packet of exactly ``size`` bytes; ``kind`` varies the headers (and so the
    compressed header length, from 6 to 44 bytes)."""
    src_forms = [
        link_local(A_SHORT),  # elided
        ULA + bytes.fromhex("000000fffe000001"),  # context 0, elided
        ip6("2001:db8::1"),  # inline
        link_local(b"\x12\x34"),  # 16 bits
    ]
    dst_forms = [link_local(B_SHORT), ULA + filler(8, seed), ip6("2001:db8::99"), ip6("ff02::1")]
    src, dst = src_forms[kind % 4], dst_forms[(kind // 4) % 4]
    tc, flow, hlim = [(0, 0, 64), (0xB8, 0, 255), (0xB9, 0x12345, 7)][kind % 3]
    if size >= 48 and kind % 5 != 4:
        return udp6(
            src, dst, 5683 + kind, 0xF0B1, filler(size - 48, seed), hlim=hlim, tc=tc, flow=flow
        )
    nh = 58 if size >= 48 else 59  # ICMPv6, or "no next header" when too short for ICMPv6
    return ipv6(src, dst, nh, filler(size - 40, seed), hlim=hlim, tc=tc, flow=flow)


def stations(ext: bool = False) -> tuple[Station, Station]:
    a = Station(StationConfig(A_EXT, None if ext else A_SHORT, contexts=CONTEXTS, seed=1))
    b = Station(StationConfig(B_EXT, None if ext else B_SHORT, contexts=CONTEXTS, seed=2))
    return a, b


def round_trip(a: Station, b: Station, pkt: bytes, shuffle: random.Random | None = None) -> bytes:
    dst = b.lladdr if pkt[24] != 0xFF else b"\xff\xff"
    frames = a.send(pkt, dst)
    assert all(len(f) <= 127 for f in frames)
    if shuffle is not None:
        shuffle.shuffle(frames)
    out = [p for p in (b.receive(f, 0.0) for f in frames) if p is not None]
    assert len(out) == 1, f"{len(pkt)} B: {len(out)} packets from {len(frames)} frames"
    return out[0]


def test_every_size_40_to_1280_round_trips() -> None:
    a, b = stations()
    for size in range(40, 1281):
        pkt = make_packet(size, size % 60, seed=size)
        assert round_trip(a, b, pkt) == pkt, size
    assert b.reassembler.snapshot()["open_datagrams"] == 0
    assert not b.dropped and not b.reassembler.dropped_fragments


def test_every_size_round_trips_with_extended_addresses_out_of_order() -> None:
    a, b = stations(ext=True)
    rng = random.Random(5)
    for size in range(40, 1281, 7):
        pkt = make_packet(size, size % 60, seed=size)
        assert round_trip(a, b, pkt, shuffle=rng) == pkt, size


@settings(max_examples=300, deadline=None)
@given(
    size=st.integers(40, 1280),
    kind=st.integers(0, 59),
    payload=st.binary(min_size=1240, max_size=1240),
    ext=st.booleans(),
)
def test_round_trip_property(size: int, kind: int, payload: bytes, ext: bool) -> None:
    pkt = make_packet(size, kind)
    # Replace the payload with arbitrary bytes (keeps lengths; UDP checksum is not validated).
    header = 48 if pkt[6] == 17 else 40
    pkt = pkt[:header] + payload[: size - header]
    a, b = stations(ext)
    assert round_trip(a, b, pkt) == pkt


def count_frames(size: int, ext: bool, kind: int = 0) -> int:
    a, _ = stations(ext)
    pkt = make_packet(size, kind)
    return len(a.send(pkt, B_EXT if ext else B_SHORT))


@pytest.mark.parametrize(
    ("kind", "ext_counts"),
    [(0, (6, 13)), (2, (7, 13)), (10, (7, 13))],  # compressed header 6, 37 and 44 B
)
def test_frame_counts_match_references(kind: int, ext_counts: tuple[int, int]) -> None:
    # references.md: 9 B MAC header (FCF 2, sequence 1, destination PAN 2, short destination 2,
    # short source 2; PAN ID compression, no security) and 2 B FCS leave 116 B per frame:
    # a 600-byte IPv6 packet takes 6 frames, 1,200 B takes 12.
    assert mac.header_length(2, 2) == 9 and mac.max_payload(2, 2) == 116
    assert count_frames(600, ext=False, kind=kind) == 6
    assert count_frames(1200, ext=False, kind=kind) == 12
    # That holds whatever the compressed header (6 to 44 B here). With extended addresses
    # (21 B header, 104 B per frame) a FRAGN carries 96 B: 1,200 B takes 13 frames, and 600 B
    # takes 6 or 7 depending on how well the IPv6 header compresses.
    assert (count_frames(600, True, kind), count_frames(1200, True, kind)) == ext_counts


def test_fragment_layout_offsets_and_alignment() -> None:
    pkt = make_packet(1280, 0)
    payloads = fragment(pkt, A_SHORT, B_SHORT, max_payload=116, tag=0xBEEF)
    first = payloads[0]
    assert first[0] >> 3 == 0b11000 and int.from_bytes(first[:2], "big") & 0x7FF == 1280
    assert first[2:4] == b"\xbe\xef"
    expected_offset = None
    for p in payloads[1:]:
        assert p[0] >> 3 == 0b11100 and int.from_bytes(p[:2], "big") & 0x7FF == 1280
        assert p[2:4] == b"\xbe\xef"
        offset = p[4] * 8
        if expected_offset is not None:
            assert offset == expected_offset
        expected_offset = offset + len(p) - 5
    assert expected_offset == 1280
    # Every fragment but the last covers a multiple of 8 bytes of the uncompressed packet.
    assert all((len(p) - 5) % 8 == 0 for p in payloads[1:-1])
    assert all(len(p) <= 116 for p in payloads)


def test_small_packet_is_not_fragmented() -> None:
    payloads = fragment(make_packet(100, 0), A_SHORT, B_SHORT, max_payload=116, tag=1)
    assert len(payloads) == 1 and payloads[0][0] >> 5 == 0b011


# ---------------------------------------------------------------- reassembly bounds


def frag_payloads(size: int, tag: int, src: bytes = A_SHORT) -> list[bytes]:
    return fragment(make_packet(size, 0), src, B_SHORT, max_payload=116, tag=tag)


def test_timeout_drops_incomplete_datagram() -> None:
    r = Reassembler(ReassemblyLimits(timeout=5.0))
    parts = frag_payloads(600, 1)
    for p in parts[:-1]:
        assert r.receive(p, A_SHORT, B_SHORT, 0.0) is None
    assert r.next_deadline() == 5.0
    assert r.expire(4.99) == 0
    assert r.receive(parts[-1][:0] + b"", A_SHORT, B_SHORT, 5.0) is None  # expires first
    assert r.dropped_packets["reassembly-timeout"] == 1
    assert r.dropped_fragments["reassembly-timeout"] == len(parts) - 1
    assert r.buffered_bytes == 0
    # The late last fragment opens a new datagram that never completes either.
    assert r.receive(parts[-1], A_SHORT, B_SHORT, 6.0) is None
    assert r.expire(11.0) == 1


def test_per_sender_and_total_buffer_limits() -> None:
    """The shared policy (first come, first served, charged to the claimed source)."""
    r = Reassembler(ReassemblyLimits(per_sender_bytes=1280, total_bytes=2000, policy="shared"))
    a1 = frag_payloads(600, 1)
    a2 = frag_payloads(600, 2)
    a3 = frag_payloads(600, 3)
    assert r.receive(a1[0], A_SHORT, B_SHORT, 0.0) is None
    assert r.receive(a2[0], A_SHORT, B_SHORT, 0.0) is None  # 1,200 B of 1,280 for A
    assert r.receive(a3[0], A_SHORT, B_SHORT, 0.0) is None  # would be 1,800 B: buffer-full
    assert r.dropped_fragments["buffer-full"] == 1
    c = b"\x00\x03"
    c1 = frag_payloads(600, 1, src=c)
    assert r.receive(c1[0], c, B_SHORT, 0.0) is None  # 1,800 B in total: fits
    c2 = frag_payloads(600, 2, src=c)
    assert r.receive(c2[0], c, B_SHORT, 0.0) is None  # 2,400 B in total: buffer-full
    assert r.dropped_fragments["buffer-full"] == 2
    # Completing A's first datagram frees its share.
    done = [r.receive(p, A_SHORT, B_SHORT, 0.0) for p in a1[1:]]
    assert done[-1] == make_packet(600, 0)
    assert r.receive(a3[0], A_SHORT, B_SHORT, 0.0) is None
    assert r.dropped_fragments["buffer-full"] == 2
    assert r.buffered_bytes == 1800


def test_overlap_discards_and_restarts_duplicate_is_ignored() -> None:
    r = Reassembler()
    parts = frag_payloads(600, 7)
    r.receive(parts[0], A_SHORT, B_SHORT, 0.0)
    r.receive(parts[1], A_SHORT, B_SHORT, 0.0)
    r.receive(parts[1], A_SHORT, B_SHORT, 0.0)
    assert r.dropped_fragments["duplicate"] == 1
    # Same datagram, a fragment starting 8 bytes into the second one: overlap.
    bad = parts[1][:4] + bytes((parts[1][4] + 1,)) + parts[1][5:]
    r.receive(bad, A_SHORT, B_SHORT, 0.0)
    assert r.dropped_packets["overlap"] == 1
    assert r.dropped_fragments["overlap"] == 2
    # The overlapping fragment started a new reassembly under the same key (it will time
    # out); a resend under a new tag completes normally.
    outs = [r.receive(p, A_SHORT, B_SHORT, 1.0) for p in frag_payloads(600, 8)]
    assert outs[-1] == make_packet(600, 0)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "empty"),
        (b"\xc0\x94\x00", "truncated"),
        (b"\xe0\x94\x00\x01", "truncated"),
        (b"\xe0\x94\x00\x01\x00\x00", "bad-offset"),
        (b"\xe0\x94\x00\x01\x20" + bytes(8), "fragment-overflow"),  # 256 + 8 > 148
        (b"\xe0\x10\x00\x01\x01" + bytes(8), "bad-size"),  # datagram_size 16
        (b"\xc0\x94\x00\x01\x99", "bad-dispatch"),
        (b"\x80\x00", "unsupported-dispatch"),  # mesh header
        (b"\x50\x01", "unsupported-dispatch"),  # broadcast header
        (b"\x41\x60\x00", "not-ipv6"),
    ],
)
def test_garbled_payloads_are_counted(payload: bytes, reason: str) -> None:
    r = Reassembler()
    assert r.receive(payload, A_SHORT, B_SHORT, 0.0) is None
    assert r.garbled == {reason: 1}
    assert r.dropped_fragments["garbled"] == 1


@settings(max_examples=400, deadline=None)
@given(st.lists(st.binary(max_size=120), max_size=20))
def test_random_payloads_never_raise(payloads: list[bytes]) -> None:
    r = Reassembler(ReassemblyLimits(timeout=1.0, per_sender_bytes=4000, total_bytes=6000))
    for i, p in enumerate(payloads):
        r.receive(p, A_SHORT, B_SHORT, i * 0.3)
    assert r.buffered_bytes <= 6000


@settings(max_examples=200, deadline=None)
@given(size=st.integers(40, 1280), cut=st.integers(0, 130), index=st.integers(0, 20))
def test_truncated_fragments_never_raise(size: int, cut: int, index: int) -> None:
    a, b = stations()
    frames = a.send(make_packet(size, 0), b.lladdr)
    i = index % len(frames)
    frames[i] = frames[i][:cut]
    for f in frames:
        b.receive(f, 0.0)
    assert b.snapshot()["packets_received"] in (0, 1)
