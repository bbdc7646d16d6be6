"""The little DER this package writes by hand: RFC 4108 HardwareModuleName.

cryptography carries an otherName SAN as opaque bytes (the DER of the value inside
``[0] EXPLICIT``), so the value must be encoded and parsed here:

    id-on-hardwareModuleName OBJECT IDENTIFIER ::= { id-on 4 }   -- 1.3.6.1.5.5.7.8.4
    HardwareModuleName ::= SEQUENCE {
        hwType       OBJECT IDENTIFIER,
        hwSerialNum  OCTET STRING }

The parser accepts exactly DER (definite, minimal lengths; minimal OID arcs; nothing trailing),
because the serial number read back is an identity the trust center acts on.
"""

from __future__ import annotations

from dataclasses import dataclass

from testbed.errors import PkiError

HARDWARE_MODULE_NAME_OID = "1.3.6.1.5.5.7.8.4"

_SEQUENCE = 0x30
_OID = 0x06
_OCTET_STRING = 0x04


@dataclass(frozen=True)
class HardwareModuleName:
    hw_type: str  # dotted OID
    serial: bytes

    def to_der(self) -> bytes:
        body = _tlv(_OID, encode_oid(self.hw_type)) + _tlv(_OCTET_STRING, self.serial)
        return _tlv(_SEQUENCE, body)

    @classmethod
    def from_der(cls, data: bytes) -> HardwareModuleName:
        body, rest = _read(data, _SEQUENCE, "HardwareModuleName")
        if rest:
            raise PkiError("HardwareModuleName: trailing bytes after the SEQUENCE")
        oid, body = _read(body, _OID, "HardwareModuleName.hwType")
        serial, body = _read(body, _OCTET_STRING, "HardwareModuleName.hwSerialNum")
        if body:
            raise PkiError("HardwareModuleName: unexpected fields after hwSerialNum")
        return cls(decode_oid(oid), serial)


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _tlv(tag: int, value: bytes) -> bytes:
    return bytes([tag]) + _length(len(value)) + value


def _read(data: bytes, tag: int, what: str) -> tuple[bytes, bytes]:
    """Split one TLV of the expected tag off ``data``: (value, rest)."""
    if len(data) < 2 or data[0] != tag:
        raise PkiError(f"{what}: expected DER tag 0x{tag:02x}")
    first = data[1]
    if first < 0x80:
        length, start = first, 2
    else:
        count = first & 0x7F
        raw = data[2 : 2 + count]
        # 0x80 is BER's indefinite form; long form must be minimal (no leading zero, >= 128).
        if count == 0 or len(raw) != count or raw[0] == 0:
            raise PkiError(f"{what}: bad DER length")
        length, start = int.from_bytes(raw, "big"), 2 + count
        if length < 0x80:
            raise PkiError(f"{what}: non-minimal DER length")
    end = start + length
    if end > len(data):
        raise PkiError(f"{what}: truncated")
    return data[start:end], data[end:]


def encode_oid(dotted: str) -> bytes:
    """The DER contents octets of an OBJECT IDENTIFIER (X.690 Section 8.19)."""
    try:
        arcs = [int(a) for a in dotted.split(".")]
    except ValueError as exc:
        raise PkiError(f"not an OID: {dotted!r}") from exc
    if len(arcs) < 2 or arcs[0] > 2 or any(a < 0 for a in arcs) or (arcs[0] < 2 and arcs[1] > 39):
        raise PkiError(f"not an OID: {dotted!r}")
    out = bytearray()
    for arc in [40 * arcs[0] + arcs[1], *arcs[2:]]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def decode_oid(data: bytes) -> str:
    if not data or data[-1] & 0x80:
        raise PkiError("OID: empty or truncated")
    arcs: list[int] = []
    value = 0
    fresh = True
    for byte in data:
        if fresh and byte == 0x80:
            raise PkiError("OID: non-minimal arc encoding")
        value = (value << 7) | (byte & 0x7F)
        fresh = not byte & 0x80
        if fresh:
            arcs.append(value)
            value = 0
    first = arcs[0]
    head = [0, first] if first < 40 else [1, first - 40] if first < 80 else [2, first - 80]
    return ".".join(str(a) for a in [*head, *arcs[1:]])
