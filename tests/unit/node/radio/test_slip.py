"""SLIP (RFC 1055) framing as tunslip6 and RIOT's slipdev speak it: the byte stuffing, the
decoder against garbled input (refused and counted by cause, never raised), what a frame is
(IPv6, ``?P`` prefix request, commands, debug text) and the round trip of random packets split
at random points of the line."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from testbed.node.radio import slip
from testbed.node.radio.slip import END, ESC, SlipDecoder, classify


def ipv6(payload: bytes = b"", src: bytes = bytes(16), dst: bytes = bytes(16)) -> bytes:
    return struct.pack("!IHBB", 6 << 28, len(payload), 59, 64) + src + dst + payload


@pytest.mark.parametrize(
    ("packet", "line"),
    [
        (b"", b"\xc0\xc0"),
        (b"\x01\x02", b"\xc0\x01\x02\xc0"),
        (b"\xc0", b"\xc0\xdb\xdc\xc0"),  # END inside: ESC ESC_END
        (b"\xdb", b"\xc0\xdb\xdd\xc0"),  # ESC inside: ESC ESC_ESC
        (b"\xdb\xdc", b"\xc0\xdb\xdd\xdc\xc0"),  # a literal ESC_END after an ESC stays literal
        (b"\xdc\xdd", b"\xc0\xdc\xdd\xc0"),  # ESC_END/ESC_ESC alone need no stuffing
        (b"\xc0\xdb\xc0", b"\xc0\xdb\xdc\xdb\xdd\xdb\xdc\xc0"),
    ],
)
def test_rfc1055_stuffing(packet: bytes, line: bytes) -> None:
    assert slip.encode(packet) == line
    decoder = SlipDecoder()
    assert decoder.feed(line) == ([packet] if packet else [])  # END END is no frame
    assert not decoder.refused


def test_frames_split_across_reads_and_back_to_back() -> None:
    decoder = SlipDecoder()
    line = slip.encode(b"\x60ab\xc0") + slip.encode(b"\xdbz")
    out = []
    for i in range(len(line)):
        out += decoder.feed(line[i : i + 1])
    assert out == [b"\x60ab\xc0", b"\xdbz"] and decoder.frames == 2


@pytest.mark.parametrize(
    ("line", "cause"),
    [
        (bytes((END, ESC, 0x41, END)), "slip-bad-escape"),  # ESC then neither DC nor DD
        (bytes((END, 0x41, ESC, END)), "slip-bad-escape"),  # the frame ends inside an escape
        (bytes((END,)) + b"\x61" * 2049 + bytes((END,)), "slip-oversize"),
    ],
)
def test_garbled_lines_are_refused_by_cause_and_the_next_frame_gets_through(
    line: bytes, cause: str
) -> None:
    decoder = SlipDecoder()
    assert decoder.feed(line + slip.encode(b"ok")) == [b"ok"]
    assert decoder.refused == {cause: 1}


def test_classify_tells_packets_requests_commands_and_text() -> None:
    packet = ipv6(b"\x80\x00")
    assert classify(packet) == slip.Frame("ipv6", packet)
    assert classify(b"?P").kind == "prefix-request"
    assert classify(b"!M\x00\x12").kind == "command"
    assert classify(b"\rbooting") == slip.Frame("debug", b"booting")
    assert classify(b"RIOT native\n").kind == "debug"
    for frame, cause in [
        (packet[:-1], "ipv6-bad-length"),  # header says 2 B of payload, 1 B came
        (packet + b"x", "ipv6-bad-length"),
        (b"\x60\x00", "ipv6-bad-length"),  # shorter than a header
        (b"\x45\x00\x00\x14", "slip-not-ipv6"),  # IPv4
        (b"\x00\xff", "slip-not-ipv6"),
    ]:
        with pytest.raises(slip.SlipRefusal) as refusal:
            classify(frame)
        assert refusal.value.cause == cause


def test_prefix_answer_is_tunslip6s() -> None:
    prefix = bytes.fromhex("fd00c0dbc0db000a") + bytes(8)
    line = slip.prefix_answer(prefix)
    [frame] = SlipDecoder().feed(line)
    assert frame == b"!P" + prefix[:8]  # the prefix bytes are stuffed like any others
    assert b"\xc0" not in line[1:-1]


@settings(max_examples=300, derandomize=True, deadline=None)
@given(
    packets=st.lists(
        st.binary(max_size=300).map(
            lambda b: b.replace(b"\xc1", b"\xc0").replace(b"\xda", b"\xdb")
        ),
        min_size=1,
        max_size=8,
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=10),
)
def test_random_packets_round_trip_whatever_the_reads(
    packets: list[bytes], cuts: list[int]
) -> None:
    """END and ESC bytes are frequent in these packets (0xC1/0xDA are mapped onto them)."""
    line = b"".join(slip.encode(p) for p in packets)
    decoder = SlipDecoder()
    out: list[bytes] = []
    start = 0
    for cut in [*sorted({c % (len(line) + 1) for c in cuts}), len(line)]:
        out += decoder.feed(line[start:cut])
        start = cut
    assert out == [p for p in packets if p] and not decoder.refused


@settings(max_examples=500, derandomize=True, deadline=None)
@given(noise=st.binary(max_size=3000))
def test_noise_never_raises_and_every_refusal_has_a_cause(noise: bytes) -> None:
    decoder = SlipDecoder()
    frames = decoder.feed(noise) + decoder.feed(bytes((END,)))
    refused = 0
    for frame in frames:
        assert len(frame) <= slip.MAX_FRAME
        try:
            kind = classify(frame).kind
        except slip.SlipRefusal as exc:
            assert exc.cause in {"slip-not-ipv6", "ipv6-bad-length"}
            refused += 1
        else:
            assert kind in {"ipv6", "prefix-request", "command", "debug"}
    assert set(decoder.refused) <= {"slip-bad-escape", "slip-oversize"}
    # Nothing is lost silently: every END-terminated run is a frame, a refusal or empty.
    assert len(frames) + sum(decoder.refused.values()) <= noise.count(END) + 1


@settings(max_examples=200, derandomize=True, deadline=None)
@given(
    packet=st.binary(min_size=1, max_size=200),
    at=st.integers(min_value=0),
    byte=st.integers(0, 255),
)
def test_a_garbled_byte_gives_a_refusal_or_a_frame_never_a_crash(
    packet: bytes, at: int, byte: int
) -> None:
    line = bytearray(slip.encode(packet))
    line[1 + at % (len(line) - 2)] = byte
    decoder = SlipDecoder()
    frames = decoder.feed(bytes(line) + slip.encode(b"next"))
    assert frames[-1] == b"next"  # the line recovers at the next END
    assert len(frames) - 1 + sum(decoder.refused.values()) >= 1 or byte == END


def test_a_line_that_takes_nothing_fills_up_and_is_refused_not_raised() -> None:
    """The board reads nothing: what does not fit the uplink's line buffer is counted."""
    import asyncio
    import os
    import pty

    from testbed.node.radio.slipuplink import LINE_BUFFER, SlipUplink

    master, slave = pty.openpty()

    async def main() -> None:
        uplink = SlipUplink("board-1", os.ttyname(slave), "fd00:5::/64", "sliptest9")
        uplink.open_line()
        packet = ipv6(bytes(1200), src=bytes.fromhex("fd000005" + "00" * 11 + "02"))
        sent = 2 * LINE_BUFFER // len(packet)
        for _ in range(sent):
            uplink._from_kernel(packet)
        assert uplink.refused["line-full"] >= 1
        assert uplink.packets_to_line + uplink.refused["line-full"] == sent
        uplink._close_line()

    try:
        asyncio.run(main())
    finally:
        os.close(master)
        os.close(slave)


def test_a_board_that_cannot_be_opened_is_an_error_of_its_own() -> None:
    import asyncio

    from testbed.node.radio.slipuplink import SlipUplink

    async def main() -> None:
        uplink = SlipUplink("board-1", "/dev/nonexistent-board", "fd00:5::/64", "sliptest9")
        with pytest.raises(OSError, match="cannot open /dev/nonexistent-board"):
            uplink.open_line()
        uplink._from_kernel(ipv6(b"x"))
        assert uplink.refused == {"closed": 1}

    asyncio.run(main())
