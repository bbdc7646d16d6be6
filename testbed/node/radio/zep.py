"""ZEP v2 (ZigBee Encapsulation Protocol) over UDP, as Wireshark dissects it and as RIOT's
``socket_zep`` (cpu/native/socket_zep) and its ``zep_dispatch`` tool speak it.

Data (type 1), 32-byte header, all fields big-endian:

    0  "EX"            preamble
    2  2               version
    3  1               type: data
    4  channel         RIOT drops frames whose channel differs from its own (default 26)
    5  device id (2)   RIOT puts the low 16 bits of its device pointer here; we put a node index
    7  LQI/CRC mode    1 = "CRC": the frame ends with its 802.15.4 FCS (RIOT always sends 1, and
                       Wireshark then hands it to the standard 802.15.4 dissector); 0 = "LQI": the
                       last two bytes are CC24xx RSSI/LQI status instead of an FCS
    8  LQI             RIOT sends 0xff and lets a dispatcher overwrite it
    9  timestamp (8)   NTP format: seconds since 1900, then a 32-bit binary fraction
    17 sequence (4)
    21 reserved (10)   zero
    31 length          of the 802.15.4 frame, FCS included (at most 127)
    32 the frame

Ack (type 2): "EX", 2, 2, sequence (4) = 8 bytes. Nothing we know sends it; decoded for
completeness.

HELLO (type 255) is RIOT's own addition (module ``socket_zep_hello``, default with ``-z``): when
a native node's extended address is configured and its socket is connected to a remote, it
sends one datagram of a 32-byte data-shaped header with type 255, all fields zero except
reserved = "HELLO" (zero-padded) and length = 8, followed by its 8-byte extended address (most
significant byte first). It carries no frame: RIOT's dispatcher uses it to learn which UDP
endpoint owns which EUI-64 before the node has sent anything, so that frames addressed to the
node reach it. We implement exactly that: decode it, and the hub's station registry
(admission.py) binds the endpoint to the address, within its rules. Nothing is sent back (RIOT
expects no reply). Wireshark shows a HELLO as a data packet of reserved type with an 8-byte
payload, so captures should leave HELLOs out.

RIOT fills the timestamp fraction with an approximation (usec * 10^6 / 232, truncated to 32
bits first); receivers ignore it, and we write the exact NTP fraction.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from testbed.contracts.radio import ZEP_PORT as ZEP_PORT  # the medium port, re-exported
from testbed.node.radio.errors import EncodeError, MalformedError
from testbed.node.radio.phy import MAX_PSDU

PREAMBLE = b"EX"
VERSION = 2
TYPE_DATA = 1
TYPE_ACK = 2
TYPE_HELLO = 255
HEADER_LEN = 32
ACK_LEN = 8
HELLO_MAGIC = b"HELLO".ljust(10, b"\x00")
DEFAULT_CHANNEL = 26  # RIOT's CONFIG_IEEE802154_DEFAULT_CHANNEL
NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 to 1970-01-01

_DATA = struct.Struct("!2sBBBHBBQI10sB")
_ACK = struct.Struct("!2sBBI")


@dataclass(frozen=True, slots=True)
class ZepData:
    frame: bytes
    channel: int = DEFAULT_CHANNEL
    device_id: int = 0
    crc_mode: bool = True
    lqi: int = 0xFF
    timestamp: int = 0  # NTP 64-bit fixed point
    seq: int = 0


@dataclass(frozen=True, slots=True)
class ZepAck:
    seq: int


@dataclass(frozen=True, slots=True)
class ZepHello:
    ext_addr: bytes


ZepMessage = ZepData | ZepAck | ZepHello


def ntp_timestamp(unix_seconds: float) -> int:
    seconds = int(unix_seconds)
    fraction = int((unix_seconds - seconds) * (1 << 32)) & 0xFFFFFFFF
    return ((seconds + NTP_UNIX_OFFSET) & 0xFFFFFFFF) << 32 | fraction


def unix_from_ntp(timestamp: int) -> float:
    return (timestamp >> 32) - NTP_UNIX_OFFSET + (timestamp & 0xFFFFFFFF) / (1 << 32)


def encode_data(
    frame: bytes | bytearray | memoryview,
    *,
    channel: int = DEFAULT_CHANNEL,
    device_id: int = 0,
    seq: int = 0,
    lqi: int = 0xFF,
    timestamp: int = 0,
    crc_mode: bool = True,
) -> bytes:
    """A data datagram carrying one PSDU (FCS included in CRC mode)."""
    n = len(frame)
    if n > MAX_PSDU:
        raise EncodeError("oversize", f"{n} B frame exceeds {MAX_PSDU} B")
    head = _DATA.pack(
        PREAMBLE, VERSION, TYPE_DATA, channel & 0xFF, device_id & 0xFFFF, int(crc_mode),
        lqi & 0xFF, timestamp & 0xFFFFFFFFFFFFFFFF, seq & 0xFFFFFFFF, bytes(10), n,
    )  # fmt: skip
    return head + bytes(frame)


_RESERVED = bytes(10)


def data_header(channel: int, device_id: int, seq: int, timestamp: int, length: int) -> bytes:
    """The 32-byte header of a data datagram in CRC mode with LQI 0xff, as ``encode_data``
    writes it, for callers that append a frame they know to be at most 127 bytes (the hub
    sends frames the medium decoded already)."""
    return _DATA.pack(
        PREAMBLE, VERSION, TYPE_DATA, channel & 0xFF, device_id & 0xFFFF, 1, 0xFF,
        timestamp & 0xFFFFFFFFFFFFFFFF, seq & 0xFFFFFFFF, _RESERVED, length,
    )  # fmt: skip


def data_frame(datagram: bytes) -> tuple[int, bytes] | None:
    """(channel, frame) of a well-formed data datagram, the common case of every datagram the
    hub reads, without building a ``ZepData``; None for anything else (HELLO, ACK, garbled),
    which ``decode`` then classifies. Same checks as ``decode`` for a data datagram."""
    n = len(datagram)
    if n < HEADER_LEN or datagram[3] != TYPE_DATA or datagram[2] != VERSION:
        return None
    if datagram[:2] != PREAMBLE:
        return None
    length = datagram[31]
    if length > MAX_PSDU or n != HEADER_LEN + length:
        return None
    return datagram[4], datagram[HEADER_LEN:]


def encode_ack(seq: int) -> bytes:
    return _ACK.pack(PREAMBLE, VERSION, TYPE_ACK, seq & 0xFFFFFFFF)


def encode_hello(ext_addr: bytes) -> bytes:
    """RIOT's registration datagram for ``ext_addr`` (8 bytes)."""
    if len(ext_addr) != 8:
        raise EncodeError("bad-address", "HELLO carries an 8-byte extended address")
    return _DATA.pack(PREAMBLE, VERSION, TYPE_HELLO, 0, 0, 0, 0, 0, 0, HELLO_MAGIC, 8) + ext_addr


