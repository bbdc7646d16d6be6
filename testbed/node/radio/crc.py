"""FCS of IEEE 802.15.4: CRC-16 with polynomial x^16 + x^12 + x^5 + 1, reflected, initial value 0,
no final XOR; the catalogue name of exactly that is CRC-16/KERMIT (check value 0x2189 for
b"123456789"). It goes on the air least significant byte first.

Why not a table loop: a per-byte Python loop costs about 8 us for a full frame, and the medium
checks every frame. ``binascii.crc_hqx`` computes the same polynomial non-reflected (XMODEM) in C.
With initial value 0 and no final XOR, the reflected CRC of a message equals the bit-reversed
non-reflected CRC of the message with every byte bit-reversed; ``bytes.translate`` reverses the
bytes in C too, so the whole FCS stays in C (about 0.3 us per frame).
"""

from __future__ import annotations

import binascii

# Bit-reversal of every byte value (0x01 -> 0x80, 0x02 -> 0x40, ...).
_REVERSE = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def crc16_kermit(data: bytes | bytearray | memoryview) -> int:
    """CRC-16/KERMIT of ``data`` as an integer (write it little-endian as the FCS)."""
    c = binascii.crc_hqx(bytes(data).translate(_REVERSE), 0)
    return (_REVERSE[c & 0xFF] << 8) | _REVERSE[c >> 8]


def crc16_kermit_reference(data: bytes | bytearray | memoryview) -> int:
    """Bit-by-bit definition, for tests: shift right, XOR the reflected polynomial 0x8408."""
    crc = 0
    for byte in bytes(data):
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc
