"""FCS (CRC-16/KERMIT) and 802.15.4 MAC framing (scapy cross-checks: test_scapy.py)."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.node.radio import mac
from testbed.node.radio.crc import crc16_kermit, crc16_kermit_reference
from testbed.node.radio.errors import MalformedError
from tests.unit.node.radio.packets import A_EXT, A_SHORT, B_EXT, B_SHORT


def test_crc_catalogue_check_value() -> None:
    # CRC-16/KERMIT check value from the CRC catalogue.
    assert crc16_kermit(b"123456789") == 0x2189
    assert crc16_kermit_reference(b"123456789") == 0x2189
    assert crc16_kermit(b"") == 0


@given(st.binary(max_size=200))
def test_fast_crc_equals_bitwise_definition(data: bytes) -> None:
    assert crc16_kermit(data) == crc16_kermit_reference(data)


def test_ack_frame_known_bytes() -> None:
    # ACK for sequence 0x2a: FCF 0x0002 (LE 02 00), 2a, FCS little-endian.
    ack = mac.encode_ack(0x2A)
    assert ack[:3] == b"\x02\x00\x2a"
    assert ack[3:] == crc16_kermit(ack[:3]).to_bytes(2, "little")
    f = mac.decode(ack)
    assert (f.frame_type, f.seq, f.dst, f.src) == (mac.FRAME_ACK, 0x2A, None, None)


@pytest.mark.parametrize(
    ("src", "dst", "header", "room"),
    [
        (A_SHORT, B_SHORT, 9, 116),
        (A_EXT, B_EXT, 21, 104),
        (A_EXT, B_SHORT, 15, 110),
        (A_SHORT, B_EXT, 15, 110),
    ],
)
def test_header_sizes(src: bytes, dst: bytes, header: int, room: int) -> None:
    assert mac.header_length(len(src), len(dst)) == header
    assert mac.max_payload(len(src), len(dst)) == room
    frame = mac.encode_data(seq=1, pan_id=0x23, src=src, dst=dst, payload=bytes(room))
    assert len(frame) == 127
    with pytest.raises(Exception, match="oversize"):
        mac.encode_data(seq=1, pan_id=0x23, src=src, dst=dst, payload=bytes(room + 1))


def test_data_frame_layout_byte_by_byte() -> None:
    frame = mac.encode_data(seq=0x55, pan_id=0x0023, src=A_SHORT, dst=B_SHORT, payload=b"\x41")
    # FCF 0x9861: data, ACK request, PAN ID compression, short dst, version 2006, short src
    # (RIOT's ieee802154_set_frame_hdr gives the same first two bytes: 61 98).
    assert frame[:-2].hex() == "61985523000200010041"
    broadcast = mac.encode_data(seq=1, pan_id=0x23, src=A_EXT, dst=b"\xff\xff", payload=b"")
    assert int.from_bytes(broadcast[:2], "little") & 0x20 == 0  # no ACK request on broadcast
    assert broadcast[5:7] == b"\xff\xff"
    assert broadcast[7:15] == A_EXT[::-1]  # extended source, little-endian on the air


def _with_fcs(body: bytes) -> bytes:
    return mac.with_fcs(body)


@pytest.mark.parametrize(
    ("frame", "reason"),
    [
        (b"\x41\x88", "truncated"),
        (bytes(128), "oversize"),
        (mac.encode_ack(1)[:-1] + b"\x00", "bad-fcs"),
        (_with_fcs(b"\x41\xa8\x01\x23\x00\x02\x00\x01\x00"), "unsupported-version"),  # v2015
        (_with_fcs(b"\x49\x88\x01\x23\x00\x02\x00\x01\x00"), "security-unsupported"),
        (_with_fcs(b"\x45\x88\x01\x23\x00\x02\x00\x01\x00"), "unsupported-frame-type"),
        (_with_fcs(b"\x41\x84\x01\x23\x00\x02\x00\x01\x00"), "bad-address-mode"),  # src mode 1
        (_with_fcs(b"\x01\x00\x01"), "bad-address-mode"),  # data frame, no address
        (_with_fcs(b"\x41\x08\x01\x23\x00\x02\x00"), "bad-panid-compression"),
        (_with_fcs(b"\x02\x00\x01\x00"), "bad-ack"),
        (_with_fcs(b"\x41\xcc\x01\x23\x00\x02\x00"), "truncated"),  # ext addresses missing
    ],
)
def test_garbled_frames_raise_typed_errors(frame: bytes, reason: str) -> None:
    with pytest.raises(MalformedError) as info:
        mac.decode(frame)
    assert info.value.reason == reason


@given(st.binary(max_size=140))
def test_decode_random_bytes_never_crashes(data: bytes) -> None:
    with contextlib.suppress(MalformedError):
        mac.decode(data)


@given(st.binary(min_size=3, max_size=124))
def test_decode_random_bodies_with_valid_fcs_never_crashes(body: bytes) -> None:
    try:
        f = mac.decode(mac.with_fcs(body))
    except MalformedError:
        return
    assert 0 <= f.frame_type <= 3
