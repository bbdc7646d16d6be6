"""6LoWPAN receive side: unfragmented IPHC/IPv6 payloads and RFC 4944 reassembly.

Bounded on purpose, because reassembly buffers are a classic DoS target on constrained links
(RFC 4944 Section 5.3; Hummen et al. 2013, "6LoWPAN fragmentation attacks"):
- a datagram's buffer (its full ``datagram_size``, reserved at its first fragment, as embedded
  stacks allocate it) counts against its sender's budget and the total budget. Who the sender
  is, and what happens when the total is full, is the policy (``ReassemblyLimits.policy``):
  - ``per-station`` (default): the sender is the station the medium says sent the frame (its
    carrier endpoint), not the frame's claimed source address, which any station can write. A
    sender over its own budget gives up its own oldest datagram; when the total is full, the
    oldest datagram of a sender holding at least as much as the newcomer would hold after it is
    evicted (``evicted``), so a flood from a few stations cannot lock the others out; otherwise
    the fragment is dropped as ``buffer-full``.
  - ``shared``: the unhardened behaviour, for experiments that measure an attack without the
    defence: the budget is charged to the claimed source address, first come first served, and
    a fragment that would open a datagram beyond either budget is dropped as ``buffer-full``;
- a datagram not complete ``timeout`` seconds after its first fragment is dropped as
  ``reassembly-timeout`` (RFC 4944, Section 5.3: at most 60 s, our default);
- a fragment overlapping an earlier one with a different offset or size discards what was
  gathered (``overlap``) and starts anew with it (RFC 4944, Section 5.3); an exact duplicate is
  ignored (``duplicate``);
- anything undecodable is dropped as ``garbled`` and its precise reason counted apart.

Time is passed in (``now``, seconds, any monotonic origin): the class is pure and event-driven.
Datagrams are identified by (source, destination, datagram_size, datagram_tag) as RFC 4944 says.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from testbed.contracts.radio import PER_STATION, SHARED, ReassemblyLimits
from testbed.node.radio.errors import MalformedError
from testbed.node.radio.frag import FRAG1_DISPATCH, FRAG1_LEN, FRAGN_DISPATCH, FRAGN_LEN
from testbed.node.radio.iphc import (
    DISPATCH_IPV6,
    IPV6_HEADER,
    NO_CONTEXTS,
    Contexts,
    decompress,
    fill_udp_checksum,
)

TIMEOUT = "reassembly-timeout"
BUFFER_FULL = "buffer-full"
EVICTED = "evicted"
MAX_DATAGRAM = 2047  # the 11-bit datagram_size
OVERLAP = "overlap"
DUPLICATE = "duplicate"
GARBLED = "garbled"

_Key = tuple[bytes, bytes, int, int]
Sender = bytes | str  # a claimed link-layer source, or the name of the sending station


@dataclass(slots=True)
class _Datagram:
    sender: Sender
    size: int
    deadline: float
    buffer: bytearray
    spans: list[tuple[int, int]] = field(default_factory=list)
    received: int = 0
    fragments: int = 0
    checksum_elided: bool = False


def _ipv6(data: bytes) -> bytes:
    if len(data) < IPV6_HEADER or data[0] >> 4 != 6:
        raise MalformedError("not-ipv6", "uncompressed dispatch without an IPv6 header")
    return data


class Reassembler:
    def __init__(
        self, limits: ReassemblyLimits | None = None, contexts: Contexts = NO_CONTEXTS
    ) -> None:
        self.limits = limits or ReassemblyLimits()
        self.contexts = contexts
        # Insertion order is deadline order: the timeout is the same for every datagram.
        self._open: dict[_Key, _Datagram] = {}
        self._sender_bytes: Counter[Sender] = Counter()
        self._buffered = 0
        self.packets = 0  # complete packets handed up
        self.reassembled = 0  # of which came in fragments
        self.dropped_packets: Counter[str] = Counter()
        self.dropped_fragments: Counter[str] = Counter()
        self.garbled: Counter[str] = Counter()

    # ------------------------------------------------------------ public

    def receive(
        self,
        payload: bytes,
        src: bytes | None,
        dst: bytes | None,
        now: float,
        sender: str | None = None,
    ) -> bytes | None:
        """Feed one frame's 6LoWPAN payload. Returns a complete IPv6 packet or None. Never
        raises on bad input: it is counted instead. ``sender`` names the sending station where
        the caller knows it (the per-station policy charges it instead of ``src``)."""
        self.expire(now)
        src = src or b""
        charge: Sender = sender if sender is not None and self.limits.policy == PER_STATION else src
        try:
            packet = self._receive(payload, src, dst or b"", now, charge)
        except MalformedError as exc:
            self.dropped_fragments[GARBLED] += 1
            self.garbled[exc.reason] += 1
            return None
        if packet is not None:
            self.packets += 1
        return packet

    def expire(self, now: float) -> int:
        """Drop every datagram whose deadline has passed; returns how many."""
        n = 0
        while self._open:
            key = next(iter(self._open))
            if self._open[key].deadline > now:
                break
            self._discard(key, TIMEOUT)
            n += 1
        return n

    def next_deadline(self) -> float | None:
        for dg in self._open.values():
            return dg.deadline
        return None

    @property
    def buffered_bytes(self) -> int:
        return self._buffered

    def snapshot(self) -> dict[str, object]:
        return {
            "packets": self.packets,
            "reassembled": self.reassembled,
            "open_datagrams": len(self._open),
            "buffered_bytes": self._buffered,
            # who holds the buffer: the sending station, or a claimed address (hex)
            "held_by": {
                k if isinstance(k, str) else k.hex(): v for k, v in self._sender_bytes.items()
            },
            "dropped_packets": dict(self.dropped_packets),
            "dropped_fragments": dict(self.dropped_fragments),
            "garbled": dict(self.garbled),
        }

    # ------------------------------------------------------------ internals

    def _receive(
        self, payload: bytes, src: bytes, dst: bytes, now: float, charge: Sender
    ) -> bytes | None:
        if not payload:
            raise MalformedError("empty", "frame without payload")
        d = payload[0]
        if d >> 3 == FRAG1_DISPATCH:
            if len(payload) < FRAG1_LEN + 1:
                raise MalformedError("truncated", "FRAG1 header")
            size = int.from_bytes(payload[:2], "big") & 0x07FF
            tag = int.from_bytes(payload[2:4], "big")
            inner = payload[FRAG1_LEN:]
            elided = False
            if inner[0] == DISPATCH_IPV6:
                data = inner[1:]
            elif inner[0] >> 5 == 0b011:
                dec = decompress(inner, src, dst, self.contexts, size)
                data = dec.header + inner[dec.consumed :]
                elided = dec.udp_checksum_elided
            else:
                raise MalformedError("bad-dispatch", f"0x{inner[0]:02x} in FRAG1")
            return self._fragment(src, dst, size, tag, 0, data, elided, now, charge)
        if d >> 3 == FRAGN_DISPATCH:
            if len(payload) < FRAGN_LEN + 1:
                raise MalformedError("truncated", "FRAGN header or empty fragment")
            size = int.from_bytes(payload[:2], "big") & 0x07FF
            tag = int.from_bytes(payload[2:4], "big")
            offset = payload[4] * 8
            if offset == 0:
                raise MalformedError("bad-offset", "FRAGN at offset 0")
            return self._fragment(
                src, dst, size, tag, offset, payload[FRAGN_LEN:], False, now, charge
            )
        if d == DISPATCH_IPV6:
            return _ipv6(payload[1:])
        if d >> 5 == 0b011:
            dec = decompress(payload, src, dst, self.contexts)
            packet = bytearray(dec.header + payload[dec.consumed :])
            if dec.udp_checksum_elided:
                fill_udp_checksum(packet)
            return bytes(packet)
        raise MalformedError("unsupported-dispatch", f"0x{d:02x}")

    def _fragment(
        self,
        src: bytes,
        dst: bytes,
        size: int,
        tag: int,
        offset: int,
        data: bytes,
        elided: bool,
        now: float,
        charge: Sender,
    ) -> bytes | None:
        if size < IPV6_HEADER:
            raise MalformedError("bad-size", f"datagram_size {size}")
        end = offset + len(data)
        if end > size:
            raise MalformedError("fragment-overflow", f"bytes {offset}..{end} of {size}")
        key = (src, dst, size, tag)
        dg = self._open.get(key)
        if dg is not None:
            for s, e in dg.spans:
                if offset < e and s < end:
                    if s == offset and e == end:
                        self.dropped_fragments[DUPLICATE] += 1
                        return None
                    self._discard(key, OVERLAP)
                    dg = None
                    break
        if dg is None:
            if not self._make_room(charge, size):
                self.dropped_fragments[BUFFER_FULL] += 1
                return None
            dg = _Datagram(charge, size, now + self.limits.timeout, bytearray(size))
            self._open[key] = dg
            self._sender_bytes[charge] += size
            self._buffered += size
        dg.buffer[offset:end] = data
        dg.spans.append((offset, end))
        dg.received += len(data)
        dg.fragments += 1
        dg.checksum_elided |= elided
        if dg.received < size:
            return None
        self._release(key)
        self.reassembled += 1
        if dg.checksum_elided:
            fill_udp_checksum(dg.buffer)
        return bytes(dg.buffer)

    def _make_room(self, sender: Sender, size: int) -> bool:
        """Can ``sender`` open a datagram of ``size`` bytes (evicting what the policy lets it)?"""
        limits = self.limits
        if limits.policy == SHARED:
            return (
                self._sender_bytes[sender] + size <= limits.per_sender_bytes
                and self._buffered + size <= limits.total_bytes
            )
        if size > limits.per_sender_bytes:
            return False
        while self._sender_bytes[sender] + size > limits.per_sender_bytes:
            self._evict_oldest(sender)  # its own stale datagram makes way for its new one
        while self._buffered + size > limits.total_bytes:
            wanted = self._sender_bytes[sender] + size
            # Only from a sender that would still hold at least as much as this one: nobody
            # is pushed below a newcomer's share. Ties go to the oldest datagram.
            victim = next(
                (
                    dg.sender
                    for dg in self._open.values()
                    if self._sender_bytes[dg.sender] >= wanted and dg.sender != sender
                ),
                None,
            )
            if victim is None:
                return False
            self._evict_oldest(victim)
        return True

    def _evict_oldest(self, sender: Sender) -> None:
        key = next(k for k, dg in self._open.items() if dg.sender == sender)
        self._discard(key, EVICTED)

    def _release(self, key: _Key) -> _Datagram:
        dg = self._open.pop(key)
        self._sender_bytes[dg.sender] -= dg.size
        if not self._sender_bytes[dg.sender]:
            del self._sender_bytes[dg.sender]
        self._buffered -= dg.size
        return dg

    def _discard(self, key: _Key, reason: str) -> None:
        dg = self._release(key)
        self.dropped_packets[reason] += 1
        self.dropped_fragments[reason] += dg.fragments
