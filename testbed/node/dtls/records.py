"""DTLS 1.2 record layer framing (RFC 6347 Section 4.1): split a byte stream into records,
pack records into datagrams that fit a path MTU, and name what a datagram carries.

Mbed TLS's buffer API hands out the records it wants to send as one byte stream, without
datagram boundaries; a datagram must carry whole records (RFC 6347 4.1.1: "each record MUST be
contained within a single datagram"). So the stream is cut at record boundaries (13-byte
header, length at offset 11) and the records are packed greedily into datagrams of at most
``mtu`` bytes. Mbed TLS fragments handshake messages itself to its configured MTU, so a record
larger than the MTU only occurs when that setting is larger than ours: it then travels alone.

Record header::

    ContentType type;           1   (20 change_cipher_spec, 21 alert, 22 handshake, 23 data)
    ProtocolVersion version;    2   ({254, 253} = DTLS 1.2; {254, 255} = 1.0 in a ClientHello)
    uint16 epoch;               2
    uint48 sequence_number;     6
    uint16 length;              2
    opaque fragment[length];

A handshake fragment in epoch 0 starts with its own 12-byte header (4.2.2): msg_type (1),
length (3), message_seq (2), fragment_offset (3), fragment_length (3).
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

RECORD_HEADER_BYTES = 13
HANDSHAKE_HEADER_BYTES = 12
MAX_RECORD_FRAGMENT = 2**14 + 2048  # RFC 6347 4.1 / RFC 5246 6.2.3 (ciphertext bound)
DTLS_1_0 = 0xFEFF
DTLS_1_2 = 0xFEFD


class ContentType(enum.IntEnum):
    CHANGE_CIPHER_SPEC = 20
    ALERT = 21
    HANDSHAKE = 22
    APPLICATION_DATA = 23


class HandshakeType(enum.IntEnum):
    HELLO_REQUEST = 0
    CLIENT_HELLO = 1
    SERVER_HELLO = 2
    HELLO_VERIFY_REQUEST = 3
    CERTIFICATE = 11
    SERVER_KEY_EXCHANGE = 12
    CERTIFICATE_REQUEST = 13
    SERVER_HELLO_DONE = 14
    CERTIFICATE_VERIFY = 15
    CLIENT_KEY_EXCHANGE = 16
    FINISHED = 20


class FramingError(ValueError):
    """Bytes that are not a sequence of DTLS records."""


@dataclass(frozen=True)
class HandshakeFragment:
    msg_type: int
    length: int  # of the whole handshake message
    message_seq: int
    fragment_offset: int
    fragment_length: int

    @property
    def name(self) -> str:
        try:
            return HandshakeType(self.msg_type).name.lower()
        except ValueError:
            return f"handshake_{self.msg_type}"


@dataclass(frozen=True)
class Record:
    content_type: int
    version: int
    epoch: int
    sequence: int
    fragment: bytes

    @property
    def length(self) -> int:
        return len(self.fragment)

    @property
    def size(self) -> int:
        return RECORD_HEADER_BYTES + len(self.fragment)

    def encode(self) -> bytes:
        return (
            struct.pack("!BHH", self.content_type, self.version, self.epoch)
            + self.sequence.to_bytes(6, "big")
            + struct.pack("!H", len(self.fragment))
            + self.fragment
        )

    def handshake(self) -> HandshakeFragment | None:
        """The handshake header, if this is a plaintext (epoch 0) handshake record; later
        epochs are encrypted (the Finished message) and show nothing."""
        if self.content_type != ContentType.HANDSHAKE or self.epoch != 0:
            return None
        if len(self.fragment) < HANDSHAKE_HEADER_BYTES:
            raise FramingError(f"handshake fragment of {len(self.fragment)} B")
        msg_type = self.fragment[0]
        length = int.from_bytes(self.fragment[1:4], "big")
        (message_seq,) = struct.unpack_from("!H", self.fragment, 4)
        offset = int.from_bytes(self.fragment[6:9], "big")
        frag_len = int.from_bytes(self.fragment[9:12], "big")
        if HANDSHAKE_HEADER_BYTES + frag_len != len(self.fragment) or offset + frag_len > length:
            raise FramingError(
                f"handshake fragment {msg_type}: offset {offset} + {frag_len} of {length} B"
                f" in a record of {len(self.fragment)} B"
            )
        return HandshakeFragment(msg_type, length, message_seq, offset, frag_len)

    def label(self) -> str:
        """A short name: the handshake message, "finished" for an encrypted handshake
        record, else the content type."""
        fragment = self.handshake()
        if fragment is not None:
            return fragment.name
        if self.content_type == ContentType.HANDSHAKE:
            return "finished"  # the only handshake message sent under the new keys
        try:
            return ContentType(self.content_type).name.lower()
        except ValueError:
            return f"content_{self.content_type}"


def _header(data: bytes | memoryview, at: int) -> tuple[int, int, int, int, int]:
    content_type, version, epoch = struct.unpack_from("!BHH", data, at)
    sequence = int.from_bytes(data[at + 5 : at + 11], "big")
    (length,) = struct.unpack_from("!H", data, at + 11)
    return content_type, version, epoch, sequence, length


def split(stream: bytes) -> tuple[list[Record], bytes]:
    """Whole records at the start of ``stream`` and the incomplete rest (to be completed by
    the next bytes the library writes)."""
    records: list[Record] = []
    at = 0
    while len(stream) - at >= RECORD_HEADER_BYTES:
        content_type, version, epoch, sequence, length = _header(stream, at)
        if content_type not in ContentType.__members__.values() or version >> 8 != 0xFE:
            raise FramingError(
                f"no DTLS record at offset {at}: type {content_type}, version {version:#06x}"
            )
        if length > MAX_RECORD_FRAGMENT:
            raise FramingError(f"record at offset {at} claims {length} B")
        end = at + RECORD_HEADER_BYTES + length
        if end > len(stream):
            break
        records.append(
            Record(content_type, version, epoch, sequence, stream[at + RECORD_HEADER_BYTES : end])
        )
        at = end
    return records, stream[at:]


def parse_datagram(datagram: bytes) -> list[Record]:
    """The records of one datagram; FramingError if it is not whole records."""
    records, rest = split(datagram)
    if rest:
        raise FramingError(f"{len(rest)} B after the last whole record")
    if not records:
        raise FramingError("empty datagram")
    return records


def pack(records: Iterable[Record], mtu: int) -> list[bytes]:
    """Records in order, packed greedily into datagrams of at most ``mtu`` bytes (a record
    that alone exceeds it travels alone)."""
    if mtu < RECORD_HEADER_BYTES + 1:
        raise ValueError(f"MTU {mtu} cannot carry a DTLS record")
    datagrams: list[bytes] = []
    current = bytearray()
    for record in records:
        encoded = record.encode()
        if current and len(current) + len(encoded) > mtu:
            datagrams.append(bytes(current))
            current = bytearray()
        current += encoded
    if current:
        datagrams.append(bytes(current))
    return datagrams


class Packer:
    """Incremental: feed the library's output stream as it comes, take datagrams out."""

    def __init__(self, mtu: int) -> None:
        self.mtu = mtu
        self._rest = b""

    def feed(self, data: bytes) -> list[bytes]:
        records, self._rest = split(self._rest + data)
        return pack(records, self.mtu)

    @property
    def pending(self) -> int:
        return len(self._rest)


def labels(records: Iterable[Record]) -> Iterator[str]:
    for record in records:
        yield record.label()
