"""Spinel over HDLC-lite (spinel.py) against the specifications' values."""

from __future__ import annotations

import pytest

from testbed.node.radio import spinel
from testbed.node.radio.errors import MalformedError


def test_fcs16_is_rfc1662s_crc() -> None:
    assert spinel.fcs16(b"123456789") == 0x906E  # CRC-16/X-25 check value
    # RFC 1662 s C.2: the FCS over the data plus its own FCS leaves the "good FCS" residue.
    # That residue is 0xF0B8 before the final XOR, so 0x0F47 after it.
    data = b"\x81\x02\x02"
    assert spinel.fcs16(data + spinel.fcs16(data).to_bytes(2, "little")) == 0xF0B8 ^ 0xFFFF


def test_hdlc_stuffing_and_round_trip() -> None:
    payload = bytes((0x80, 0x7E, 0x7D, 0x11, 0x13, 0xF8, 0x00))
    wire = spinel.hdlc_encode(payload)
    assert wire[0] == wire[-1] == 0x7E and 0x7E not in wire[1:-1]
    assert wire[1:12] == bytes((0x80, 0x7D, 0x5E, 0x7D, 0x5D, 0x7D, 0x31, 0x7D, 0x33, 0x7D, 0xD8))
    d = spinel.HdlcDecoder()
    assert d.feed(wire[:5]) == [] and d.feed(wire[5:] + wire) == [payload, payload]


def test_the_reset_report_ot_rcp_sends_at_boot_decodes() -> None:
    # Seen on the wire from ot-rcp at power-on: PROP_VALUE_IS LAST_STATUS RESET_POWER_ON.
    [payload] = spinel.HdlcDecoder().feed(bytes.fromhex("7e80060070ee747e"))
    frame = spinel.SpinelFrame.decode(payload)
    assert (frame.tid, frame.command, frame.prop) == (0, spinel.CMD_PROP_VALUE_IS, 0)
    assert spinel.unpack_uint(frame.value)[0] == spinel.STATUS_RESET_POWER_ON


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"\x7e\x81\x02\x02\x00\x00\x7e", "hdlc-bad-fcs"),
        (b"\x7e\x81\x7d\x41\x02\x7e", "hdlc-bad-escape"),
        (b"\x7e\x81\x02\x7d\x7e", "hdlc-bad-escape"),
        (b"\x7e\x81\x7e", "hdlc-truncated"),
    ],
)
def test_garbled_hdlc_is_counted_and_dropped(raw: bytes, reason: str) -> None:
    d = spinel.HdlcDecoder()
    good = spinel.hdlc_encode(b"\x81\x02\x02")
    assert d.feed(raw + good) == [b"\x81\x02\x02"]  # the next frame still decodes
    assert d.garbled == {reason: 1}


def test_packed_uint_vectors() -> None:
    # Spinel s3.2 (EXI unsigned integer): 7 bits per byte, least significant group first.
    vectors = {0: "00", 1: "01", 127: "7f", 128: "8001", 16383: "ff7f", 16384: "808001"}
    for value, wire in vectors.items():
        assert spinel.pack_uint(value).hex() == wire
        assert spinel.unpack_uint(bytes.fromhex(wire)) == (value, len(wire) // 2)
    with pytest.raises(MalformedError):
        spinel.unpack_uint(b"\x80\x80\x80\x01")


def test_frames_and_raw_stream_values() -> None:
    frame = spinel.SpinelFrame(3, spinel.CMD_PROP_VALUE_SET, spinel.PROP_STREAM_RAW, b"xy")
    assert frame.encode() == bytes((0x83, 0x03, 0x71)) + b"xy"
    assert spinel.SpinelFrame.decode(frame.encode()) == frame
    with pytest.raises(MalformedError):
        spinel.SpinelFrame.decode(b"\x03\x02")  # flag bits must be 10
    psdu = bytes(range(20))
    value = spinel.raw_transmit(psdu, 15)
    assert value[:2] == (20).to_bytes(2, "little") and value[-1] == 15
    assert spinel.raw_frame(value) == psdu
    with pytest.raises(MalformedError):
        spinel.raw_frame(b"\x30\x00abc")
    with pytest.raises(ValueError):
        spinel.raw_transmit(bytes(128), 15)