def decode(datagram: bytes | bytearray | memoryview) -> ZepMessage:
    """Parse one UDP payload. Raises MalformedError: truncated, bad-preamble,
    unsupported-version, unsupported-type, bad-length."""
    data = bytes(datagram)
    n = len(data)
    if n < 4:
        raise MalformedError("truncated", f"{n} B ZEP datagram")
    if data[:2] != PREAMBLE:
        raise MalformedError("bad-preamble")
    if data[2] != VERSION:
        raise MalformedError("unsupported-version", f"ZEP version {data[2]}")
    kind = data[3]
    if kind == TYPE_ACK:
        if n != ACK_LEN:
            raise MalformedError("bad-length", f"{n} B ZEP ack")
        return ZepAck(_ACK.unpack(data)[3])
    if kind not in (TYPE_DATA, TYPE_HELLO):
        raise MalformedError("unsupported-type", f"ZEP type {kind}")
    if n < HEADER_LEN:
        raise MalformedError("truncated", f"{n} B ZEP header")
    _, _, _, channel, device, mode, lqi, ts, seq, _, length = _DATA.unpack_from(data)
    if length > MAX_PSDU or n != HEADER_LEN + length:
        raise MalformedError("bad-length", f"length {length}, datagram {n} B")
    if kind == TYPE_HELLO:
        if length != 8:
            raise MalformedError("bad-length", "HELLO must carry 8 bytes")
        return ZepHello(data[HEADER_LEN:])
    return ZepData(data[HEADER_LEN:], channel, device, bool(mode), lqi, ts, seq)
