"""SLIP (RFC 1055) framing of IPv6 packets, as Contiki-NG's ``tunslip6`` and RIOT's ``slipdev``
speak it on a serial line (pure encoding; the serial side is slipline.py).

A frame is the packet with two bytes stuffed, then END: END (0xC0) becomes ESC ESC_END
(0xDB 0xDC), ESC (0xDB) becomes ESC ESC_ESC (0xDB 0xDD). ``encode`` also sends END before the
packet, as RFC 1055 recommends, so that line noise before it ends up in a frame of its own
(which is refused) instead of in front of the packet; empty frames (END END) are not frames.

What a frame carries is told by its first byte (tunslip6's convention, which RIOT's
``gnrc_border_router`` and Contiki-NG's ``rpl-border-router`` follow):

    0x6_      an IPv6 packet (version 6); its payload length must match the frame
    ``?P``    the board asks for its prefix; tunslip6 answers ``!P`` + the 8 prefix bytes
    ``!`` ``?`` any other command (``!M`` MAC address, ...): accepted, ignored
    ``\\r``    a debug line (the rest is text); printable text is a debug line too

Anything else is refused by cause (``SlipRefusal``): ``slip-bad-escape`` (ESC followed by a
byte other than ESC_END/ESC_ESC, or a frame that ends inside an escape), ``slip-oversize`` (more
than ``MAX_FRAME`` bytes before END), ``slip-not-ipv6`` (a binary frame that is none of the
above), ``ipv6-bad-length`` (an IPv6 header whose payload length is not the frame's).
"""

from __future__ import annotations

import struct
from collections import Counter
from dataclasses import dataclass

END, ESC, ESC_END, ESC_ESC = 0xC0, 0xDB, 0xDC, 0xDD
MAX_FRAME = 2048  # tunslip6's buffer; our uplink's MTU is 1280
PREFIX_REQUEST = b"?P"
PREFIX_ANSWER = b"!P"
DEBUG_MARKER = 0x0D  # "\r"
IPV6_HEADER = 40


def encode(packet: bytes) -> bytes:
    """One SLIP frame: END, the stuffed packet, END."""
    body = packet.replace(bytes((ESC,)), bytes((ESC, ESC_ESC))).replace(
        bytes((END,)), bytes((ESC, ESC_END))
    )
    return bytes((END,)) + body + bytes((END,))


def prefix_answer(prefix: bytes) -> bytes:
    """tunslip6's answer to ``?P``: ``!P`` and the first 8 bytes of the prefix, framed."""
    if len(prefix) < 8:
        raise ValueError("a prefix answer carries 8 bytes")
    return encode(PREFIX_ANSWER + prefix[:8])


class SlipDecoder:
    """Bytes from the serial line in, complete frames out; garbled frames counted by cause."""

    def __init__(self, max_frame: int = MAX_FRAME) -> None:
        self.max_frame = max_frame
        self._buf = bytearray()
        self._escaped = False
        self._bad: str | None = None  # the refusal of the frame under way, counted at END
        self.frames = 0
        self.refused: Counter[str] = Counter()

    def reset(self) -> None:
        """Forget a frame under way (the line was reopened)."""
        self._buf.clear()
        self._escaped, self._bad = False, None

    def feed(self, data: bytes) -> list[bytes]:
        out: list[bytes] = []
        for byte in data:
            if byte == END:
                if self._escaped:
                    self._bad = self._bad or "slip-bad-escape"
                if self._bad is not None:
                    self.refused[self._bad] += 1
                elif self._buf:
                    out.append(bytes(self._buf))
                    self.frames += 1
                self._buf.clear()
                self._escaped, self._bad = False, None
                continue
            if self._bad is not None:
                continue  # skip to the next END
            if self._escaped:
                self._escaped = False
                if byte == ESC_END:
                    byte = END
                elif byte == ESC_ESC:
                    byte = ESC
                else:
                    self._bad = "slip-bad-escape"
                    continue
            elif byte == ESC:
                self._escaped = True
                continue
            if len(self._buf) >= self.max_frame:
                self._bad = "slip-oversize"
                self._buf.clear()
                continue
            self._buf.append(byte)
        return out


@dataclass(frozen=True, slots=True)
class Frame:
    kind: str  # ipv6 | prefix-request | command | debug
    data: bytes


class SlipRefusal(ValueError):
    def __init__(self, cause: str, detail: str = "") -> None:
        super().__init__(f"{cause}: {detail}" if detail else cause)
        self.cause = cause


def _printable(data: bytes) -> bool:
    return all(0x20 <= b < 0x7F or b in (0x09, 0x0A, 0x0D) for b in data)


def classify(frame: bytes) -> Frame:
    """What a decoded frame is (module docstring); SlipRefusal with the cause otherwise."""
    if frame[0] >> 4 == 6 and len(frame) >= IPV6_HEADER:
        (length,) = struct.unpack_from("!H", frame, 4)
        if IPV6_HEADER + length != len(frame):
            raise SlipRefusal(
                "ipv6-bad-length", f"header says {IPV6_HEADER + length} B, frame {len(frame)} B"
            )
        return Frame("ipv6", frame)
    if frame[:2] == PREFIX_REQUEST:
        return Frame("prefix-request", frame)
    if frame[0] in b"!?":
        return Frame("command", frame)
    if frame[0] == DEBUG_MARKER:
        return Frame("debug", frame[1:])
    if _printable(frame):
        return Frame("debug", frame)
    if frame[0] >> 4 == 6:
        raise SlipRefusal("ipv6-bad-length", f"{len(frame)} B is shorter than an IPv6 header")
    raise SlipRefusal("slip-not-ipv6", f"first byte 0x{frame[0]:02x}")
