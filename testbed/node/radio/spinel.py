"""Spinel over HDLC-lite, as OpenThread's radio co-processor (``ot-rcp``) speaks it on a serial
line (pure encoding; the serial side is dongle.py).

HDLC-lite (Spinel spec, after RFC 1662 "HDLC-like framing"): a frame is ``0x7E``, the payload
and its FCS-16 (RFC 1662 s C.2: CRC-16 reflected polynomial 0x8408, initial value 0xFFFF, final
XOR 0xFFFF, i.e. CRC-16/X-25, sent least significant byte first), byte-stuffed, then ``0x7E``.
Stuffing: 0x7E, 0x7D, 0x11 (XON), 0x13 (XOFF) and 0xF8 become 0x7D followed by the byte XOR
0x20. A frame whose FCS does not match, that ends inside an escape or that escapes a byte that
needs none is garbled: ``HdlcDecoder`` counts it by reason and drops it.

Spinel frame: a header byte ``1 0 IID(2) TID(4)`` (flag bits 10, interface 0, transaction id
1..15; 0 for unsolicited), the command as a packed unsigned integer, then for property commands
the property id (packed) and its value. Packed unsigned integers are EXI-style: 7 bits per
byte, least significant group first, high bit set on all but the last byte.

Raw radio properties used here: ``STREAM_RAW`` value = frame length (uint16 little-endian), the
802.15.4 frame with its FCS, then metadata (received: RSSI, noise floor, flags, channel, LQI,
timestamp, error; sent: the channel and optional transmit options).
"""

from __future__ import annotations

import binascii
import struct
from collections import Counter
from dataclasses import dataclass

from testbed.node.radio.errors import MalformedError

FLAG, ESCAPE = 0x7E, 0x7D
_STUFFED = frozenset((0x7E, 0x7D, 0x11, 0x13, 0xF8))

# Commands and properties (Spinel spec, OpenThread spinel.h).
CMD_RESET = 1
CMD_PROP_VALUE_GET = 2
CMD_PROP_VALUE_SET = 3
CMD_PROP_VALUE_IS = 6
PROP_LAST_STATUS = 0
PROP_PROTOCOL_VERSION = 1
PROP_NCP_VERSION = 2
PROP_HWADDR = 8
PROP_PHY_ENABLED = 0x20
PROP_PHY_CHAN = 0x21
PROP_MAC_15_4_PANID = 0x36
PROP_MAC_RAW_STREAM_ENABLED = 0x37
PROP_MAC_PROMISCUOUS_MODE = 0x38  # 0 off, 1 network, 2 full
PROP_STREAM_RAW = 0x71
STATUS_OK = 0
STATUS_RESET_POWER_ON = 112
RESET_STACK = 2

_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def fcs16(data: bytes | bytearray) -> int:
    """RFC 1662's FCS-16 (CRC-16/X-25; check value 0x906E for b"123456789"), computed with
    ``binascii.crc_hqx`` on bit-reversed bytes as crc.py does for 802.15.4's FCS."""
    c = binascii.crc_hqx(bytes(data).translate(_REVERSE), 0xFFFF)
    return ((_REVERSE[c & 0xFF] << 8) | _REVERSE[c >> 8]) ^ 0xFFFF


def hdlc_encode(payload: bytes) -> bytes:
    out = bytearray((FLAG,))
    for byte in payload + fcs16(payload).to_bytes(2, "little"):
        if byte in _STUFFED:
            out += bytes((ESCAPE, byte ^ 0x20))
        else:
            out.append(byte)
    out.append(FLAG)
    return bytes(out)


class HdlcDecoder:
    """Bytes from the serial line in, complete payloads out; garbled frames counted."""

    MAX_FRAME = 4096  # bytes between flags: beyond it the line is noise

    def __init__(self) -> None:
        self._buf = bytearray()
        self.frames = 0
        self.garbled: Counter[str] = Counter()

    def feed(self, data: bytes) -> list[bytes]:
        out = []
        for byte in data:
            if byte != FLAG:
                if len(self._buf) < self.MAX_FRAME:
                    self._buf.append(byte)
                elif len(self._buf) == self.MAX_FRAME:
                    self._buf.append(byte)  # mark it overlong once; counted at the flag
                continue
            if self._buf:
                try:
                    out.append(self._frame(bytes(self._buf)))
                    self.frames += 1
                except MalformedError as exc:
                    self.garbled[exc.reason] += 1
                self._buf.clear()
        return out

    def _frame(self, raw: bytes) -> bytes:
        if len(raw) > self.MAX_FRAME:
            raise MalformedError("hdlc-overlong")
        data = bytearray()
        escaped = False
        for byte in raw:
            if escaped:
                byte ^= 0x20
                if byte not in _STUFFED:
                    raise MalformedError("hdlc-bad-escape", f"0x7D 0x{byte ^ 0x20:02X}")
                data.append(byte)
                escaped = False
            elif byte == ESCAPE:
                escaped = True
            else:
                data.append(byte)
        if escaped:
            raise MalformedError("hdlc-bad-escape", "frame ends inside an escape")
        if len(data) < 3:
            raise MalformedError("hdlc-truncated", f"{len(data)} B")
        payload, fcs = bytes(data[:-2]), int.from_bytes(data[-2:], "little")
        if fcs16(payload) != fcs:
            raise MalformedError("hdlc-bad-fcs")
        return payload


def pack_uint(value: int) -> bytes:
    if value < 0:
        raise ValueError("packed integers are unsigned")
    out = bytearray()
    while True:
        group, value = value & 0x7F, value >> 7
        out.append(group | (0x80 if value else 0))
        if not value:
            return bytes(out)


def unpack_uint(data: bytes, offset: int = 0) -> tuple[int, int]:
    """(value, offset after it); MalformedError when it runs off the end or past 21 bits."""
    value = shift = 0
    for i in range(offset, min(len(data), offset + 3)):
        value |= (data[i] & 0x7F) << shift
        if not data[i] & 0x80:
            return value, i + 1
        shift += 7
    raise MalformedError("spinel-bad-uint")


@dataclass(frozen=True, slots=True)
class SpinelFrame:
    tid: int
    command: int
    prop: int | None = None
    value: bytes = b""

    def encode(self) -> bytes:
        if not 0 <= self.tid <= 15:
            raise ValueError("a transaction id has 4 bits")
        out = bytes((0x80 | self.tid,)) + pack_uint(self.command)
        if self.prop is not None:
            out += pack_uint(self.prop)
        return out + self.value

    @classmethod
    def decode(cls, payload: bytes) -> SpinelFrame:
        if not payload or payload[0] & 0xC0 != 0x80:
            raise MalformedError("spinel-bad-header")
        command, off = unpack_uint(payload, 1)
        if command in (CMD_PROP_VALUE_GET, CMD_PROP_VALUE_SET, CMD_PROP_VALUE_IS):
            prop, off = unpack_uint(payload, off)
            return cls(payload[0] & 0x0F, command, prop, payload[off:])
        return cls(payload[0] & 0x0F, command, None, payload[off:])


def raw_frame(value: bytes) -> bytes:
    """The 802.15.4 frame (FCS included) of a received ``STREAM_RAW`` value."""
    if len(value) < 2:
        raise MalformedError("spinel-truncated-stream")
    (n,) = struct.unpack_from("<H", value)
    if n < 5 or len(value) < 2 + n:
        raise MalformedError("spinel-bad-stream-length", f"{n} B of {len(value) - 2}")
    return value[2 : 2 + n]


def raw_channel(value: bytes) -> int | None:
    """The channel a received ``STREAM_RAW`` value says the frame was heard on, None without
    that metadata. After the frame: RSSI, noise floor (1 B each), flags (2 B), then the PHY
    data struct (2 B length, channel, LQI, timestamp)."""
    n = struct.unpack_from("<H", value)[0]
    at = 2 + n + 6
    return value[at] if len(value) > at else None


def raw_transmit(frame: bytes, channel: int) -> bytes:
    """A ``STREAM_RAW`` value that transmits ``frame`` (FCS included: the radio recomputes it)
    on ``channel``."""
    if len(frame) > 127:
        raise ValueError(f"{len(frame)} B frame exceeds 127 B")
    return struct.pack("<H", len(frame)) + frame + bytes((channel,))
