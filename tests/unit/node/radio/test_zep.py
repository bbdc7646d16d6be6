"""ZEP v2 layout byte by byte (Wireshark's dissector, RIOT's socket_zep), HELLO, peers."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from testbed.node.radio import mac, zep
from testbed.node.radio.errors import MalformedError
from tests.unit.node.radio.packets import A_EXT, A_SHORT, B_SHORT

FRAME = mac.encode_data(seq=1, pan_id=0x23, src=A_SHORT, dst=B_SHORT, payload=b"\x41" + bytes(40))


def test_data_header_layout_byte_by_byte() -> None:
    ts = zep.ntp_timestamp(1_700_000_000.5)
    dgram = zep.encode_data(
        FRAME, channel=26, device_id=0x1234, seq=0xA1B2C3D4, lqi=0xFF, timestamp=ts
    )
    assert len(dgram) == 32 + len(FRAME)
    assert dgram[0:2] == b"EX"  # preamble
    assert dgram[2] == 2  # version
    assert dgram[3] == 1  # type: data
    assert dgram[4] == 26  # channel
    assert dgram[5:7] == b"\x12\x34"  # device id, big-endian
    assert dgram[7] == 1  # LQI/CRC mode: CRC (FCS at the end of the frame)
    assert dgram[8] == 0xFF  # LQI
    assert dgram[9:13] == (1_700_000_000 + 2_208_988_800).to_bytes(4, "big")  # NTP seconds
    assert dgram[13:17] == b"\x80\x00\x00\x00"  # NTP fraction: .5
    assert dgram[17:21] == b"\xa1\xb2\xc3\xd4"  # sequence
    assert dgram[21:31] == bytes(10)  # reserved
    assert dgram[31] == len(FRAME)  # length, FCS included
    assert dgram[32:] == FRAME
    back = zep.decode(dgram)
    assert back == zep.ZepData(FRAME, 26, 0x1234, True, 0xFF, ts, 0xA1B2C3D4)
    assert zep.unix_from_ntp(back.timestamp) == pytest.approx(1_700_000_000.5)


def test_hello_is_riots_registration_datagram() -> None:
    # socket_zep.c _send_zep_hello: zep_v2_data_hdr_t with preamble "EX", version 2, type 255,
    # resv "HELLO", length 8, everything else zero; then the 8-byte extended address.
    dgram = zep.encode_hello(A_EXT)
    assert dgram == b"EX\x02\xff" + bytes(17) + b"HELLO" + bytes(5) + b"\x08" + A_EXT
    assert zep.decode(dgram) == zep.ZepHello(A_EXT)


def test_ack_layout() -> None:
    assert zep.encode_ack(7) == b"EX\x02\x02\x00\x00\x00\x07"
    assert zep.decode(b"EX\x02\x02\x00\x00\x01\x00") == zep.ZepAck(256)


def test_scapy_reads_our_header() -> None:
    zigbee = pytest.importorskip("scapy.layers.zigbee")
    dgram = zep.encode_data(FRAME, channel=11, device_id=3, seq=9)
    pkt = zigbee.ZEP2(dgram)
    assert (pkt.ver, pkt.type, pkt.channel, pkt.device, pkt.lqi_mode) == (2, 1, 11, 3, 1)
    assert (pkt.seq, pkt.length, pkt.lqi_val) == (9, len(FRAME), 0xFF)


@pytest.mark.parametrize(
    ("dgram", "reason"),
    [
        (b"EX", "truncated"),
        (b"XX\x02\x01" + bytes(28), "bad-preamble"),
        (b"EX\x01\x01" + bytes(28), "unsupported-version"),
        (b"EX\x02\x07" + bytes(28), "unsupported-type"),
        (b"EX\x02\x02\x00", "bad-length"),
        (b"EX\x02\x01" + bytes(10), "truncated"),
        (zep.encode_data(FRAME)[:-1], "bad-length"),
        (zep.encode_data(FRAME) + b"\x00", "bad-length"),
        (b"EX\x02\x01" + bytes(27) + b"\x80" + bytes(128), "bad-length"),  # length 128 > 127
        (zep.encode_hello(A_EXT)[:-1], "bad-length"),
    ],
)
def test_garbled_datagrams_raise_typed_errors(dgram: bytes, reason: str) -> None:
    with pytest.raises(MalformedError) as info:
        zep.decode(dgram)
    assert info.value.reason == reason


@given(st.binary(max_size=200))
def test_random_datagrams_never_crash(data: bytes) -> None:
    with contextlib.suppress(MalformedError):
        zep.decode(data)
